"""Who may do what: keys, roles, per-key model lists, expiry and revocation, on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from modelhost.db.timestamps import utcnow
from tests.support.cli import create_user, modelhost
from tests.support.models import write_demo_models
from tests.support.server import ServerProcess
from tests.support.waiting import eventually

IRIS = {
    "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]
}


@pytest.fixture
def secured(database_url: str, tmp_path: Path) -> Iterator[tuple[ServerProcess, str]]:
    root = tmp_path / "models"
    write_demo_models(root)
    env = {"MODELHOST_DATABASE_URL": database_url, "MODELHOST_AUTH": "enabled"}
    with ServerProcess(root, tmp_path / "server.log", env=env) as server:
        yield server, database_url


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_access_rules(secured: tuple[ServerProcess, str]) -> None:
    server, database_url = secured
    admin_key = create_user("root", "admin", database_url)
    url = server.url
    with httpx.Client(base_url=url, timeout=30) as http:
        # Probes need no key; everything else does.
        assert http.get("/v2/health/ready").status_code == 200
        for response in (
            http.post("/v2/models/iris-onnx/infer", json=IRIS),
            http.get("/v2/models/iris-onnx"),
            http.get("/api/v1/models"),
            http.post(
                "/v2/models/iris-onnx/infer", json=IRIS, headers=bearer("mh_000000000000_nope")
            ),
            http.post(
                "/v2/models/iris-onnx/infer", json=IRIS, headers={"Authorization": "Basic abc"}
            ),
            http.post("/v2/models/iris-onnx/infer", json=IRIS, headers=bearer("garbage")),
        ):
            assert response.status_code == 401, response.text
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert set(response.json()) == {"error", "code"}
        assert (
            http.post(
                "/v2/models/iris-onnx/infer", json=IRIS, headers=bearer(admin_key)
            ).status_code
            == 200
        )

        # An admin makes a user with a key limited to one model, and another that expires.
        admin = bearer(admin_key)
        assert (
            http.post(
                "/api/v1/users", json={"name": "bob", "role": "user"}, headers=admin
            ).status_code
            == 201
        )
        limited = http.post(
            "/api/v1/users/bob/keys", json={"allowed_models": ["iris-onnx"]}, headers=admin
        ).json()
        assert limited["key"].startswith("mh_") and limited["allowed_models"] == ["iris-onnx"]
        bob = bearer(limited["key"])
        assert http.post("/v2/models/iris-onnx/infer", json=IRIS, headers=bob).status_code == 200
        denied = http.post("/v2/models/iris-sklearn/infer", json=IRIS, headers=bob)
        assert denied.status_code == 403 and "iris-sklearn" in denied.json()["error"]

        # A user may not use admin endpoints nor read others' usage.
        for method, path in (
            ("POST", "/api/v1/users"),
            ("GET", "/api/v1/users"),
            ("GET", "/api/v1/usage"),
            ("GET", "/api/v1/usage/summary"),
            ("GET", "/api/v1/usage?user=root"),
            ("PUT", "/api/v1/models/iris-onnx/aliases/prod"),
            ("POST", "/v2/repository/models/iris-onnx/unload"),
            ("GET", "/api/v1/cache"),
        ):
            response = http.request(method, path, headers=bob, json={"name": "x", "version": 1})
            assert response.status_code == 403, (method, path, response.text)
        mine = eventually(lambda: http.get("/api/v1/me/usage", headers=bob).json()["records"])
        assert mine and all(r["key_id"] == limited["key_id"] for r in mine)

        # Expired and revoked keys stop working.
        past = (utcnow() - timedelta(seconds=1)).isoformat()
        expired = http.post(
            "/api/v1/users/bob/keys", json={"expires_at": past}, headers=admin
        ).json()
        response = http.post(
            "/v2/models/iris-onnx/infer", json=IRIS, headers=bearer(expired["key"])
        )
        assert response.status_code == 401 and "expired" in response.json()["error"]
        revoked = http.delete(f"/api/v1/users/bob/keys/{limited['key_id']}", headers=admin)
        assert revoked.status_code == 200 and revoked.json()["revoked_at"]
        response = http.post("/v2/models/iris-onnx/infer", json=IRIS, headers=bob)
        assert response.status_code == 401 and "revoked" in response.json()["error"]

        # Disabling a user turns off all of their keys.
        other = http.post("/api/v1/users/bob/keys", json={}, headers=admin).json()["key"]
        assert (
            http.post("/v2/models/iris-onnx/infer", json=IRIS, headers=bearer(other)).status_code
            == 200
        )
        assert (
            http.patch("/api/v1/users/bob", json={"disabled": True}, headers=admin).status_code
            == 200
        )
        assert (
            http.post("/v2/models/iris-onnx/infer", json=IRIS, headers=bearer(other)).status_code
            == 401
        )

    # No key, whole or in part, ever reaches the log.
    log = server.log()
    for key in (admin_key, limited["key"], expired["key"], other):
        secret = key.split("_", 2)[2]  # mh_<key id>_<secret>; the secret may hold "_" itself
        assert key not in log and secret not in log


def test_cli_bootstrap_and_key_management(database_url: str) -> None:
    key = create_user("ops", "admin", database_url)
    assert key.startswith("mh_") and len(key) > 40
    listed = modelhost("users", "ls", database_url=database_url)
    assert "ops\tadmin\tactive" in listed
    second = modelhost(
        "users", "keys", "create", "ops", "--models", "a,b", database_url=database_url
    )
    key_id = second.strip().splitlines()[-1].split("_")[1]
    assert key_id in modelhost("users", "keys", "ls", "ops", database_url=database_url)
    modelhost("users", "keys", "revoke", key_id, database_url=database_url)
    assert f"{key_id}\trevoked" in modelhost(
        "users", "keys", "ls", "ops", database_url=database_url
    )


def test_keys_owners_and_limited_reads(secured: tuple[ServerProcess, str]) -> None:
    server, database_url = secured
    admin = bearer(create_user("root", "admin", database_url))
    with httpx.Client(base_url=server.url, timeout=30, headers=admin) as http:
        for name in ("bob", "carol"):
            assert http.post("/api/v1/users", json={"name": name}).status_code == 201
        carol = http.post("/api/v1/users/carol/keys", json={}).json()

        # A key is revoked through its owner only: bob's path does not reach carol's key.
        response = http.delete(f"/api/v1/users/bob/keys/{carol['key_id']}")
        assert response.status_code == 404 and "'bob'" in response.json()["error"]
        works = http.post("/v2/models/iris-onnx/infer", json=IRIS, headers=bearer(carol["key"]))
        assert works.status_code == 200, works.text

        # A key limited to iris-onnx reads nothing about any other model, existing or not.
        limited = http.post("/api/v1/users/bob/keys", json={"allowed_models": ["iris-onnx"]})
        bob = bearer(limited.json()["key"])
        for path in ("", "/ready", "/config", "/versions/1", "/versions/1/ready"):
            assert http.get(f"/v2/models/iris-onnx{path}", headers=bob).status_code == 200
            for other in ("iris-sklearn", "no-such-model"):
                denied = http.get(f"/v2/models/{other}{path}", headers=bob)
                assert denied.status_code == 403, (other, path, denied.text)
        for path in ("/api/v1/models/iris-sklearn", "/api/v1/models/iris-sklearn/versions"):
            assert http.get(path, headers=bob).status_code == 403
        assert [m["name"] for m in http.get("/api/v1/models", headers=bob).json()] == ["iris-onnx"]
        index = http.post("/v2/repository/index", headers=bob).json()
        assert {entry["name"] for entry in index} == {"iris-onnx"}
        everything = http.post("/v2/repository/index").json()
        assert {entry["name"] for entry in everything} == {"iris-onnx", "iris-sklearn"}

        # An admin cannot disable themselves (nobody could undo it through the API)...
        refused = http.patch("/api/v1/users/root", json={"disabled": True})
        assert refused.status_code == 409, refused.text
        me = http.get("/api/v1/me").json()
        refused = http.delete(f"/api/v1/users/root/keys/{me['key_id']}")
        assert refused.status_code == 409, refused.text
        assert http.get("/api/v1/me").status_code == 200
        # ... and a user disabled by mistake is enabled again with the CLI.
        assert http.patch("/api/v1/users/carol", json={"disabled": True}).status_code == 200
        carol_key = bearer(carol["key"])
        assert http.get("/api/v1/me", headers=carol_key).status_code == 401
        modelhost("users", "enable", "carol", database_url=database_url)
        assert "carol\tuser\tactive" in modelhost("users", "ls", database_url=database_url)
        assert eventually(lambda: http.get("/api/v1/me", headers=carol_key).status_code == 200)
