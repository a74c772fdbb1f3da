"""A ``/v1/embeddings`` request refused part-way takes back the chunks already admitted: none of
its work runs after its answer, and nobody waits behind it."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.support.cli import create_user
from tests.support.models import write_python_model
from tests.support.server import ServerProcess

BATCH_SECONDS = 0.3

# Each call takes BATCH_SECONDS and logs how many texts it embedded.
SLOW_EMBEDDING_CODE = f"""
import os, time
import numpy as np

class Model:
    def load(self, path):
        self.calls = os.path.join(path, "calls.log")

    def predict(self, inputs):
        texts = inputs["text"]
        time.sleep({BATCH_SECONDS})
        with open(self.calls, "a") as log:
            log.write(f"{{len(texts)}}\\n")
        return {{"embedding": np.ones((len(texts), 4), dtype=np.float32)}}
"""


def calls(version_dir: Path) -> int:
    log = version_dir / "calls.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_refused_embeddings_request_cancels_its_queued_chunks(tmp_path: Path) -> None:
    version_dir = write_python_model(
        tmp_path / "models",
        "slow-embed",
        SLOW_EMBEDDING_CODE,
        {
            "task": "embedding",
            "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
            "outputs": [{"name": "embedding", "datatype": "FP32", "shape": [-1, 4]}],
            "max_batch_size": 8,
            "batching": {"max_delay_ms": 1},
            "max_queue_size": 4,
        },
    )
    database_url = f"sqlite:///{tmp_path / 'modelhost.db'}"
    env = {"MODELHOST_AUTH": "enabled", "MODELHOST_DATABASE_URL": database_url}
    with ServerProcess(tmp_path / "models", tmp_path / "server.log", env=env) as server:
        heavy, light = (
            {"Authorization": f"Bearer {create_user(name, 'user', database_url)}"}
            for name in ("heavy", "light")
        )
        with httpx.Client(base_url=server.url, timeout=60) as http:
            one = {"model": "slow-embed", "input": "one sentence"}
            assert http.post("/v1/embeddings", json=one, headers=heavy).status_code == 200

            # 13 chunks of 8 into a queue of 4: some are admitted, then one is refused.
            many = {"model": "slow-embed", "input": [f"text {i}" for i in range(100)]}
            refused = http.post("/v1/embeddings", json=many, headers=heavy)
            assert refused.status_code == 503, refused.text
            assert refused.json()["code"] == "queue_full"
            ran_before_the_answer = calls(version_dir)

            # Another user's sentence waits for the batch running now at most.
            started = time.monotonic()
            assert http.post("/v1/embeddings", json=one, headers=light).status_code == 200
            assert time.monotonic() - started < 4 * BATCH_SECONDS
            # And the refused user's next request is not behind its own refused chunks.
            started = time.monotonic()
            assert http.post("/v1/embeddings", json=one, headers=heavy).status_code == 200
            assert time.monotonic() - started < 4 * BATCH_SECONDS

            time.sleep(4 * BATCH_SECONDS)  # whatever was still queued would have run by now
            # After the refusal: at most the batch that was running, and the two sentences.
            assert calls(version_dir) - ran_before_the_answer <= 3
