"""What a pause between requests costs the event loop's own work on each request.

One ``modelhost serve`` (pinned to the server core, auth off, usage records and metrics on), four
unbatched models on the python runtime that answer the same request (one BYTES sentence in, 384
FP32 out in V2 JSON, as P2's MiniLM) and differ only in what their ``predict`` does, each called
in a worker thread (``MODELHOST_INLINE_PREDICT_MS=0``):

* ``none``: returns at once;
* ``sleep1`` and ``sleep8``: sleep 1 or 8 ms (no CPU, nothing evicted: the core idles);
* ``stream``: sums a 96 MB array (5-8 ms of CPU with the GIL released, the caches evicted).

wrk (``-t1 -c64``, on the client core) loads each in turn, rotating the order each round. Per
model: req/s and the CPU a request, split into the main thread's (the event loop: parsing,
routing, metering, JSON, the send) and the other threads' (the model call, the usage writer).
The event loop's work is the same request after request; only what the core did between
requests differs. Issue 13's P2 found the loop's thread spending 4-5x as much a request
unbatched as batched; this bench tells apart the two explanations (the model evicting the
caches, or any pause).

    .venv/bin/python bench/idle_gap.py [--rounds 2] [--seconds 8]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import harness
from harness import Target

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support.models

MODEL_CODE = """
import time

import numpy as np


class Model:
    def load(self, path):
        self.block = np.ones(24 * 1024 * 1024, dtype=np.float32)  # 96 MB
        self.embedding = np.linspace(0, 1, 384, dtype=np.float32).reshape(1, 384)

    def predict(self, inputs):
        if WORK == "stream":
            self.block.sum()  # numpy releases the GIL in the reduction's loop
        elif WORK > 0:
            time.sleep(WORK)
        return {"embedding": self.embedding.copy()}
"""
MANIFEST = {
    "inputs": [{"name": "text", "datatype": "BYTES", "shape": [1]}],
    "outputs": [{"name": "embedding", "datatype": "FP32", "shape": [1, 384]}],
}
WORKS: dict[str, float | str] = {"none": 0.0, "sleep1": 0.001, "sleep8": 0.008, "stream": "stream"}
BODY = json.dumps(
    {
        "inputs": [
            {
                "name": "text",
                "datatype": "BYTES",
                "shape": [1],
                "data": ["The research team briefly described the morning train to Lyon."],
            }
        ]
    }
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="rounds (2)")
    parser.add_argument("--seconds", type=int, default=8, help="wrk seconds per round (8)")
    parser.add_argument("--server-core", type=int, default=0, help="core of the server (0)")
    parser.add_argument("--client-core", type=int, default=1, help="core of wrk (1)")
    args = parser.parse_args()
    harness.require_tools("wrk", "taskset")
    harness.check_cores(args.server_core, args.client_core)

    def body(work: Path, processes: list[subprocess.Popen[bytes]]) -> int:
        from tests.support.models import write_python_model

        harness.print_machine_info(harness.machine_info())
        models = work / "models"
        for name, what in WORKS.items():
            write_python_model(models, name, f"WORK = {what!r}\n{MODEL_CODE}", MANIFEST)
        process, url = harness.start_modelhost(
            "modelhost",
            models,
            work,
            processes,
            core=args.server_core,
            env={"MODELHOST_INLINE_PREDICT_MS": "0"},  # every model call in a worker thread
        )
        harness.wait_ready(process, f"{url}/v2/health/ready", work / "modelhost.log")
        targets = []
        for name in WORKS:
            target_url = f"{url}/v2/models/{name}/infer"
            harness.post_json(target_url, BODY)  # loads the model before the rounds
            script = harness.post_script(work / f"{name}.lua", BODY)
            targets.append(Target(name, target_url, process.pid, script))
        wrk = harness.wrk_command(args.client_core, 1, 64)
        harness.run_rounds(wrk, targets, rounds=args.rounds, seconds=args.seconds, warmup_seconds=0)
        print()
        harness.print_table(
            ["model", "median req/s", "µs CPU / req", "the event loop's thread", "other threads"],
            [
                [
                    target.name,
                    f"{target.median_rps:.0f}",
                    f"{target.cpu_us_per_request:.0f}",
                    f"{target.main_thread_us_per_request:.0f}",
                    f"{target.cpu_us_per_request - target.main_thread_us_per_request:.0f}",
                ]
                for target in targets
            ],
        )
        return 0

    return harness.guarded_main(body, "mh-idle-gap-")


if __name__ == "__main__":
    sys.exit(main())
