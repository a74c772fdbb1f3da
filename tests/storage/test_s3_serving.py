"""Real ``modelhost serve`` processes serving models from ``s3://`` (moto on loopback)."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from pathlib import Path

import httpx

from tests.cache.helpers import index_states, model_state
from tests.storage.conftest import BUCKET
from tests.storage.helpers import infer_body, push, weights_total, write_weights_model
from tests.storage.proxy import ThrottledProxy
from tests.storage.s3server import MotoServer
from tests.support.models import write_demo_models
from tests.support.server import ServerProcess
from tests.support.waiting import eventually

MiB = 1 << 20
IRIS = {
    "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]
}


def index_entry(client: httpx.Client, name: str) -> dict[str, str]:
    response = client.post("/v2/repository/index")
    response.raise_for_status()
    entry: dict[str, str] = next(e for e in response.json() if e["name"] == name)
    return entry


def test_a_model_is_served_from_s3(tmp_path: Path, moto: MotoServer, s3_repository: str) -> None:
    write_demo_models(tmp_path / "demo")
    push(tmp_path / "demo" / "iris-onnx" / "1", "iris-onnx", s3_repository, moto.env())
    with ServerProcess(s3_repository, tmp_path / "server.log", env=moto.env()) as server:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            assert index_states(client) == {"iris-onnx/1": "UNAVAILABLE"}  # lazy: not fetched
            assert moto.gets("iris-onnx/1/model.onnx") == 0
            response = client.post("/v2/models/iris-onnx/infer", json=IRIS)
            assert response.status_code == 200, response.text
            probabilities = response.json()["outputs"][0]["data"]
            assert probabilities.index(max(probabilities)) == 0  # setosa
            assert index_states(client) == {"iris-onnx/1": "READY"}
        # Each phase of the load was timed and logged with the model and version.
        line = next(line for line in server.log().splitlines() if "loaded iris-onnx/1" in line)
        assert all(f'"{phase}":' in line for phase in ("download", "verify", "deserialize"))


def test_an_object_changed_behind_modelhosts_back_is_refused(
    tmp_path: Path, moto: MotoServer, s3_repository: str
) -> None:
    source = write_weights_model(tmp_path / "src", "weights", 2 * MiB)
    push(source, "weights", s3_repository, moto.env())
    recorded = hashlib.sha256((source / "weights.bin").read_bytes()).hexdigest()
    tampered = bytes(2 * MiB)
    moto.put(BUCKET, "repo/weights/1/weights.bin", tampered)

    with ServerProcess(s3_repository, tmp_path / "server.log", env=moto.env()) as server:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            response = client.post("/v2/models/weights/infer", json=infer_body([1.0]))
            assert response.status_code == 503
            body = response.json()
            assert body["code"] == "artifact_mismatch"
            assert "weights/1/weights.bin" in body["error"]
            assert recorded in body["error"]
            assert hashlib.sha256(tampered).hexdigest() in body["error"]
            assert index_entry(client, "weights")["state"] == "UNAVAILABLE"
            assert recorded in index_entry(client, "weights")["reason"]
            assert client.get("/v2/models/weights/ready").status_code != 200
        # Deleted and fetched once more before giving up; nothing of it was kept.
        assert moto.gets("weights/1/weights.bin") == 2
        blobs = server.state_dir / "artifact-cache" / "blobs"
        assert not (blobs / recorded).exists()
        assert not (blobs / hashlib.sha256(tampered).hexdigest()).exists()
        assert list((server.state_dir / "artifact-cache" / "tmp").iterdir()) == []


def test_s3_stopped_during_a_load_is_a_503_and_the_next_load_succeeds(
    tmp_path: Path, moto: MotoServer, s3_repository: str
) -> None:
    source = write_weights_model(tmp_path / "src", "weights", 24 * MiB)
    push(source, "weights", s3_repository, moto.env())
    # modelhost reaches S3 through a proxy slow enough (8 MiB/s) to stop S3 mid-download.
    proxy = ThrottledProxy(moto.port, rate=8 * MiB)
    env = {
        **moto.env(),
        "MODELHOST_S3_ENDPOINT": proxy.endpoint,
        "MODELHOST_LOAD_RETRY_INITIAL_SECONDS": "0.5",
    }
    try:
        with ServerProcess(s3_repository, tmp_path / "server.log", env=env) as server:
            with httpx.Client(base_url=server.url, timeout=60) as client:
                answer: list[httpx.Response] = []
                request = threading.Thread(
                    target=lambda: answer.append(
                        client.post("/v2/models/weights/infer", json=infer_body([1.0]))
                    )
                )
                request.start()
                eventually(lambda: proxy.sent > 4 * MiB, timeout=30, interval=0.01)
                moto.stop()  # mid-download: the S3 server is gone
                request.join(60)
                response = answer[0]
                assert response.status_code == 503
                assert response.json()["code"] == "storage_unavailable"
                assert "S3 storage failed" in response.json()["error"]
                assert "weights/1/weights.bin" in response.json()["error"]
                # (The repository index rescans the store, so it is a 503 itself while S3 is
                # away; the cache's own view says what happened to the model.)
                state = model_state(client, "weights")
                assert state is not None and state["state"] == "UNAVAILABLE"
                assert "S3 storage failed" in state["reason"]
                assert client.get("/v2/models/weights/ready").status_code != 200
                assert list((server.state_dir / "artifact-cache" / "tmp").iterdir()) == []

                # S3 comes back (moto keeps its objects in memory: they are pushed again).
                moto.start()
                moto.create_bucket(BUCKET)
                push(source, "weights", s3_repository, moto.env())
                proxy.rate = 1 << 40
                time.sleep(0.6)  # the failed load's backoff
                response = client.post("/v2/models/weights/infer", json=infer_body([1.0]))
                assert response.status_code == 200, response.text
                assert response.json()["outputs"][0]["data"] == [weights_total(source)]
                assert index_entry(client, "weights")["state"] == "READY"
    finally:
        proxy.close()


def test_the_cache_is_reused_after_a_restart_and_shared_files_download_once(
    tmp_path: Path, moto: MotoServer, s3_repository: str
) -> None:
    source = write_weights_model(tmp_path / "src", "weights", 8 * MiB)
    push(source, "first", s3_repository, moto.env())
    push(source, "second", s3_repository, moto.env())  # the same bytes under another name
    env = {**moto.env(), "MODELHOST_CACHE_DIR": str(tmp_path / "cache")}
    expected = [weights_total(source)]

    with ServerProcess(s3_repository, tmp_path / "one.log", env=env) as server:

        async def both() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
                requests = [
                    client.post(f"/v2/models/{name}/infer", json=infer_body([1.0]))
                    for name in ["first", "second"] * 10
                ]
                return list(await asyncio.gather(*requests))

        responses = asyncio.run(both())
        assert [r.status_code for r in responses] == [200] * 20
        assert all(r.json()["outputs"][0]["data"] == expected for r in responses)
    # Two models loading at once needed the same file: it crossed the network once.
    assert moto.gets("/weights.bin") == 1

    with ServerProcess(s3_repository, tmp_path / "two.log", env=env) as server:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for name in ("first", "second"):
                response = client.post(f"/v2/models/{name}/infer", json=infer_body([1.0]))
                assert response.status_code == 200, response.text
                assert response.json()["outputs"][0]["data"] == expected
            # Its own count agrees: every file was found in the cache, none downloaded.
            metrics = client.get("/metrics").text
            assert "modelhost_artifact_cache_downloads_total 0.0" in metrics
            hits = next(
                line
                for line in metrics.splitlines()
                if line.startswith("modelhost_artifact_cache_hits_total ")
            )
            assert float(hits.split()[1]) >= 4  # model.yaml, model.py, weights.bin, twice
    # The restarted server read the indexes again, but no file came from S3 a second time.
    assert moto.gets("/weights.bin") == 1
    assert moto.gets("/model.py") == 1
