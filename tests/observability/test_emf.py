"""CloudWatch Embedded Metric Format lines, checked against the format's required structure."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.models import write_failing_model, write_memory_model
from tests.support.server import ServerProcess

X = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}]}
UNITS = {
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes",
    "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count",
    "Bytes/Second", "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second",
    "Bits/Second", "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second",
    "Count/Second", "None",
}  # fmt: skip


def check_emf(line: dict[str, Any]) -> None:
    """The specification's rules for an EMF log event."""
    meta = line["_aws"]
    assert isinstance(meta["Timestamp"], int) and meta["Timestamp"] > 1_600_000_000_000
    directives = meta["CloudWatchMetrics"]
    assert isinstance(directives, list) and directives
    for directive in directives:
        assert isinstance(directive["Namespace"], str) and 1 <= len(directive["Namespace"]) <= 1024
        assert isinstance(directive["Dimensions"], list)
        for dimension_set in directive["Dimensions"]:
            assert isinstance(dimension_set, list) and len(dimension_set) <= 30
            for key in dimension_set:  # every dimension names a string member of the event
                assert isinstance(line[key], str)
        assert 1 <= len(directive["Metrics"]) <= 100
        for metric in directive["Metrics"]:
            assert isinstance(metric["Name"], str) and 1 <= len(metric["Name"]) <= 255
            assert metric.get("Unit", "None") in UNITS
            value = line[metric["Name"]]  # every metric names a member holding its value(s)
            values = value if isinstance(value, list) else [value]
            assert 1 <= len(values) <= 100
            assert all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def test_emf_lines(tmp_path: Path) -> None:
    root = tmp_path / "models"
    write_memory_model(root, "m", 2)
    write_failing_model(root)
    env = {"MODELHOST_CLOUDWATCH_EMF": "true", "MODELHOST_EMF_INTERVAL_SECONDS": "0.5"}
    with ServerProcess(root, tmp_path / "server.log", env=env) as server, httpx.Client() as client:
        for _ in range(150):
            client.post(f"{server.url}/v2/models/m/infer", json=X)
        client.post(f"{server.url}/v2/models/m/infer", json={"inputs": []})
        assert client.post(f"{server.url}/v2/models/broken/infer", json=X).status_code == 503
        time.sleep(1.2)
        log = server.log()

    events = [json.loads(line) for line in log.splitlines() if line.startswith('{"_aws"')]
    assert events, log
    for event in events:
        check_emf(event)
    per_model = [e for e in events if e.get("Model") == "m"]
    assert sum(e["Requests"] for e in per_model) == 151
    assert sum(e["Errors"] for e in per_model) == 0  # a 400 is the client's error, not ours
    assert all(len(e["Latency"]) <= 100 for e in per_model)
    process = [e for e in events if "Pod" in e]
    assert process and process[-1]["BudgetBytes"] == 8 << 30
    assert 0 < process[-1]["ResidentBytes"] <= process[-1]["ProcessRSSBytes"]
    assert process[-1]["ResidentModels"] == 1
    assert sum(e["ModelLoadFailures"] for e in process) == 1  # the alarm's metric
