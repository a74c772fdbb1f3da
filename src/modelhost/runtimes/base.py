"""The Runtime contract: how modelhost runs one framework's models.

A runtime object holds one loaded copy (an *instance*) of one model version::

    runtime = SomeRuntime(threads=2)
    runtime.load(path, manifest)      # blocking: called in a worker thread
    outputs = runtime.predict(inputs)  # blocking: called in a worker thread
    runtime.unload()

``predict`` takes and returns a mapping of tensor name to numpy array, the first dimension being
the batch dimension when the manifest's ``max_batch_size`` is above zero. Inputs arrive already
checked against the manifest (names, datatypes, shapes); outputs are checked and cast by the
caller. ``thread_safe`` says whether one instance may run several ``predict`` calls at once; when
it is False the caller never does that. ``may_run_inline`` says a call only computes, on the
calling thread: then a model measured cheap may be called on the event loop itself.
``threads`` is how many compute threads the instance may use: the caller divides the cores
among instances so they don't oversubscribe them.
``work_dir`` is a folder of the server's own (under its cache folder) where a runtime may keep
files it derives from a model's and reuses across loads and restarts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import numpy as np

from modelhost.manifest import Manifest

Tensors = dict[str, np.ndarray]


class Runtime(ABC):
    """One loaded instance of a model version."""

    thread_safe: ClassVar[bool] = False
    # Whether a call is pure computation on the calling thread (no sleeping, no I/O, no other
    # threads), so that a cheap one may run on the event loop (see runtimes.pool).
    may_run_inline: ClassVar[bool] = False

    def __init__(self, threads: int = 1, work_dir: Path | None = None) -> None:
        self.threads = max(1, threads)
        # Where a runtime may keep what it derives from a model's files and reuses across
        # loads and restarts (an ONNX export); None: nowhere, derive again at every load.
        self.work_dir = work_dir

    @abstractmethod
    def load(self, path: Path, manifest: Manifest) -> None:
        """Load the version from its local folder. Raise to report a failed load."""

    @abstractmethod
    def predict(self, inputs: Tensors) -> Tensors:
        """Run the model on a batch; return every output the manifest declares."""

    def unload(self) -> None:  # noqa: B027 - most runtimes only need to drop references
        """Release what ``load`` took; the object is not used again."""

    def reported_bytes(self) -> int | None:
        """Bytes this instance holds, for runtimes that can count them (tensor sizes).

        None (the default) means: measure the process instead.
        """
        return None
