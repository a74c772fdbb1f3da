"""``deploy/local/cluster`` as a user runs it: one line per replica, then the front; requests
through the front; Ctrl-C (SIGINT to the terminal's process group) or SIGTERM stops it all."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.databases import sqlite_url
from tests.support.models import write_memory_model
from tests.support.traffic import X

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "local" / "cluster"


@pytest.mark.parametrize("stop", ["ctrl-c", "sigterm"])
def test_the_cluster_command_prints_where_it_listens_serves_and_stops(
    stop: str, tmp_path: Path
) -> None:
    root = tmp_path / "models"
    write_memory_model(root, "m", 1)
    command = [
        str(SCRIPT), "--replicas", "2", "--model-repository", str(root), "--memory-budget",
        "64MiB", "--port", "0", "--database-url", sqlite_url(tmp_path),
        "--state-dir", str(tmp_path / "state"),
    ]  # fmt: skip
    environment = {**os.environ, "MODELHOST_AUTH": "disabled", "MODELHOST_LOG_LEVEL": "warning"}
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment,
        start_new_session=True,  # its own process group, as a terminal gives it
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline().strip() for _ in range(3)]
        assert re.fullmatch(r"replica 1 http://127\.0\.0\.1:\d+", lines[0]), lines
        assert re.fullmatch(r"replica 2 http://127\.0\.0\.1:\d+", lines[1]), lines
        assert re.fullmatch(r"front http://127\.0\.0\.1:\d+", lines[2]), lines
        urls = [line.rsplit(" ", 1)[1] for line in lines]
        for url in urls:
            assert httpx.get(f"{url}/v2/health/ready", timeout=10).status_code == 200
        answer = httpx.post(f"{urls[2]}/v2/models/m/infer", json=X, timeout=30)
        assert answer.status_code == 200 and answer.headers["x-served-by"] in {
            "replica1",
            "replica2",
        }
        if stop == "ctrl-c":
            os.killpg(process.pid, signal.SIGINT)
        else:
            process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, process.stdout.read()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
    for url in urls:  # nothing listens any more: the replicas and the front are gone
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/v2/health/live", timeout=2)
