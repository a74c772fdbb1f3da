"""A real ``modelhost serve`` process on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """Starts ``modelhost serve`` and waits until it reports ready."""

    def __init__(
        self,
        repository: Path | str,  # a folder, or a URI such as s3://bucket/prefix
        log_path: Path,
        *,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        python_path: list[Path] | None = None,
        grpc: bool = False,
        preexec_fn: Callable[[], None] | None = None,  # in the child before it starts
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # With grpc: the V2 gRPC service too, on a port of its own (host:port for clients).
        self.grpc_port = free_port() if grpc else None
        self.grpc_address = f"127.0.0.1:{self.grpc_port}" if grpc else ""
        self.log_path = log_path
        state = log_path.parent / f"state-{self.port}"
        state.mkdir(parents=True, exist_ok=True)
        # Each server gets its own database and journal; auth is off unless a test turns it on.
        defaults = {
            "MODELHOST_DATABASE_URL": f"sqlite:///{state}/modelhost.db",
            "MODELHOST_USAGE_JOURNAL": str(state / "usage.journal"),
            "MODELHOST_AUTH": "disabled",
            "MODELHOST_CACHE_DIR": str(state / "artifact-cache"),
        }
        self.state_dir = state
        environment = {**os.environ, **defaults, **(env or {})}
        if python_path:
            environment["PYTHONPATH"] = os.pathsep.join(str(p) for p in python_path)
        command = [
            sys.executable,
            "-m",
            "modelhost.cli.main",
            "serve",
            "--model-repository",
            str(repository),
            "--port",
            str(self.port),
            *(["--grpc-port", str(self.grpc_port)] if self.grpc_port is not None else []),
            *(args or []),
        ]
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=environment,
            preexec_fn=preexec_fn,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        # One client for the whole wait: a client of its own per probe (httpx.get) costs ~40 ms
        # of CPU to build, taken from the server starting up on this 2-core machine.
        with httpx.Client(timeout=1.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"server exited with {self.process.returncode}:\n{self.log()}"
                    )
                try:
                    if client.get(f"{self.url}/v2/health/ready").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        raise TimeoutError(f"server not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def __enter__(self) -> ServerProcess:
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
