"""Fixtures of the storage tests: a real S3-protocol server (moto) with an empty bucket."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.storage.s3server import MotoServer

BUCKET = "models"


@pytest.fixture
def moto(tmp_path: Path) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path / "moto.log")
    server.start()
    server.create_bucket(BUCKET)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_repository() -> str:
    return f"s3://{BUCKET}/repo"


@pytest.fixture(autouse=True)
def registry_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """``models push`` registers what it uploads: give every test a database of its own."""
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    monkeypatch.setenv("MODELHOST_DATABASE_URL", url)
    return url
