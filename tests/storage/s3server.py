"""moto's S3 server in its own process on a loopback port, and what it was asked for.

The server writes one access-log line per request (werkzeug's log); :meth:`MotoServer.requests`
reads them back, so a test sees the requests the S3 server really received.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3

from tests.support.server import free_port

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "modelhost-test",
    "AWS_SECRET_ACCESS_KEY": "modelhost-test",
    "AWS_REGION": "us-east-1",
}
_REQUEST = re.compile(r'"([A-Z]+) (\S+) HTTP/[0-9.]+"')
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class MotoServer:
    """``python -m moto.server`` on 127.0.0.1; state lives in the process (lost when stopped)."""

    def __init__(self, log_path: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **CREDENTIALS}
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto exited:\n{self.log_path.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"moto did not listen within {timeout}s")

    def stop(self) -> None:
        """Kill it at once, as a crash or a network cut would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def client(self) -> Any:
        """A boto3 client: the tests' own way into the bucket, behind modelhost's back."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=CREDENTIALS["AWS_REGION"],
        )

    def create_bucket(self, bucket: str) -> None:
        self.client().create_bucket(Bucket=bucket)

    def get(self, bucket: str, key: str) -> bytes:
        data: bytes = self.client().get_object(Bucket=bucket, Key=key)["Body"].read()
        return data

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self.client().put_object(Bucket=bucket, Key=key, Body=data)

    def requests(self) -> list[tuple[str, str]]:
        """(method, path) of every request logged so far, oldest first."""
        text = _ANSI.sub("", self.log_path.read_text(errors="replace"))
        return [(m.group(1), m.group(2)) for m in _REQUEST.finditer(text)]

    def gets(self, key_part: str) -> int:
        """How many GETs asked for a path containing ``key_part``."""
        return sum(1 for method, path in self.requests() if method == "GET" and key_part in path)

    def env(self) -> dict[str, str]:
        """What a modelhost process needs to reach this server."""
        return {"MODELHOST_S3_ENDPOINT": self.endpoint, **CREDENTIALS}
