"""Metering is one seam: for every metered endpoint, what /metrics and the usage records say
about a request is what the client was actually sent (status, body bytes) and what it sent."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.observability.test_metrics import scrape
from tests.support.models import write_hash_embedding_model, write_memory_model
from tests.support.server import ServerProcess
from tests.support.waiting import eventually

X = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": [1.0, 2.0]}]}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("models")
    write_memory_model(root, "m", 1)
    write_hash_embedding_model(root)
    with ServerProcess(root, tmp_path_factory.mktemp("logs") / "server.log") as server:
        yield server


# A request to send, and whether the server reads its body before answering.
Sent = tuple[str, dict[str, Any], bool]


def _send(http: httpx.Client, path: str, body: dict[str, Any], read: bool) -> tuple[int, int, int]:
    """(status, body bytes the server read, body bytes it answered with) of one POST."""
    content = orjson.dumps(body)
    response = http.post(path, content=content, headers={"content-type": "application/json"})
    assert "content-encoding" not in response.headers  # so .content is the bytes on the wire
    return response.status_code, len(content) if read else 0, len(response.content)


def _check(
    server: ServerProcess, endpoint: str, requests: list[tuple[str, dict[str, Any]]]
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        before = http.get("/api/v1/usage", params={"limit": 1000}).json()["records"]
        sent = [_send(http, *request) for request in requests]

        def records() -> list[dict[str, Any]] | None:
            found = http.get("/api/v1/usage", params={"limit": 1000}).json()["records"]
            fresh = found[: len(found) - len(before)]
            return fresh if len(fresh) == len(sent) else None

        recorded = eventually(records)
    # Newest first in the listing: back into the order the requests were sent.
    got = [(r["status"], r["bytes_in"], r["bytes_out"]) for r in reversed(recorded)]
    assert got == sent
    samples = scrape(server.url)
    for status in {status for status, _, _ in sent}:
        counted = sum(
            value
            for (name, labels), value in samples.items()
            if name == "modelhost_requests_total"
            and dict(labels)["endpoint"] == endpoint
            and dict(labels)["status"] == str(status)
        )
        assert counted == sum(1 for s, _, _ in sent if s == status), (endpoint, status)


def test_v2_infer_is_metered_as_answered(server: ServerProcess) -> None:
    binary = {**X, "parameters": {"binary_data_output": True}}
    _check(
        server,
        "infer",
        [
            ("/v2/models/m/infer", X, True),  # 200, JSON
            ("/v2/models/m/infer", binary, True),  # 200, binary tensor data
            ("/v2/models/m/infer", {"inputs": []}, True),  # 400
            ("/v2/models/absent/infer", X, False),  # 404 before the body is read
        ],
    )


def test_embeddings_are_metered_as_answered(server: ServerProcess) -> None:
    one = {"model": "hash-embed", "input": "one", "encoding_format": "base64"}
    _check(
        server,
        "embeddings",
        [
            ("/v1/embeddings", {"model": "hash-embed", "input": ["a cat", "a dog"]}, True),  # 200
            ("/v1/embeddings", one, True),  # 200
            ("/v1/embeddings", {"model": "hash-embed", "input": []}, True),  # 400
            ("/v1/embeddings", {"model": "absent", "input": "x"}, True),  # 404
        ],
    )
