"""A per-model deployment (``MODELHOST_MODELS``) serves the models it names and no other."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.server import ServerProcess

IRIS = {
    "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]
}


def test_serves_only_the_models_it_names(standard_repository: Path, tmp_path: Path) -> None:
    env = {"MODELHOST_MODELS": "iris-onnx,identity"}
    with (
        ServerProcess(standard_repository, tmp_path / "server.log", env=env) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        assert http.post("/v2/models/iris-onnx/infer", json=IRIS).status_code == 200

        refused = http.post("/v2/models/iris-sklearn/infer", json=IRIS)
        assert refused.status_code == 404
        body = refused.json()
        assert body["code"] == "model_not_found"
        assert "not served by this deployment" in body["error"]
        assert "identity, iris-onnx" in body["error"]
        assert http.get("/v2/models/iris-sklearn").status_code == 404
        assert http.get("/v2/models/iris-sklearn/ready").status_code == 404

        # The repository index shows what this deployment serves; the management API still
        # manages the whole registry, which every deployment shares.
        index = http.post("/v2/repository/index", json={}).json()
        assert sorted({entry["name"] for entry in index}) == ["identity", "iris-onnx"]
        models = http.get("/api/v1/models").json()
        assert "iris-sklearn" in {model["name"] for model in models}
