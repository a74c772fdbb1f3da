"""Dynamic batching on MiniLM embeddings: modelhost batched vs unbatched vs MLServer's adaptive
batching, side by side in one run.

64 concurrent clients (wrk ``-t1 -c64``, pinned to the client core), each request one sentence
(V2 infer, a BYTES input ``text`` of shape ``[1]``), the sentences taken in turn from a fixed
list of distinct sentences (``SENTENCES``); every server pinned to the server core:

* ``modelhost-batched``: the demo ``minilm`` model as ``modelhost demo`` writes it
  (transformers runtime, all-MiniLM-L6-v2 from the installed package, ``max_batch_size: 64``,
  ``batching: {max_delay_ms: 5}``);
* ``modelhost-unbatched``: the same model.yaml without ``batching`` (one forward pass per
  request);
* ``mlserver-batched``: MLServer 1.7.1 (``bench/.venv-mlserver``) with the custom runtime in
  ``bench/mlserver_minilm/`` (the same tokenizer, model, mean pooling and normalization), adaptive
  batching ``max_batch_size: 64``, ``max_batch_time: 0.005``, ``parallel_workers: 0``;
* ``mlserver-unbatched`` (only with ``--only mlserver-unbatched``): the same without batching.

Before the rounds, each server's embedding of a few sentences is compared with the others'
(cosine similarity), so all do the same work. Printed: req/s per round and median, p50/p99
latency (wrk), CPU per request, modelhost's mean batch size (from its /metrics), and the ratios
batched / unbatched (goal >= 3) and modelhost / MLServer (goal >= 1.5).

    bench/batching.sh [--rounds 3] [--seconds 10] [--connections 64] [--only NAME ...]
                      [--profile FILE] [--json FILE]
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import harness
from harness import BENCH_DIR, Target

MODEL = "minilm"
BATCHED_GOAL = 3.0
MLSERVER_GOAL = 1.5
VARIANTS = ("modelhost-batched", "modelhost-unbatched", "mlserver-batched", "mlserver-unbatched")
DEFAULT_VARIANTS = VARIANTS[:3]

_SUBJECTS = (
    "The old lighthouse keeper", "A curious student", "Our quarterly revenue", "The new database",
    "My neighbour's cat", "The city council", "A sudden thunderstorm", "The research team",
)  # fmt: skip
_VERBS = (
    "quietly changed", "carefully reviewed", "unexpectedly delayed", "happily celebrated",
    "completely ignored", "slowly rebuilt", "openly questioned", "briefly described",
)  # fmt: skip
_OBJECTS = (
    "the plans for the harbour", "every line of the contract", "the morning train to Lyon",
    "a recipe for lemon cake",
)  # fmt: skip
# 256 distinct sentences of similar length (10-16 tokens), always the same and in the same order.
SENTENCES = [
    f"{subject} {verb} {obj}."
    for subject, verb, obj in itertools.product(_SUBJECTS, _VERBS, _OBJECTS)
]


def infer_body(sentence: str) -> str:
    request = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [sentence]}]}
    return json.dumps(request, separators=(",", ":"))


def main() -> int:
    args = parse_args()
    harness.require_tools("wrk", "taskset")
    harness.check_cores(args.server_core, args.client_core)

    def body(work: Path, processes: list[subprocess.Popen[bytes]]) -> int:
        info = harness.machine_info(("torch", "transformers", "tokenizers"))
        info["mlserver"] = harness.mlserver_versions()
        harness.print_machine_info(info)
        print(
            f"settings: {args.rounds} rounds x {args.seconds} s, wrk -t1 -c{args.connections}, "
            f"warm-up {args.warmup_seconds} s per target, {len(SENTENCES)} distinct sentences\n"
        )
        return run(args, work, processes, info)

    return harness.guarded_main(body, "modelhost-bench-batching-")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds per target (default 3)")
    parser.add_argument("--seconds", type=int, default=10, help="wrk seconds per round (10)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    parser.add_argument("--warmup-seconds", type=int, default=3, help="uncounted wrk warm-up (3)")
    parser.add_argument("--server-core", type=int, default=0, help="core of the servers (0)")
    parser.add_argument("--client-core", type=int, default=1, help="core of wrk (1)")
    parser.add_argument(
        "--only",
        action="append",
        choices=VARIANTS,
        help=f"run these targets (repeat; default: {', '.join(DEFAULT_VARIANTS)})",
    )
    parser.add_argument(
        "--profile", type=Path, help="py-spy modelhost-batched under load into this file"
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    if args.rounds < 1 or args.seconds < 1 or args.connections < 1:
        parser.error("--rounds, --seconds and --connections must be at least 1")
    args.only = [name for name in VARIANTS if name in (args.only or DEFAULT_VARIANTS)]
    return args


def mlserver_repository(work: Path, name: str, batched: bool) -> Path:
    """settings.json + minilm/ (runtime.py, model-settings.json) from bench/mlserver_minilm."""
    folder = work / f"{name}-models"
    model = folder / MODEL
    shutil.copytree(BENCH_DIR / "mlserver_minilm", model)
    (model / "settings.json").rename(folder / "settings.json")
    if not batched:
        settings_path = model / "model-settings.json"
        settings = json.loads(settings_path.read_text())
        settings.pop("max_batch_size", None)
        settings.pop("max_batch_time", None)
        settings_path.write_text(json.dumps(settings, indent=2))
    return folder


def batch_stats(base: str) -> tuple[float, float]:
    """modelhost's (sum, count) of the minilm batch-size histogram, from /metrics."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        text = response.read().decode()
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith("modelhost_batch_size_") and f'model="{MODEL}"' in line:
            value = float(line.rsplit(" ", 1)[1])
            if line.startswith("modelhost_batch_size_sum"):
                total += value
            elif line.startswith("modelhost_batch_size_count"):
                count += value
    return total, count


def run(
    args: argparse.Namespace,
    work: Path,
    processes: list[subprocess.Popen[bytes]],
    info: dict[str, str],
) -> int:
    from modelhost.demo_models import build_demo_models

    repository = work / "models"
    build_demo_models(repository)
    unbatched = harness.edit_manifest(
        repository, work / "models-unbatched", MODEL, lambda manifest: manifest.pop("batching")
    )
    core = args.server_core
    started: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    for name in args.only:
        if name.startswith("modelhost"):
            models = repository if name == "modelhost-batched" else unbatched
            started[name] = harness.start_modelhost(name, models, work, processes, core=core)
        else:
            folder = mlserver_repository(work, name, batched=name == "mlserver-batched")
            started[name] = harness.start_mlserver(name, folder, work, processes, core=core)

    bodies = [infer_body(sentence) for sentence in SENTENCES]
    script = harness.rotating_post_script(
        work / "sentences.lua", f"/v2/models/{MODEL}/infer", bodies
    )
    targets = []
    embeddings: dict[str, list[list[float]]] = {}
    for name, (process, base) in started.items():
        log = work / f"{name}.log"
        url = f"{base}/v2/models/{MODEL}/infer"
        harness.wait_ready(process, f"{base}/v2/health/ready", log, timeout=180)
        # The first request loads the model (modelhost loads lazily); not measured.
        harness.wait_ready(process, None, log, probe=url, body=bodies[0], timeout=180)
        embeddings[name] = [embedding_of(harness.post_json(url, bodies[i])) for i in (0, 37, 255)]
        targets.append(
            Target(name, url, process.pid, script, cpu_bound=not name.endswith("-batched"))
        )
    check_same_embeddings(embeddings)
    print(f"servers on core {core}, wrk on core {args.client_core}; load {harness.load_average()}")
    print()

    before = {t.name: batch_stats(started[t.name][1]) for t in targets if "modelhost" in t.name}
    # Batches of 64 sentences take ~0.2 s on one core: answers past wrk's default 2 s timeout
    # are slow, not lost; count them as latency.
    wrk = harness.wrk_command(args.client_core, 1, args.connections, timeout_s=10)
    loads = harness.run_rounds(
        wrk, targets, rounds=args.rounds, seconds=args.seconds, warmup_seconds=args.warmup_seconds
    )
    harness.report_rounds(targets, args.rounds, core, args.client_core)
    mean_batch = {}
    for name, (total_before, count_before) in before.items():
        total, count = batch_stats(started[name][1])
        if count > count_before:
            mean_batch[name] = (total - total_before) / (count - count_before)
            print(f"{name}: mean batch size {mean_batch[name]:.1f} (warm-up and rounds)")
    model_us = {size: 1e6 * model_cost(repository, core, size) for size in (1, args.connections)}
    for size, micros in model_us.items():
        print(
            f"the model alone (TransformersRuntime.predict on {size} sentence(s), in-process, "
            f"pinned to core {core}): {micros:.0f} us CPU per sentence"
        )
    ratios = report(targets, model_us)
    if args.profile is not None and targets:
        harness.profile(args.profile, args.seconds, args.client_core, wrk, targets[0])

    ok = True
    for target in targets:
        process = started[target.name][0]
        if process.poll() is not None:
            print(f"{target.name} exited ({process.returncode}) during the run", file=sys.stderr)
            ok = False
    failures = [target.name for target in targets if target.failed]
    if failures:
        print(f"FAILED: non-2xx responses or socket errors from {failures}", file=sys.stderr)
        ok = False
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "machine": info,
                    "settings": vars(args) | {"json": str(args.json), "profile": None},
                    "load_averages": loads,
                    "targets": {t.name: [vars(r) for r in t.results] for t in targets},
                    "median_rps": {t.name: t.median_rps for t in targets},
                    "p50_ms": {t.name: t.median_p50 for t in targets},
                    "p99_ms": {t.name: t.median_p99 for t in targets},
                    "cpu_us_per_request": {t.name: t.cpu_us_per_request for t in targets},
                    "mean_batch_size": mean_batch,
                    "model_us_per_sentence": {str(k): v for k, v in model_us.items()},
                    "ratios": ratios,
                },
                indent=2,
            )
        )
    return 0 if ok else 1


def embedding_of(answer: dict[str, Any]) -> list[float]:
    for output in answer["outputs"]:
        if output["name"] == "embedding":
            data: list[float] = output["data"]
            return data
    raise RuntimeError(f"no embedding output in {answer}")


def check_same_embeddings(embeddings: dict[str, list[list[float]]]) -> None:
    """Every server's embeddings of the same sentences agree (cosine > 0.9999)."""
    import numpy as np

    names = list(embeddings)
    for other in names[1:]:
        for a, b in zip(embeddings[names[0]], embeddings[other], strict=True):
            va, vb = np.asarray(a), np.asarray(b)
            cosine = float(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb)))
            if len(a) != 384 or cosine < 0.9999:
                raise RuntimeError(f"{names[0]} and {other} disagree: cosine {cosine:.6f}")
    print(f"embeddings agree across {names} (384 floats, cosine > 0.9999)")


def model_cost(repository: Path, core: int, batch: int) -> float:
    """CPU seconds per sentence of one ``TransformersRuntime.predict`` on ``batch`` sentences
    (thread CPU time; torch on one thread, like a server pinned to one core)."""
    import os
    import statistics
    import time

    import numpy as np

    from modelhost.manifest import read_manifest
    from modelhost.runtimes.transformers import TransformersRuntime

    version = repository / MODEL / "1"
    runtime = TransformersRuntime(threads=1)
    runtime.load(version, read_manifest(version))
    batches = [
        np.array([s.encode() for s in SENTENCES[i : i + batch]], dtype=object)
        for i in range(0, 64, batch)
    ]
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    try:
        runtime.predict({"text": batches[0]})
        samples = []
        for _ in range(5):
            start = time.thread_time()
            for texts in batches:
                runtime.predict({"text": texts})
            samples.append((time.thread_time() - start) / 64)
    finally:
        os.sched_setaffinity(0, previous)
        runtime.unload()
    return statistics.median(samples)


def report(targets: list[Target], model_costs: dict[int, float]) -> dict[str, Any]:
    by_name = {target.name: target for target in targets}
    ratios: dict[str, Any] = {}
    print()

    def compare(label: str, faster: str, slower: str, goal: float | None = None) -> None:
        if faster not in by_name or slower not in by_name:
            return
        a, b = by_name[faster], by_name[slower]
        rps = a.median_rps / b.median_rps
        cpu = b.cpu_us_per_request / a.cpu_us_per_request
        ratios[label] = {"rps": rps, "cpu_time": cpu}
        line = f"{label:<42} req/s ratio {rps:6.3f}   CPU-time ratio {cpu:6.3f}"
        if goal is not None:
            line += f"   ({harness.verdict(rps, goal)})"
        print(line)

    compare("modelhost batched / unbatched", "modelhost-batched", "modelhost-unbatched",
            BATCHED_GOAL)  # fmt: skip
    compare("modelhost batched / mlserver batched", "modelhost-batched", "mlserver-batched",
            MLSERVER_GOAL)  # fmt: skip
    compare("mlserver batched / unbatched", "mlserver-batched", "mlserver-unbatched")
    compare("modelhost unbatched / mlserver unbatched", "modelhost-unbatched",
            "mlserver-unbatched")  # fmt: skip
    batched_us = model_costs[max(model_costs)]
    for target in targets:
        cpu = target.cpu_us_per_request
        model_us = batched_us if target.name.endswith("-batched") else model_costs[1]
        print(
            f"{target.name:<20} p50 {target.median_p50:8.2f} ms  p99 {target.median_p99:8.2f} ms"
            f"  CPU/request {cpu:6.0f} us = model {model_us:.0f} + the rest {cpu - model_us:.0f}"
        )
    print(
        f"batching can save at most {model_costs[1] / batched_us:.2f}x of the model's own CPU "
        f"(one sentence a call vs {max(model_costs)} a call)"
    )
    if "mlserver-batched" in by_name:
        bound = by_name["mlserver-batched"].cpu_us_per_request / batched_us
        ratios["cpu_time_bound_vs_mlserver"] = bound
        print(
            f"a server with no cost beside the model's would use {bound:.2f}x less CPU per "
            "request than mlserver-batched: the most a CPU-bound server can gain on it here"
        )
    return ratios


def _check_sentences() -> None:
    assert len(set(SENTENCES)) == len(SENTENCES) == 256
    assert all(re.fullmatch(r"[A-Za-z' ,.]+", s) for s in SENTENCES)


_check_sentences()

if __name__ == "__main__":
    sys.exit(main())
