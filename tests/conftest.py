"""Shared fixtures: model repositories on disk and real server processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_kserve_client import EARLY as KSERVE_EARLY
from tests.support import early
from tests.support.databases import (
    create_postgres_database,
    drop_postgres_database,
    postgres_url,
    sqlite_url,
)
from tests.support.models import write_demo_models, write_failing_model, write_identity_model
from tests.support.server import ServerProcess
from tests.test_quickstart import EARLY as QUICKSTART_EARLY


def pytest_collection_finish(session: pytest.Session) -> None:
    """Slow set-up for tests that run late starts now, in the background (tests.support.early)."""
    early.start_for(session.items, {**QUICKSTART_EARLY, **KSERVE_EARLY})


def pytest_sessionfinish(session: pytest.Session) -> None:
    early.stop_all()


@pytest.fixture(scope="session")
def standard_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo models, an identity model over every datatype, and a model that fails to load."""
    root = tmp_path_factory.mktemp("models")
    write_demo_models(root)
    write_identity_model(root)
    write_failing_model(root)
    return root


@pytest.fixture(scope="session")
def server(
    standard_repository: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("logs") / "server.log"
    with ServerProcess(standard_repository, log, args=["--max-request-bytes", "1MiB"]) as process:
        yield process


@pytest.fixture
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30.0) as http:
        yield http


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each persistence test runs twice: on a SQLite file and on the real PostgreSQL."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
        return
    name = create_postgres_database()
    try:
        yield postgres_url(name)
    finally:
        drop_postgres_database(name)


# A skipped test is a check CI did not run: here every skip, however it came about (an
# import-or-skip helper, a missing extra, a skip marker), is reported as a failure instead.
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped, and this suite must not skip anything: {report.longrepr}"


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.skipped:
        report.outcome = "failed"
        report.longrepr = (
            f"module skipped, and this suite must not skip anything: {report.longrepr}"
        )
