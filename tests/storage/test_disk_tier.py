"""The disk tier: a model that leaves memory keeps its verified files in the artifact cache, so
loading it again reads them from disk instead of S3; the load-phase metric tells the two apart."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.storage.helpers import infer_body, push, weights_total, write_weights_model
from tests.storage.s3server import MotoServer
from tests.support.server import ServerProcess

MiB = 1 << 20


def _loads(metrics: str, model: str) -> dict[str, tuple[int, float, float]]:
    """Per source: (loads, total seconds, download seconds) of ``model``."""
    found: dict[str, list[float]] = {}
    for line in metrics.splitlines():
        match = re.match(r"modelhost_model_load_seconds_(count|sum)\{(.*)\} (\S+)$", line)
        if match is None:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2)))
        if labels["model"] != model:
            continue
        row = found.setdefault(labels["source"], [0, 0.0, 0.0])
        if match.group(1) == "count" and labels["phase"] == "total":
            row[0] = int(float(match.group(3)))
        elif match.group(1) == "sum" and labels["phase"] in ("total", "download"):
            row[1 if labels["phase"] == "total" else 2] = float(match.group(3))
    return {source: (int(n), total, download) for source, (n, total, download) in found.items()}


def test_a_model_reloaded_after_leaving_memory_comes_from_disk_not_s3(
    tmp_path: Path, moto: MotoServer, s3_repository: str
) -> None:
    source = write_weights_model(tmp_path / "src", "weights", 16 * MiB)
    push(source, "weights", s3_repository, moto.env())
    expected = [weights_total(source)]
    with ServerProcess(s3_repository, tmp_path / "server.log", env=moto.env()) as server:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for _ in range(3):
                response = client.post("/v2/models/weights/infer", json=infer_body([1.0]))
                assert response.status_code == 200, response.text
                assert response.json()["outputs"][0]["data"] == expected
                unloaded = client.post("/v2/repository/models/weights/unload")
                assert unloaded.status_code == 200, unloaded.text
            metrics = client.get("/metrics").text
    assert moto.gets("weights/1/weights.bin") == 1  # fetched once, read from disk twice after
    loads = _loads(metrics, "weights")
    assert loads["remote"][0] == 1 and loads["disk"][0] == 2, loads
    # The first load's time went partly to the download; the reloads only found their files.
    assert loads["disk"][2] < loads["remote"][2] / 10, loads
    assert "modelhost_artifact_cache_downloads_total 3.0" in metrics  # model.yaml/.py, weights
