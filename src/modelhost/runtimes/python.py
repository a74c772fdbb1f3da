"""Custom Python code: a class in the version folder, named by ``entry_point: module:Class``.

The class needs two methods::

    class Model:
        def load(self, path: str) -> None: ...
        def predict(self, inputs: dict[str, numpy.ndarray]) -> dict[str, numpy.ndarray]: ...

and may have ``unload(self)``. Its instances are assumed not to be thread-safe: each gets one
call at a time; ``instances: N`` in model.yaml runs N of them side by side.
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path
from typing import Any

from modelhost.errors import ModelLoadFailed
from modelhost.registry.manifest import Manifest
from modelhost.runtimes.base import Runtime, Tensors

_module_ids = itertools.count()


class PythonRuntime(Runtime):
    """Loads the user's class from the version folder and delegates to it."""

    thread_safe = False

    def __init__(self, threads: int = 1) -> None:
        super().__init__(threads)
        self._model: Any = None

    def load(self, path: Path, manifest: Manifest) -> None:
        entry_point = manifest.entry_point or "model:Model"
        module_name, _, class_name = entry_point.partition(":")
        if not module_name or not class_name or "/" in module_name or ".." in module_name:
            raise ModelLoadFailed(f"entry_point {entry_point!r} is not 'module:Class'")
        source = path / f"{module_name.replace('.', '/')}.py"
        if not source.is_file():
            raise ModelLoadFailed(f"entry_point module {source.name} is not in {path}")
        # A unique module name per load: two versions (or instances) never share module state.
        unique = f"modelhost_user_{module_name.replace('.', '_')}_{next(_module_ids)}"
        spec = importlib.util.spec_from_file_location(unique, source)
        if spec is None or spec.loader is None:
            raise ModelLoadFailed(f"cannot import {source}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[unique] = module
        try:
            spec.loader.exec_module(module)
            cls = getattr(module, class_name, None)
            if cls is None:
                raise ModelLoadFailed(f"{source.name} defines no class {class_name!r}")
            model = cls()
            model.load(str(path))
        finally:
            # Modules are reached through the instance; keeping them registered would leak.
            sys.modules.pop(unique, None)
        self._model = model

    def predict(self, inputs: Tensors) -> Tensors:
        outputs = self._model.predict(inputs)
        if not isinstance(outputs, dict):
            raise TypeError(f"predict returned {type(outputs).__name__}, not a dict of arrays")
        return outputs

    def unload(self) -> None:
        unload = getattr(self._model, "unload", None)
        if callable(unload):
            unload()
        self._model = None
