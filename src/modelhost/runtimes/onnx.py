"""ONNX models through onnxruntime (extra: ``modelhost[onnx]``)."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort

from modelhost.errors import ModelLoadFailed
from modelhost.manifest import Manifest
from modelhost.runtimes.base import Runtime, Tensors


class OnnxRuntime(Runtime):
    """Runs ``model.onnx`` (or the only ``*.onnx`` file) of a version folder on the CPU."""

    # InferenceSession.run may be called from several threads at once.
    thread_safe = True
    may_run_inline = True  # computes on the calling thread (onnx: with one thread)

    def __init__(self, threads: int = 1, work_dir: Path | None = None) -> None:
        super().__init__(threads, work_dir)
        self._session: ort.InferenceSession | None = None
        self._output_names: list[str] = []

    def load(self, path: Path, manifest: Manifest) -> None:
        model_file = _find_model_file(path)
        options = ort.SessionOptions()
        # The caller shares the cores among instances; never let one session take them all.
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # ORT reads the file itself; no Python-side copy of the weights is made.
        self._session = ort.InferenceSession(
            str(model_file), sess_options=options, providers=["CPUExecutionProvider"]
        )
        declared = {spec.name for spec in manifest.outputs}
        graph_outputs = {out.name for out in self._session.get_outputs()}
        missing = declared - graph_outputs
        if missing:
            raise ModelLoadFailed(
                f"{model_file.name} has no outputs named {sorted(missing)}; "
                f"the graph's outputs are {sorted(graph_outputs)}"
            )
        self._output_names = [spec.name for spec in manifest.outputs]

    def predict(self, inputs: Tensors) -> Tensors:
        assert self._session is not None, "predict before load"
        results = self._session.run(self._output_names, inputs)
        return dict(zip(self._output_names, results, strict=True))

    def unload(self) -> None:
        self._session = None


def _find_model_file(path: Path) -> Path:
    preferred = path / "model.onnx"
    if preferred.is_file():
        return preferred
    candidates = sorted(path.glob("*.onnx"))
    if len(candidates) != 1:
        raise ModelLoadFailed(f"{path} must hold model.onnx (found {[c.name for c in candidates]})")
    return candidates[0]
