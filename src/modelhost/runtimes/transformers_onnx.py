"""Hugging Face text models on ONNX Runtime (extras: ``modelhost[onnx]``, and
``modelhost[transformers]`` to export): ``runtime: transformers-onnx``.

The same model.yaml as the ``transformers`` runtime (one BYTES input of texts; ``task:
embedding`` for pooled vectors, else logits; ``token_count``; ``parameters``: ``package``,
``model_path``, ``pooling``, ``normalize``, ``max_length``: see :mod:`runtimes.text`), and the
same results (the tests hold the embeddings to a cosine of 0.9999 with the torch runtime's),
computed in three steps:

1. tokenize in Python with the model's fast tokenizer (``tokenizer.json``, the Rust
   ``tokenizers`` library; padded to the batch's longest text, truncated at ``max_length``);
2. the forward pass in an ONNX Runtime session whose compute threads are the ones the loader
   gives the instance (the cores shared out among the model's concurrent calls);
3. pooling and normalization in numpy.

The graph: the version folder's own ``model.onnx`` when it has one (a ready export, with its
``tokenizer.json`` beside it or in the model folder), else exported once from the model folder
by :mod:`runtimes.onnx_export` and kept under the server's work folder with its sha256 for the
next loads and restarts. Serving an existing graph needs neither torch nor transformers.
"""

from __future__ import annotations

import os

# The tokenizer's own thread pool would compete with the threads the loader shares out.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import dataclasses  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import tokenizers  # noqa: E402

from modelhost.errors import ModelLoadFailed  # noqa: E402
from modelhost.manifest import Manifest  # noqa: E402
from modelhost.runtimes.base import Runtime, Tensors  # noqa: E402
from modelhost.runtimes.onnx_export import ONNX_FILE, cached_export, export  # noqa: E402
from modelhost.runtimes.text import (  # noqa: E402
    TOKEN_COUNT_OUTPUT,
    TextModelSettings,
    clamp_max_length,
    model_folder,
    pool,
    read_json,
    texts_of,
)

TOKENIZER_FILE = "tokenizer.json"
_ORT_STATE = ort.capi.onnxruntime_pybind11_state
# What InferenceSession raises for a file that is no graph it can run (none is a RuntimeError).
_ORT_ERRORS = (
    _ORT_STATE.Fail,
    _ORT_STATE.InvalidProtobuf,
    _ORT_STATE.InvalidGraph,
    _ORT_STATE.InvalidArgument,
    _ORT_STATE.NoSuchFile,
    _ORT_STATE.RuntimeException,
    RuntimeError,
)
_TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class TransformersOnnxRuntime(Runtime):
    """A fast tokenizer + an ONNX Runtime session + numpy pooling."""

    # InferenceSession.run may be called from several threads at once; the tokenizer is
    # configured once at load and only read afterwards (under a lock all the same: it is cheap).
    thread_safe = True

    def __init__(self, threads: int = 1, work_dir: Path | None = None) -> None:
        super().__init__(threads, work_dir)
        self._session: ort.InferenceSession | None = None
        self._tokenizer: tokenizers.Tokenizer | None = None
        self._tokenizer_lock = threading.Lock()
        self._settings: TextModelSettings | None = None
        self._feeds: dict[str, Any] = {}  # graph input name → numpy dtype
        self._graph_output = ""
        self._width = 0

    def load(self, path: Path, manifest: Manifest) -> None:
        settings = TextModelSettings.from_manifest(manifest, "transformers-onnx")
        folder = model_folder(path, manifest.parameters)
        config = read_json(folder / "config.json")
        self._tokenizer, tokenizer_limit = _tokenizer(folder, path)
        max_length = clamp_max_length(
            settings.max_length, tokenizer_limit, config.get("max_position_embeddings")
        )
        self._settings = dataclasses.replace(settings, max_length=max_length)
        self._tokenizer.enable_truncation(max_length=max_length)
        self._session = self._open_session(path, folder, settings.embedding)
        inputs = {item.name: item.type for item in self._session.get_inputs()}
        unknown = set(inputs) - set(_TOKEN_INPUTS)
        if unknown or "input_ids" not in inputs:
            raise ModelLoadFailed(
                f"the ONNX graph takes {sorted(inputs)}; expected input_ids and optionally "
                f"attention_mask and token_type_ids"
            )
        self._feeds = {
            name: np.int32 if kind == "tensor(int32)" else np.int64 for name, kind in inputs.items()
        }
        output = self._session.get_outputs()[0]
        self._graph_output = output.name
        width = config.get("hidden_size" if settings.embedding else "num_labels")
        if not isinstance(width, int):
            width = output.shape[-1] if isinstance(output.shape[-1], int) else 0
        self._width = width

    def _open_session(self, path: Path, folder: Path, embedding: bool) -> ort.InferenceSession:
        options = session_options(self.threads)
        providers = ["CPUExecutionProvider"]
        ready = path / ONNX_FILE
        try:
            if ready.is_file():
                return ort.InferenceSession(str(ready), options, providers=providers)
            if self.work_dir is not None:
                graph = cached_export(folder, self.work_dir, embedding=embedding)
                return ort.InferenceSession(str(graph), options, providers=providers)
            with tempfile.TemporaryDirectory(prefix="modelhost-onnx-") as scratch:
                graph = Path(scratch) / ONNX_FILE
                export(folder, graph, embedding=embedding)
                return ort.InferenceSession(str(graph), options, providers=providers)
        except _ORT_ERRORS as exc:
            raise ModelLoadFailed(f"ONNX Runtime cannot load the graph: {exc}") from None

    def predict(self, inputs: Tensors) -> Tensors:
        session, settings, tokenizer = self._session, self._settings, self._tokenizer
        assert session is not None and settings is not None and tokenizer is not None, "load"
        texts = texts_of(inputs[settings.input_name], settings.input_name)
        if not texts:
            empty: Tensors = {settings.output_name: np.zeros((0, self._width), dtype=np.float32)}
            if settings.count_tokens:
                empty[TOKEN_COUNT_OUTPUT] = np.zeros(0, dtype=np.int64)
            return empty
        with self._tokenizer_lock:
            encodings = tokenizer.encode_batch(texts)
        columns = {
            "input_ids": [e.ids for e in encodings],
            "attention_mask": [e.attention_mask for e in encodings],
            "token_type_ids": [e.type_ids for e in encodings],
        }
        feeds = {name: np.array(columns[name], dtype=dtype) for name, dtype in self._feeds.items()}
        mask = feeds.get("attention_mask")
        if mask is None:
            mask = np.array(columns["attention_mask"], dtype=np.int64)
        result = session.run([self._graph_output], feeds)[0]
        if settings.embedding and result.ndim == 3:  # token states: pool them here
            result = pool(result, mask, settings.pooling, settings.normalize)
        elif settings.embedding and settings.normalize:  # a graph that pools by itself
            result = pool(result[:, None, :], np.ones((len(texts), 1)), "cls", True)
        outputs = {settings.output_name: np.ascontiguousarray(result, dtype=np.float32)}
        if settings.count_tokens:
            outputs[TOKEN_COUNT_OUTPUT] = mask.sum(axis=1, dtype=np.int64)
        return outputs

    def unload(self) -> None:
        self._session = None
        self._tokenizer = None


def session_options(threads: int) -> ort.SessionOptions:
    """How the runtime sets up its ONNX Runtime sessions, ``threads`` compute threads each."""
    options = ort.SessionOptions()
    # The loader shares the cores among the model's concurrent calls; never let one
    # session take them all, nor spin on cores the event loop needs.
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def _tokenizer(folder: Path, path: Path) -> tuple[tokenizers.Tokenizer, object]:
    """The fast tokenizer of the model (its ``tokenizer.json``, in the model folder or the
    version folder), padding to the batch's longest text with the model's pad token; and the
    length the tokenizer's config says the model takes."""
    for where in dict.fromkeys((folder, path)):
        file = where / TOKENIZER_FILE
        if file.is_file():
            break
    else:
        raise ModelLoadFailed(
            f"no {TOKENIZER_FILE} in {folder}: the transformers-onnx runtime needs the model's "
            "fast tokenizer"
        )
    try:
        tokenizer = tokenizers.Tokenizer.from_file(str(file))
    except Exception as exc:  # the Rust side raises plain Exceptions
        raise ModelLoadFailed(f"cannot read {file}: {exc}") from None
    config = {**read_json(file.parent / "special_tokens_map.json")}
    config.update(read_json(file.parent / "tokenizer_config.json"))
    pad = config.get("pad_token", "[PAD]")
    pad_token = str(pad.get("content", "[PAD]") if isinstance(pad, dict) else pad)
    pad_id = tokenizer.token_to_id(pad_token)
    if pad_id is None:
        raise ModelLoadFailed(f"{file} has no pad token {pad_token!r}")
    tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token)
    return tokenizer, config.get("model_max_length")
