"""``/v1/embeddings`` driven by the OpenAI SDK, and checked against the V2 path."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import numpy as np
import openai
import pytest

from tests.support.models import write_demo_models, write_hash_embedding_model
from tests.support.server import ServerProcess

TEXTS = ["a cat sat", "dogs bark loudly at night", "zebra", "quantum chromodynamics", "é", "x y"]


@pytest.fixture(scope="module")
def embed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("models")
    write_hash_embedding_model(root)
    write_demo_models(root)
    with ServerProcess(root, tmp_path_factory.mktemp("logs") / "server.log") as server:
        yield server


def _v2_embeddings(url: str, texts: list[str]) -> np.ndarray:
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": texts}]}
    response = httpx.post(f"{url}/v2/models/hash-embed/infer", json=body)
    assert response.status_code == 200, response.text
    output = next(o for o in response.json()["outputs"] if o["name"] == "embedding")
    return np.array(output["data"], dtype=np.float32).reshape(output["shape"])


@pytest.mark.parametrize("encoding", ["base64", "float"])
def test_openai_sdk_gets_the_same_vectors_as_v2(embed_server: ServerProcess, encoding: str) -> None:
    client = openai.OpenAI(base_url=f"{embed_server.url}/v1", api_key="not-needed-yet")
    # Six inputs with max_batch_size 4: the route splits them into two requests.
    result = client.embeddings.create(model="hash-embed", input=TEXTS, encoding_format=encoding)  # type: ignore[arg-type]
    assert [item.index for item in result.data] == list(range(len(TEXTS)))
    if encoding == "base64":  # asked for explicitly, the SDK hands the strings over as they are
        got = np.array(
            [np.frombuffer(base64.b64decode(item.embedding), "<f4") for item in result.data]
        )  # type: ignore[arg-type]
    else:
        got = np.array([item.embedding for item in result.data], dtype=np.float32)
    expected = np.concatenate(
        [_v2_embeddings(embed_server.url, TEXTS[:3]), _v2_embeddings(embed_server.url, TEXTS[3:])]
    )
    np.testing.assert_array_equal(got, expected)
    assert result.model == "hash-embed"
    assert result.usage.prompt_tokens == sum(len(t.encode().split()) for t in TEXTS)


def test_openai_sdk_default_encoding_and_single_string(embed_server: ServerProcess) -> None:
    client = openai.OpenAI(base_url=f"{embed_server.url}/v1", api_key="not-needed-yet")
    result = client.embeddings.create(model="hash-embed", input="zebra")
    assert len(result.data) == 1
    np.testing.assert_allclose(
        result.data[0].embedding, _v2_embeddings(embed_server.url, ["zebra"])[0]
    )


@pytest.mark.parametrize(
    ("body", "status", "mentions"),
    [
        ({"model": "hash-embed", "input": []}, 400, "non-empty list"),
        ({"model": "hash-embed", "input": [1, 2]}, 400, "strings"),
        ({"model": "hash-embed"}, 400, "'input'"),
        ({"input": "x"}, 400, "'model'"),
        ({"model": "hash-embed", "input": "x", "encoding_format": "int8"}, 400, "encoding_format"),
        ({"model": "hash-embed", "input": "x", "dimensions": 4}, 400, "dimensions"),
        ({"model": "iris-onnx", "input": "x"}, 400, "not an embedding model"),
        ({"model": "no-such-model", "input": "x"}, 404, "unknown model"),
    ],
)
def test_bad_embedding_requests(
    embed_server: ServerProcess, body: dict[str, object], status: int, mentions: str
) -> None:
    response = httpx.post(f"{embed_server.url}/v1/embeddings", json=body)
    assert response.status_code == status, response.text
    assert mentions in response.json()["error"]
