"""Runtime names → classes, imported only when a model needs them.

Each framework is an optional extra; a model whose framework is not installed fails its load
with an error naming the extra, while the server and every other model keep working.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from modelhost.errors import RuntimeNotInstalled
from modelhost.runtimes.base import Runtime


@dataclass(frozen=True)
class RuntimeSpec:
    module: str
    class_name: str
    extra: str
    needs: tuple[str, ...]  # the third-party packages whose absence means "install the extra"


RUNTIMES: dict[str, RuntimeSpec] = {
    "onnx": RuntimeSpec("modelhost.runtimes.onnx", "OnnxRuntime", "onnx", ("onnxruntime",)),
    "sklearn": RuntimeSpec(
        "modelhost.runtimes.sklearn", "SklearnRuntime", "sklearn", ("sklearn", "joblib")
    ),
    "torch": RuntimeSpec(
        "modelhost.runtimes.torch", "TorchRuntime", "torch", ("torch", "safetensors")
    ),
    "transformers": RuntimeSpec(
        "modelhost.runtimes.transformers",
        "TransformersRuntime",
        "transformers",
        ("torch", "transformers", "tokenizers", "safetensors"),
    ),
    "transformers-onnx": RuntimeSpec(
        "modelhost.runtimes.transformers_onnx",
        "TransformersOnnxRuntime",
        "onnx",
        ("onnxruntime", "tokenizers"),
    ),
    "python": RuntimeSpec("modelhost.runtimes.python", "PythonRuntime", "python", ()),
}


def runtime_class(name: str) -> type[Runtime]:
    """Import the runtime ``name``. Blocking (imports read files): call it in a worker thread."""
    spec = RUNTIMES.get(name)
    if spec is None:
        raise RuntimeNotInstalled(
            f"this modelhost version has no {name!r} runtime; it has {sorted(RUNTIMES)}"
        )
    try:
        module = importlib.import_module(spec.module)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing not in spec.needs:
            raise
        raise RuntimeNotInstalled(
            f"the {name!r} runtime needs the {missing!r} package, which is not installed: "
            f"pip install 'modelhost[{spec.extra}]'"
        ) from None
    cls: type[Runtime] = getattr(module, spec.class_name)
    return cls
