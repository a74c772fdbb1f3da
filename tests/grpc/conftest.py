"""One server for the gRPC tests: REST and gRPC on their own ports, auth on, a 1 MiB message
limit, and keys for an admin and a plain user."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.grpc.models import write_recorder_model, write_slow_model
from tests.support.cli import create_user
from tests.support.databases import sqlite_url
from tests.support.models import write_demo_models, write_identity_model
from tests.support.server import ServerProcess

MESSAGE_LIMIT = 1 << 20


@dataclass(frozen=True)
class GrpcServer:
    process: ServerProcess
    admin_key: str
    user_key: str
    models: Path

    @property
    def address(self) -> str:
        return self.process.grpc_address

    @property
    def url(self) -> str:
        return self.process.url

    def metadata(self, key: str | None = None) -> list[tuple[str, str]]:
        """gRPC metadata carrying ``key`` (the admin's by default)."""
        return [("authorization", f"Bearer {key or self.admin_key}")]

    def headers(self, key: str | None = None) -> dict[str, str]:
        """HTTP headers carrying ``key`` (the admin's by default)."""
        return {"Authorization": f"Bearer {key or self.admin_key}"}


@pytest.fixture(scope="session")
def grpc_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GrpcServer]:
    root = tmp_path_factory.mktemp("grpc")
    models = root / "models"
    write_demo_models(models)
    write_identity_model(models)
    write_identity_model(models, "identity-typed", without={"FP16"})
    # One of each per client: a deadline test needs a model that has never run (with a known
    # model time, a call that cannot make its deadline is refused at once, UNAVAILABLE).
    for suffix in ("", "-kserve"):
        # Slow enough that a loaded machine cannot make the tests race them.
        write_slow_model(models, f"slow-deadline{suffix}", delay=2.0, max_queue_size=8)
        write_slow_model(models, f"slow-queue{suffix}", delay=1.5, max_queue_size=1)
    write_recorder_model(models)
    database = sqlite_url(root)
    env = {"MODELHOST_AUTH": "enabled", "MODELHOST_DATABASE_URL": database}
    args = ["--max-request-bytes", str(MESSAGE_LIMIT)]
    with ServerProcess(models, root / "server.log", env=env, args=args, grpc=True) as process:
        admin = create_user("grpc-admin", "admin", database)
        user = create_user("grpc-user", "user", database)
        yield GrpcServer(process, admin, user, models)
