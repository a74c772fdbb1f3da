"""One JSON log line per request, with its id, model, version, user and status; never a key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.support.cli import create_user
from tests.support.databases import sqlite_url
from tests.support.models import write_memory_model
from tests.support.server import ServerProcess
from tests.support.waiting import eventually

X = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}]}


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            lines.append(json.loads(line))  # every line the server writes must parse
    return lines


def test_request_log_lines(tmp_path: Path) -> None:
    root = tmp_path / "models"
    write_memory_model(root, "m", 1)
    database_url = sqlite_url(tmp_path)
    env = {"MODELHOST_AUTH": "enabled", "MODELHOST_DATABASE_URL": database_url}
    key = create_user("ann", "admin", database_url)
    with (
        ServerProcess(root, tmp_path / "server.log", env=env) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        headers = {"Authorization": f"Bearer {key}", "X-Request-ID": "trace-123"}
        ok = http.post("/v2/models/m/infer", json=X, headers=headers)
        assert ok.status_code == 200 and ok.headers["x-request-id"] == "trace-123"
        anonymous = http.post(
            "/v2/models/m/infer", json=X, headers={"Authorization": f"Bearer {key}"}
        )
        generated = anonymous.headers["x-request-id"]
        assert len(generated) == 32
        refused = http.post(
            "/v2/models/m/infer", json=X, headers={"Authorization": "Bearer mh_000000000000_x"}
        )
        assert refused.status_code == 401 and refused.headers["x-request-id"]
        weird = http.post(
            "/v2/models/m/infer", json=X, headers={**headers, "X-Request-ID": "a b/c"}
        )
        assert weird.headers["x-request-id"] != "a b/c"  # not echoed: replaced by our own
        log = server.log()

    lines = json_lines(log)
    assert lines, log
    for line in lines:
        assert {"time", "level", "logger", "message"} <= set(line)
    access = {line["request_id"]: line for line in lines if line["logger"] == "modelhost.access"}
    first = access["trace-123"]
    assert first["status"] == 200 and first["model"] == "m" and first["version"] == "1"
    assert (
        first["user_id"] == 1 and first["latency_ms"] > 0 and first["path"] == "/v2/models/m/infer"
    )
    assert access[generated]["status"] == 200
    assert access[refused.headers["x-request-id"]]["status"] == 401
    # The model's load was logged inside the first request, and carries its id.
    assert any(
        line.get("request_id") == "trace-123" and "loaded m/1" in line["message"] for line in lines
    )
    secret = key.split("_", 2)[2]
    assert key not in log and secret not in log


def test_text_format_for_people(tmp_path: Path) -> None:
    root = tmp_path / "models"
    write_memory_model(root, "m", 1)
    with ServerProcess(
        root, tmp_path / "server.log", env={"MODELHOST_LOG_FORMAT": "text"}
    ) as server:
        httpx.post(f"{server.url}/v2/models/m/infer", json=X, headers={"X-Request-ID": "r1"})
        # The line is written once the response has gone out.
        eventually(lambda: "infer 200 [r1]" in server.log())
        log = server.log()
    assert "POST /v2/models/m/infer 200 [r1]" in log
    assert not json_lines(log)
