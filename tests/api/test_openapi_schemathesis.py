"""Schemathesis fuzzes the management API from its own OpenAPI document, against a real server
with a real admin key, for a bounded time: no 5xx, and every answer as the document says (status
codes, content types, bodies, Allow on 405s, 401 without the key)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.cli import create_user
from tests.support.models import write_demo_models
from tests.support.server import ServerProcess

FUZZ_SECONDS = 60


def test_management_api_holds_to_its_openapi_document(tmp_path: Path) -> None:
    root = tmp_path / "models"
    write_demo_models(root)
    database_url = f"sqlite:///{tmp_path / 'modelhost.db'}"
    key = create_user("root", "admin", database_url)
    env = {"MODELHOST_AUTH": "enabled", "MODELHOST_DATABASE_URL": database_url}
    with ServerProcess(root, tmp_path / "server.log", env=env) as server:
        run = subprocess.run(
            [
                str(Path(sys.executable).with_name("st")),
                "run",
                f"{server.url}/api/v1/openapi.json",
                "--header",
                f"Authorization: Bearer {key}",
                "--checks",
                "all",
                "--max-time",
                str(FUZZ_SECONDS),
                # One worker: hypothesis describes filter lambdas with ast.parse, which CPython
                # 3.11 can break when two threads parse at once ("AST constructor recursion
                # depth mismatch", a crash of the tool, not a finding about the server).
                "--workers",
                "1",
                "--request-timeout",
                "30",
                "--no-color",
                "--report",
                "junit",
                "--report-dir",
                str(tmp_path / "report"),
            ],
            capture_output=True,
            text=True,
            timeout=FUZZ_SECONDS + 240,
            cwd=tmp_path,
            env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
        )
        log = server.log()
    assert run.returncode == 0, run.stdout[-12000:] + run.stderr[-4000:]
    assert "Traceback" not in log, log[-6000:]
