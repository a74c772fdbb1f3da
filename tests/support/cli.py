"""Running the ``modelhost`` command the way an operator would."""

from __future__ import annotations

import os
import subprocess
import sys


def modelhost(*args: str, database_url: str, env: dict[str, str] | None = None) -> str:
    """Run ``modelhost ARGS`` against a database; returns stdout (raises on failure)."""
    result = subprocess.run(
        [sys.executable, "-m", "modelhost.cli.main", *args],
        env={**os.environ, "MODELHOST_DATABASE_URL": database_url, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"modelhost {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        )
    return result.stdout


def create_user(name: str, role: str, database_url: str) -> str:
    """``modelhost users create``; the key is the last line of its output."""
    return (
        modelhost("users", "create", name, "--role", role, database_url=database_url)
        .strip()
        .splitlines()[-1]
    )
