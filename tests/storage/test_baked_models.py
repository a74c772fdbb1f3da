"""Versions baked into the image are served from its folder, before S3 is asked for them."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx

from tests.storage.helpers import infer_body, push, weights_total, write_weights_model
from tests.storage.s3server import MotoServer
from tests.support.server import ServerProcess

MiB = 1 << 20


def test_a_baked_version_answers_without_a_download(
    tmp_path: Path, moto: MotoServer, s3_repository: str
) -> None:
    baked_source = write_weights_model(tmp_path / "src", "baked", MiB)
    remote_source = write_weights_model(tmp_path / "src", "remote", MiB)
    push(baked_source, "baked", s3_repository, moto.env())
    push(remote_source, "remote", s3_repository, moto.env())
    # The image's folder: what `modelhost models pull baked:1` would have written at build time.
    image_folder = tmp_path / "image-models"
    shutil.copytree(baked_source, image_folder / "baked" / "1")

    env = {**moto.env(), "MODELHOST_BAKED_MODELS": str(image_folder)}
    with (
        ServerProcess(s3_repository, tmp_path / "server.log", env=env) as server,
        httpx.Client(base_url=server.url, timeout=60) as http,
    ):
        answer = http.post("/v2/models/baked/infer", json=infer_body([1.0]))
        assert answer.status_code == 200, answer.text
        assert answer.json()["outputs"][0]["data"] == [weights_total(baked_source)]
        assert moto.gets("baked/1/weights.bin") == 0  # served from the image's folder

        # A version the image lacks still comes from S3.
        answer = http.post("/v2/models/remote/infer", json=infer_body([1.0]))
        assert answer.status_code == 200, answer.text
        assert answer.json()["outputs"][0]["data"] == [weights_total(remote_source)]
        assert moto.gets("remote/1/weights.bin") >= 1

    # With S3 gone, a new pod still starts and serves its baked version.
    moto.stop()
    with (
        ServerProcess(s3_repository, tmp_path / "offline.log", env=env) as server,
        httpx.Client(base_url=server.url, timeout=60) as http,
    ):
        answer = http.post("/v2/models/baked/infer", json=infer_body([2.0]))
        assert answer.status_code == 200, answer.text
        assert answer.json()["outputs"][0]["data"] == [weights_total(baked_source)]
