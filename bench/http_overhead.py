"""HTTP overhead of modelhost's V2 JSON infer path against a bare Starlette ceiling, in one run.

The servers run side by side, all pinned to the same core (``taskset -c 0``):

* ``modelhost serve`` on the demo models (auth disabled, a throwaway SQLite database), answering
  ``POST /v2/models/iris-sklearn/infer`` (a LogisticRegression, one row of 4 features); one
  server per ``--batching`` variant (default: the demo model as built);
* ``bench/starlette_hello.py`` under uvicorn with the settings ``modelhost serve`` uses (uvloop,
  httptools, no access log, no proxy headers, no server header, log level warning), answering
  ``POST /hello`` with the same body.

wrk, pinned to another core, loads them in turn, rotating the order over several rounds so
machine noise hits all alike. The script prints req/s per round, the median, p50/p99 latency and
the ratio modelhost / ceiling (goal: >= 0.30), and fails if any response was not 2xx. It also
reads each server's CPU time from /proc: CPU per request, and the CPU-time ratio (ceiling CPU per
request / modelhost CPU per request), which holds up better than req/s on a shared machine (a
round where a server used under 90 % of its core is flagged).

    bench/http_overhead.sh [--rounds 3] [--seconds 10] [--connections 32] [--profile out.txt]
                           [--batching demo|off|MS ...] [--commit HEAD] [--json out.json]

``--profile`` adds one more round of the first modelhost (not counted) under py-spy and prints
the hot spots. It samples only the thread holding the GIL (``py-spy record --gil``): with the
server on one core that is where its Python CPU time goes, without threads that wait for the GIL.

The shared pieces (servers, wrk, /proc, py-spy) are in ``bench/harness.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

import harness
from harness import Target

MODEL = "iris-sklearn"
INFER_BODY = {
    "inputs": [{"name": "input", "datatype": "FP64", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]
}
GOAL = 0.30


def main() -> int:
    args = parse_args()
    harness.require_tools("wrk", "taskset")
    harness.check_cores(args.server_core, args.client_core)

    def body(work: Path, processes: list[subprocess.Popen[bytes]]) -> int:
        if args.commit is not None:
            harness.use_commit(args.commit, work / "source")
        harness.print_machine_info(harness.machine_info())
        print(
            f"settings: {args.rounds} rounds x {args.seconds} s, wrk -t{args.wrk_threads} "
            f"-c{args.connections}, warm-up {args.warmup_seconds} s per target\n"
        )
        return run(args, work, processes)

    return harness.guarded_main(body, "modelhost-bench-")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds per target (default 3)")
    parser.add_argument("--seconds", type=int, default=10, help="wrk seconds per round (10)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (1)")
    parser.add_argument("--warmup-seconds", type=int, default=2, help="uncounted wrk warm-up (2)")
    parser.add_argument("--server-core", type=int, default=0, help="core of the servers (0)")
    parser.add_argument("--client-core", type=int, default=1, help="core of wrk (1)")
    parser.add_argument(
        "--profile",
        type=Path,
        help="after the rounds, sample modelhost under load with py-spy into this file "
        "(collapsed stacks) and print the hot spots",
    )
    parser.add_argument(
        "--batching",
        action="append",
        metavar="demo|off|MS",
        help="modelhost variants to run, each its own server: 'demo' serves the demo model as "
        "built, 'off' with batching removed from its model.yaml, a number with batching "
        "{max_delay_ms: MS}; repeat for several (default: demo)",
    )
    parser.add_argument(
        "--commit",
        help="benchmark this git revision (exported with git archive) instead of the working "
        "tree's src/, e.g. HEAD while src/ is being edited",
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    args.batching = args.batching or ["demo"]
    for variant in args.batching:
        if variant not in ("demo", "off") and not re.fullmatch(r"\d+(\.\d+)?", variant):
            parser.error(f"--batching {variant}: demo, off or a delay in milliseconds")
    if len(set(args.batching)) != len(args.batching):
        parser.error("--batching: each variant once")
    if args.rounds < 1 or args.seconds < 1 or args.connections < 1:
        parser.error("--rounds, --seconds and --connections must be at least 1")
    return args


def modelhost_variants(
    repository: Path, work: Path, variants: list[str]
) -> list[tuple[str, Path, dict[str, Any] | None]]:
    """(server name, model repository, the iris model's batching) per ``--batching`` variant."""
    found = []
    for variant in variants:
        if variant == "demo":
            found.append(("modelhost", repository, read_batching(repository)))
            continue
        name = "modelhost-nobatch" if variant == "off" else f"modelhost-batch{variant}ms"
        batching = None if variant == "off" else {"max_delay_ms": float(variant)}

        def change(manifest: dict[str, Any], batching: dict[str, Any] | None = batching) -> None:
            manifest.pop("batching", None)
            if batching is not None:
                manifest["batching"] = batching

        found.append(
            (name, harness.edit_manifest(repository, work / f"models-{name}", MODEL, change),
             batching)
        )  # fmt: skip
    return found


def start_ceiling(
    work: Path, processes: list[subprocess.Popen[bytes]], core: int
) -> tuple[subprocess.Popen[bytes], str]:
    """``bench/starlette_hello.py`` under uvicorn, configured like ``modelhost serve``."""
    return harness.start_uvicorn(
        "starlette_hello:app", "starlette-hello", work, processes, core=core
    )


def run(args: argparse.Namespace, work: Path, processes: list[subprocess.Popen[bytes]]) -> int:
    from modelhost.demo_models import build_demo_models

    repository = work / "models"
    build_demo_models(repository)
    body = json.dumps(INFER_BODY, separators=(",", ":"))
    script = harness.post_script(work / "post.lua", body)

    modelhosts = modelhost_variants(repository, work, args.batching)
    print(f"the demo's {MODEL} model.yaml has batching: {read_batching(repository) or 'off'}")
    servers = [
        (name, *harness.start_modelhost(name, models, work, processes, core=args.server_core))
        for name, models, _ in modelhosts
    ]
    hello, hello_base = start_ceiling(work, processes, args.server_core)

    targets = []
    for (name, process, base), (_, _, batching) in zip(servers, modelhosts, strict=True):
        harness.wait_ready(process, f"{base}/v2/health/ready", work / f"{name}.log")
        infer_url = f"{base}/v2/models/{MODEL}/infer"
        answer = harness.post_json(infer_url, body)  # loads the model; not measured
        labels = {output["name"]: output["data"] for output in answer["outputs"]}
        print(f"warm-up: {name} {MODEL} answered {labels}")
        targets.append(
            Target(name, infer_url, process.pid, script, cpu_bound=batching is None,
                   note=json.dumps(batching))
        )  # fmt: skip
    harness.wait_ready(
        hello, None, work / "starlette-hello.log", probe=f"{hello_base}/hello", body=body
    )
    targets.append(Target("starlette-hello", f"{hello_base}/hello", hello.pid, script))
    print(f"servers on core {args.server_core}, wrk on core {args.client_core}\n")

    wrk = harness.wrk_command(args.client_core, args.wrk_threads, args.connections)
    loads = harness.run_rounds(
        wrk, targets, rounds=args.rounds, seconds=args.seconds, warmup_seconds=args.warmup_seconds
    )
    predict_seconds = predict_cost(repository, args.server_core)
    ok = report(args, targets, predict_seconds, loads)
    if args.profile is not None:
        harness.profile(args.profile, args.seconds, args.client_core, wrk, targets[0])
    for target, process in zip(targets, [*(p for _, p, _ in servers), hello], strict=True):
        if process.poll() is not None:
            print(f"{target.name} exited ({process.returncode}) during the run", file=sys.stderr)
            print((work / f"{target.name}.log").read_text(), file=sys.stderr)
            ok = False
    return 0 if ok else 1


def report(
    args: argparse.Namespace, targets: list[Target], predict_seconds: float, loads: list[str]
) -> bool:
    harness.report_rounds(targets, args.rounds, args.server_core, args.client_core)
    print()
    ceiling = targets[-1]
    ratios = {}
    for target in targets[:-1]:
        ratios[target.name] = ratio = target.median_rps / ceiling.median_rps
        verdict = "meets" if ratio >= GOAL else "below"
        print(f"ratio {target.name} / ceiling = {ratio:.3f}  ({verdict} the goal of >= {GOAL:.2f})")

    # CPU time per request (from /proc, so other processes on the core don't inflate it) splits
    # an unbatched modelhost's cost into the HTTP ceiling, the model's own predict and the rest.
    ceiling_us = ceiling.cpu_us_per_request
    predict_us = 1e6 * predict_seconds
    for target in targets[:-1]:
        print(
            f"CPU-time ratio ceiling / {target.name} = {ceiling_us / target.cpu_us_per_request:.3f}"
        )
    for target in targets[:-1]:
        if target.cpu_bound:  # unbatched
            modelhost_us = target.cpu_us_per_request
            print(
                f"CPU per request: {target.name} {modelhost_us:.0f} us = HTTP ceiling "
                f"{ceiling_us:.0f} us + {MODEL} predict {predict_us:.0f} us (SklearnRuntime.predict"
                f" in-process, thread CPU time) + modelhost's own "
                f"{modelhost_us - ceiling_us - predict_us:.0f} us"
            )
    print(
        f"with no overhead at all, one predict per request would allow a CPU-time ratio of "
        f"{ceiling_us / (ceiling_us + predict_us):.3f}"
    )

    failures = [target.name for target in targets if target.failed]
    if failures:
        print(f"FAILED: non-2xx responses or socket errors from {failures}", file=sys.stderr)
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "machine": harness.machine_info(),
                    "settings": {
                        "rounds": args.rounds,
                        "seconds": args.seconds,
                        "connections": args.connections,
                    },
                    "load_averages": loads,
                    "targets": {t.name: [vars(r) for r in t.results] for t in targets},
                    "median_rps": {t.name: t.median_rps for t in targets},
                    "ratio": ratios,
                    "cpu_us_per_request": {t.name: t.cpu_us_per_request for t in targets},
                    "predict_us": predict_us,
                },
                indent=2,
            )
        )
    return not failures


def read_batching(repository: Path) -> dict[str, Any] | None:
    manifest = yaml.safe_load((repository / MODEL / "1" / "model.yaml").read_text())
    batching: dict[str, Any] | None = manifest.get("batching")
    return batching


def predict_cost(repository: Path, core: int) -> float:
    """CPU seconds one ``SklearnRuntime.predict`` of the bench's row takes, pinned to ``core``."""
    import numpy as np

    from modelhost.manifest import read_manifest
    from modelhost.runtimes.sklearn import SklearnRuntime

    version = repository / MODEL / "1"
    runtime = SklearnRuntime(threads=1)
    runtime.load(version, read_manifest(version))
    inputs = {"input": np.array([INFER_BODY["inputs"][0]["data"]], dtype=np.float64)}
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    try:
        runtime.predict(inputs)
        samples = []
        for _ in range(7):
            calls, start = 300, time.thread_time()
            for _ in range(calls):
                runtime.predict(inputs)
            samples.append((time.thread_time() - start) / calls)
    finally:
        os.sched_setaffinity(0, previous)
    return statistics.median(samples)


if __name__ == "__main__":
    sys.exit(main())
