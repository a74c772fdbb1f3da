"""One ``modelhost serve`` process of a local cluster."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def is_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=1.0) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


class Replica:
    """A replica: its slot in the ring, its port, its own journal and log, the process."""

    def __init__(
        self,
        index: int,
        port: int,
        state_dir: Path,
        environment: dict[str, str],
        host: str = "127.0.0.1",
    ) -> None:
        self.index = index
        self.host = host
        self.port = port
        self.url = f"http://{host}:{port}"
        self.state_dir = state_dir / f"replica-{index}"
        self.log_path = state_dir / f"replica-{index}.log"
        self._environment = {
            **environment,
            "MODELHOST_HOST": host,
            "MODELHOST_PORT": str(port),
            # What must not be shared between processes: the usage journal (records of
            # answered requests waiting for the database) and downloaded artifacts.
            "MODELHOST_USAGE_JOURNAL": str(self.state_dir / "usage.journal"),
            "MODELHOST_CACHE_DIR": str(self.state_dir / "artifacts"),
        }
        self._log: IO[bytes] | None = None
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the process (after a kill, the same slot, port and journal)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self._log is not None:
            self._log.close()
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "modelhost.cli.main", "serve"],
            env={**os.environ, **self._environment},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in the terminal reaches the cluster, not each replica
        )

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not is_ready(self.url):
            if not self.alive:
                raise RuntimeError(f"replica {self.index} exited at start:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"replica {self.index} not ready in {timeout:.0f}s")
            time.sleep(0.1)

    def log_tail(self, lines: int = 40) -> str:
        if self._log is not None:
            self._log.flush()
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL: no drain, no flush (what an OOM kill or a lost node does)."""
        if self.process is not None and self.alive:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def terminate(self) -> None:
        """SIGTERM: the replica drains (readiness false, requests in flight finish)."""
        if self.process is not None and self.alive:
            self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int | None:
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.process.returncode

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
