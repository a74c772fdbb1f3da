"""``model.yaml``: the public contract of one model version (see DESIGN.md).

Extend it, don't break it: new keys get defaults, old files keep parsing.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from modelhost.errors import InvalidManifest
from modelhost.tensors.datatypes import DATATYPES

MANIFEST_FILE = "model.yaml"

RuntimeName = Literal["onnx", "sklearn", "torch", "transformers", "transformers-onnx", "python"]


class TensorSpec(BaseModel):
    """One input or output: its name, V2 datatype and shape (``-1`` is any size)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    datatype: str
    shape: tuple[int, ...]
    # sklearn runtime: which estimator method fills this output (predict, predict_proba, ...).
    method: str | None = None

    @field_validator("datatype")
    @classmethod
    def _known_datatype(cls, value: str) -> str:
        if value not in DATATYPES:
            raise ValueError(f"unknown datatype {value!r}; one of {sorted(DATATYPES)}")
        return value

    @field_validator("shape")
    @classmethod
    def _valid_dims(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(dim < -1 or dim == 0 for dim in value):
            raise ValueError("shape dimensions are positive sizes or -1 for any size")
        return value


class Batching(BaseModel):
    """Dynamic batching knobs; present in model.yaml means batching is on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_delay_ms: float = Field(default=2.0, ge=0, le=10_000)
    # A batch that reaches one of these sizes runs at once instead of waiting out the delay.
    preferred_batch_sizes: tuple[int, ...] = ()

    @field_validator("preferred_batch_sizes")
    @classmethod
    def _positive(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(size < 1 for size in value):
            raise ValueError("preferred batch sizes are positive")
        return tuple(sorted(set(value)))


class Manifest(BaseModel):
    """A parsed and validated ``model.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    runtime: RuntimeName
    inputs: tuple[TensorSpec, ...] = Field(min_length=1)
    outputs: tuple[TensorSpec, ...] = Field(min_length=1)
    max_batch_size: int = Field(default=0, ge=0)
    batching: Batching | None = None
    instances: int = Field(default=1, ge=1, le=64)
    pinned: bool = False
    memory_bytes: int = Field(default=0, ge=0)
    entry_point: str | None = None
    # Requests waiting for this model beyond this many are refused at once (503).
    max_queue_size: int = Field(default=256, ge=1)
    # What the model is for, where an API depends on it: "embedding" serves /v1/embeddings.
    task: str | None = None
    # Runtime-specific settings (transformers: pooling, max_length; torch: init arguments).
    parameters: dict[str, Any] = Field(default_factory=dict)

    @field_validator("inputs", "outputs")
    @classmethod
    def _unique_names(cls, value: tuple[TensorSpec, ...]) -> tuple[TensorSpec, ...]:
        names = [spec.name for spec in value]
        if len(set(names)) != len(names):
            raise ValueError(f"tensor names must be unique, got {names}")
        return value

    @model_validator(mode="after")
    def _batching_fits(self) -> Manifest:
        if self.batching is not None and self.max_batch_size == 0:
            raise ValueError("batching needs max_batch_size above 0 (the batch dimension)")
        sizes = self.batching.preferred_batch_sizes if self.batching else ()
        if sizes and max(sizes) > self.max_batch_size:
            raise ValueError("preferred_batch_sizes may not exceed max_batch_size")
        return self

    @cached_property
    def _inputs_by_name(self) -> dict[str, TensorSpec]:
        return {spec.name: spec for spec in self.inputs}

    @cached_property
    def _outputs_by_name(self) -> dict[str, TensorSpec]:
        return {spec.name: spec for spec in self.outputs}

    def input(self, name: str) -> TensorSpec | None:
        return self._inputs_by_name.get(name)

    def output(self, name: str) -> TensorSpec | None:
        return self._outputs_by_name.get(name)


def parse_manifest(data: Any, *, source: str) -> Manifest:
    """Validate already-loaded YAML data; errors name the file and the offending key."""
    if not isinstance(data, dict):
        raise InvalidManifest(f"{source}: expected a mapping at the top level")
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in err['loc']) or '(top)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise InvalidManifest(f"{source}: {problems}") from None


def read_manifest(version_dir: Path) -> Manifest:
    """Read ``<version_dir>/model.yaml``. Blocking: call it from a worker thread."""
    path = version_dir / MANIFEST_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidManifest(f"{path}: {exc}") from None
    return parse_manifest(data, source=str(path))
