"""CloudWatch Embedded Metric Format: metrics as structured log lines.

A CloudWatch agent or Fluent Bit turns these lines into CloudWatch metrics without any API call
from the pod. Every ``interval`` seconds the server writes one line per model that had traffic
(Requests, Errors, Latency) and one line for the process (memory against the budget, resident
models, queue depth, model loads that failed in the interval), all in the ``modelhost`` namespace.
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

import orjson

NAMESPACE = "modelhost"
_MAX_VALUES = 100  # EMF takes at most 100 values per metric in one line


@dataclass
class _ModelWindow:
    requests: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def add(self, status: int, seconds: float) -> None:
        self.requests += 1
        if status >= 500:
            self.errors += 1
        # Keep a uniform sample of at most 100 latencies (reservoir sampling).
        if len(self.latencies_ms) < _MAX_VALUES:
            self.latencies_ms.append(seconds * 1000)
        else:
            slot = random.randrange(self.requests)
            if slot < _MAX_VALUES:
                self.latencies_ms[slot] = seconds * 1000


class EmfEmitter:
    def __init__(self, *, pod: str, out: TextIO | None = None) -> None:
        self._pod = pod
        self._out = out or sys.stdout
        self._windows: dict[str, _ModelWindow] = {}

    def record(self, model: str, status: int, seconds: float) -> None:
        window = self._windows.get(model)
        if window is None:
            window = self._windows[model] = _ModelWindow()
        window.add(status, seconds)

    def lines(self, process: dict[str, float]) -> list[dict[str, Any]]:
        """The lines of one interval (and start the next)."""
        windows, self._windows = self._windows, {}
        timestamp = int(time.time() * 1000)
        lines = [
            _line(
                timestamp,
                [["Model"], []],
                {"Model": model},
                {
                    "Requests": ("Count", window.requests),
                    "Errors": ("Count", window.errors),
                    "Latency": ("Milliseconds", window.latencies_ms),
                },
            )
            for model, window in sorted(windows.items())
        ]
        units = {
            "ResidentBytes": "Bytes",
            "BudgetBytes": "Bytes",
            "ProcessRSSBytes": "Bytes",
            "MemoryUtilization": "Percent",
            "ResidentModels": "Count",
            "QueueDepth": "Count",
            "ModelLoadFailures": "Count",
        }
        lines.append(
            _line(
                timestamp,
                [["Pod"], []],
                {"Pod": self._pod},
                {name: (unit, process[name]) for name, unit in units.items()},
            )
        )
        return lines

    def emit(self, process: dict[str, float]) -> None:
        for line in self.lines(process):
            self._out.write(orjson.dumps(line).decode() + "\n")
        self._out.flush()


def _line(
    timestamp: int,
    dimensions: list[list[str]],
    dimension_values: dict[str, str],
    metrics: dict[str, tuple[str, Any]],
) -> dict[str, Any]:
    return {
        "_aws": {
            "Timestamp": timestamp,
            "CloudWatchMetrics": [
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": dimensions,
                    "Metrics": [
                        {"Name": name, "Unit": unit} for name, (unit, _) in metrics.items()
                    ],
                }
            ],
        },
        **dimension_values,
        **{name: value for name, (_, value) in metrics.items()},
    }
