"""scikit-learn estimators saved with joblib (extra: ``modelhost[sklearn]``).

Each output names the estimator method that fills it (``method`` in model.yaml): the first
output defaults to ``predict``; a second output usually asks for ``predict_proba``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np

# Unpickling an estimator imports its sklearn modules. Importing the common families here, when
# the server warms its runtimes, keeps that import out of the first model's measured footprint.
import sklearn.ensemble
import sklearn.linear_model
import sklearn.pipeline
import sklearn.preprocessing
import sklearn.tree  # noqa: F401

from modelhost.errors import ModelLoadFailed
from modelhost.manifest import Manifest
from modelhost.runtimes.base import Runtime, Tensors

_METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function", "transform")


class SklearnRuntime(Runtime):
    """Runs ``model.joblib`` (or ``model.pkl``); the manifest has exactly one input."""

    # Fitted estimators are read-only during predict.
    thread_safe = True
    may_run_inline = True  # computes on the calling thread (onnx: with one thread)

    def __init__(self, threads: int = 1, work_dir: Path | None = None) -> None:
        super().__init__(threads, work_dir)
        self._estimator: Any = None
        self._input_name = ""
        self._methods: list[tuple[str, str]] = []

    def load(self, path: Path, manifest: Manifest) -> None:
        if len(manifest.inputs) != 1:
            raise ModelLoadFailed("the sklearn runtime takes exactly one input tensor")
        model_file = next(
            (path / name for name in ("model.joblib", "model.pkl") if (path / name).is_file()),
            None,
        )
        if model_file is None:
            raise ModelLoadFailed(f"{path} holds neither model.joblib nor model.pkl")
        estimator = joblib.load(model_file)
        methods: list[tuple[str, str]] = []
        for position, spec in enumerate(manifest.outputs):
            method = spec.method or ("predict" if position == 0 else "predict_proba")
            if method not in _METHODS or not callable(getattr(estimator, method, None)):
                raise ModelLoadFailed(
                    f"output {spec.name!r} asks for {method!r}, which "
                    f"{type(estimator).__name__} does not have (one of {list(_METHODS)})"
                )
            methods.append((spec.name, method))
        self._estimator = estimator
        self._input_name = manifest.inputs[0].name
        self._methods = methods

    def predict(self, inputs: Tensors) -> Tensors:
        features = inputs[self._input_name]
        return {
            name: np.asarray(getattr(self._estimator, method)(features))
            for name, method in self._methods
        }

    def unload(self) -> None:
        self._estimator = None
