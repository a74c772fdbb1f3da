"""The registry through the management API and the CLI, on both databases."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import httpx

from modelhost.cli.database import database
from modelhost.cli.settings import build_settings
from modelhost.db.catalog import CatalogStore
from tests.support.cli import modelhost
from tests.support.models import write_memory_model
from tests.support.server import ServerProcess

X = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}]}


def test_folder_is_synced_and_versions_are_managed(database_url: str, tmp_path: Path) -> None:
    root = tmp_path / "models"
    for version in (1, 2):
        write_memory_model(root, "m", 1, version=version)
    env = {"MODELHOST_DATABASE_URL": database_url, "MODELHOST_REGISTRY_REFRESH_SECONDS": "0.5"}
    with (
        ServerProcess(root, tmp_path / "server.log", env=env) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        models = http.get("/api/v1/models").json()
        assert [m["name"] for m in models] == ["m"]
        assert [v["version"] for v in models[0]["versions"]] == [1, 2]
        assert all(v["state"] == "UNAVAILABLE" for v in models[0]["versions"])  # lazy

        # An alias is a version's second name, wherever a version can be named.
        moved = http.put("/api/v1/models/m/aliases/production", json={"version": 1})
        assert moved.status_code == 200 and moved.json()["aliases"] == {"production": 1}
        assert moved.json()["versions"][0]["state"] == "READY"  # loaded before it flipped
        response = http.post("/v2/models/m/versions/production/infer", json=X)
        assert response.status_code == 200 and response.json()["model_version"] == "1"
        assert http.get("/v2/models/m/versions/production").json()["name"] == "m"
        assert http.get("/v2/models/m/versions/production/ready").status_code == 200
        assert http.post("/v2/models/m/versions/staging/infer", json=X).status_code == 404
        assert http.put("/api/v1/models/m/aliases/7", json={"version": 1}).status_code == 409
        assert http.put("/api/v1/models/m/aliases/x", json={"version": 9}).status_code == 404

        # A version added to the store later is registered through the API.
        write_memory_model(root, "m", 1, version=3)
        registered = http.post("/api/v1/models/m/versions", json={})
        assert registered.status_code == 201 and registered.json()["version"] == 3
        assert http.post("/api/v1/models/m/versions", json={"version": 3}).status_code == 409
        assert http.post("/api/v1/models/m/versions", json={"version": 8}).status_code == 404
        assert http.post("/v2/models/m/infer", json=X).json()["model_version"] == "3"

        # Deleting: not a version an alias points at; otherwise gone, and it stays gone.
        refused = http.delete("/api/v1/models/m/versions/1")
        assert refused.status_code == 409 and "production" in refused.json()["error"]
        assert http.delete("/api/v1/models/m/versions/2").status_code == 204
        assert http.post("/v2/models/m/versions/2/infer", json=X).status_code == 404
        http.post("/v2/repository/index")  # a rescan of the folder does not bring it back
        assert [v["version"] for v in http.get("/api/v1/models/m").json()["versions"]] == [1, 3]

        # The CLI sees and changes the same registry; the server picks the change up.
        listing = modelhost("models", "ls", database_url=database_url)
        assert "m\t1\tpython" in listing and "production" in listing
        modelhost("models", "alias", "m", "production", "3", database_url=database_url)
        deadline = time.monotonic() + 10
        while (
            http.post("/v2/models/m/versions/production/infer", json=X).json()["model_version"]
            != "3"
        ):
            assert time.monotonic() < deadline, "the alias move never reached the server"
            time.sleep(0.2)

        assert http.post("/api/v1/models/m/versions", json={"version": 0}).status_code == 400
        assert http.get("/api/v1/models/nope").status_code == 404


def test_registry_outlives_the_server_and_is_shared(database_url: str, tmp_path: Path) -> None:
    root = tmp_path / "models"
    write_memory_model(root, "m", 1, version=1)
    write_memory_model(root, "m", 1, version=2)
    env = {"MODELHOST_DATABASE_URL": database_url}
    with ServerProcess(root, tmp_path / "first.log", env=env) as server:
        httpx.put(f"{server.url}/api/v1/models/m/aliases/stable", json={"version": 1}, timeout=30)
    # A second replica with an empty folder of its own still knows the alias (from the DB).
    other = tmp_path / "replica-models"
    shutil.copytree(root, other)
    with ServerProcess(other, tmp_path / "second.log", env=env) as server:
        model = httpx.get(f"{server.url}/api/v1/models/m").json()
        assert model["aliases"] == {"stable": 1}


def test_model_deleted_by_another_replica_is_404_here(tmp_path: Path) -> None:
    """Until this replica re-reads the registry, its catalogue still has a model another replica
    deleted; the management API reads the database, and must answer 404 (it was a KeyError)."""
    root = tmp_path / "models"
    write_memory_model(root, "m", 1)
    database_url = f"sqlite:///{tmp_path / 'shared.db'}"
    env = {"MODELHOST_DATABASE_URL": database_url, "MODELHOST_REGISTRY_REFRESH_SECONDS": "3600"}
    with (
        ServerProcess(root, tmp_path / "server.log", env=env) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        assert http.get("/api/v1/models/m").status_code == 200

        async def delete_elsewhere() -> None:  # what another replica's DELETE does
            async with database(build_settings(database_url=database_url)) as engine:
                await CatalogStore(engine).delete_version("m", 1)

        asyncio.run(delete_elsewhere())
        assert http.get("/v2/models/m").status_code == 200  # this replica has not noticed
        for path in ("/api/v1/models/m", "/api/v1/models/m/versions"):
            response = http.get(path)
            assert response.status_code == 404, response.text
            assert response.json()["code"] == "model_not_found"
