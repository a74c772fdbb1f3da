"""Custom Python code: a class in the version folder, named by ``entry_point: module:Class``.

The class needs two methods::

    class Model:
        def load(self, path: str) -> None: ...
        def predict(self, inputs: dict[str, numpy.ndarray]) -> dict[str, numpy.ndarray]: ...

and may have ``unload(self)``. Its instances are assumed not to be thread-safe: each gets one
call at a time; ``instances: N`` in model.yaml runs N of them side by side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelhost.manifest import Manifest
from modelhost.runtimes.base import Runtime, Tensors
from modelhost.runtimes.entry_points import import_entry_point


class PythonRuntime(Runtime):
    """Loads the user's class from the version folder and delegates to it."""

    thread_safe = False

    def __init__(self, threads: int = 1, work_dir: Path | None = None) -> None:
        super().__init__(threads, work_dir)
        self._model: Any = None

    def load(self, path: Path, manifest: Manifest) -> None:
        model = import_entry_point(path, manifest.entry_point or "model:Model")()
        model.load(str(path))
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
