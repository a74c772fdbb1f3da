"""What the Open Inference Protocol says about the server and its models, whatever the transport:
REST and gRPC each encode these the way their protocol spells them."""

from __future__ import annotations

from dataclasses import dataclass

from modelhost import __version__
from modelhost.catalog.model_catalog import ModelCatalog
from modelhost.manifest import TensorSpec

SERVER_NAME = "modelhost"
SERVER_VERSION = __version__
EXTENSIONS = ("binary_tensor_data", "model_repository", "model_configuration")

# What Triton users see as a model's "platform".
PLATFORMS = {
    "onnx": "onnxruntime_onnx",
    "sklearn": "sklearn",
    "python": "python",
    "torch": "pytorch_libtorch",
    "transformers": "transformers",
    "transformers-onnx": "onnxruntime_onnx",
}


@dataclass(frozen=True, slots=True)
class ModelMetadata:
    """A model's metadata: the versions it has and the signature of the one asked for."""

    name: str
    versions: list[str]
    platform: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


def model_metadata(catalog: ModelCatalog, name: str, version: str | None) -> ModelMetadata:
    """``name`` (at ``version``, else its highest) as the protocol describes it; 404 if unknown."""
    ref = catalog.resolve(name, version)
    manifest = ref.manifest
    return ModelMetadata(
        name=ref.name,
        versions=[str(r.version) for r in catalog.versions(name) if r.manifest is not None],
        platform=PLATFORMS[manifest.runtime],
        inputs=manifest.inputs,
        outputs=manifest.outputs,
    )
