"""A modelhost container started with podman, the way an operator runs the image."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from types import TracebackType

import httpx

from tests.deploy.podman import podman, runtime_args
from tests.support.server import free_port


class Container:
    """``podman run -d IMAGE [ARGS]``; removed on exit.

    ``network="host"`` shares this machine's loopback (the container reaches the S3 server and
    PostgreSQL the tests run on 127.0.0.1, and listens on a free port set by MODELHOST_PORT);
    otherwise the image's own port 8080 is published on 127.0.0.1.
    """

    def __init__(
        self,
        image: str,
        *,
        env: dict[str, str] | None = None,
        volumes: dict[Path, str] | None = None,
        network: str = "bridge",
        options: list[str] | None = None,
        args: list[str] | None = None,
    ) -> None:
        self.name = f"modelhost-test-{uuid.uuid4().hex[:10]}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environment = dict(env or {})
        if network == "host":
            environment["MODELHOST_PORT"] = str(self.port)
            placement = ["--network=host"]
        else:
            placement = [f"--publish=127.0.0.1:{self.port}:8080"]
        command = ["run", "--detach", "--name", self.name, *runtime_args(), *placement]
        for key, value in environment.items():
            command += ["--env", f"{key}={value}"]
        for source, target in (volumes or {}).items():
            command += ["--volume", f"{source}:{target}"]
        self.started = time.monotonic()
        podman(*command, *(options or []), image, *(args or []))

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Seconds from ``podman run`` to the first 200 from /v2/health/ready."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise AssertionError(f"container exited:\n{self.logs()}")
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=1.0).status_code == 200:
                    return time.monotonic() - self.started
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"not ready after {timeout}s:\n{self.logs()}")

    def running(self) -> bool:
        state = podman("inspect", "--format", "{{.State.Running}}", self.name, check=False)
        return state.stdout.strip() == "true"

    def exit_code(self) -> int:
        return int(podman("inspect", "--format", "{{.State.ExitCode}}", self.name).stdout)

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def exec(self, *command: str) -> str:
        return podman("exec", self.name, *command).stdout

    def remove(self) -> None:
        podman("rm", "--force", "--time=0", self.name, check=False)

    def __enter__(self) -> Container:
        try:
            self.wait_ready()
        except BaseException:
            print(self.logs())
            self.remove()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            print(self.logs())  # shown by pytest with the failure
        self.remove()
