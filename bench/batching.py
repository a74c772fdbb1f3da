"""Dynamic batching on MiniLM embeddings: modelhost batched vs unbatched vs MLServer's adaptive
batching, side by side in one run.

64 concurrent clients (wrk ``-t1 -c64``, pinned to the client core), each request one sentence
(V2 infer, a BYTES input ``text`` of shape ``[1]``), the sentences taken in turn from a fixed
list of distinct sentences (``SENTENCES``); every server pinned to the server core:

* ``modelhost-batched``: the demo ``minilm`` model as ``modelhost demo`` writes it
  (transformers-onnx runtime: ONNX Runtime, all-MiniLM-L6-v2 from the installed package,
  ``max_batch_size: 64``, ``batching: {max_delay_ms: 5}``): modelhost's best path;
* ``modelhost-unbatched``: the same model.yaml without ``batching`` (one forward pass per
  request);
* ``modelhost-torch-batched`` and ``modelhost-torch-unbatched`` (only with ``--only``): the
  same two on the torch ``transformers`` runtime;
* ``mlserver-batched``: MLServer 1.7.1 (``bench/.venv-mlserver``) with the custom runtime in
  ``bench/mlserver_minilm/`` (the same tokenizer, model, mean pooling and normalization), adaptive
  batching ``max_batch_size: 64``, ``max_batch_time: 0.005``, ``parallel_workers: 0``;
* ``mlserver-unbatched`` (only with ``--only mlserver-unbatched``): the same without batching;
* ``modelhost-lean-batched`` (only with ``--only``): ``modelhost-batched``'s application and
  settings behind ``bench/lean_asgi.py``'s minimal front end instead of modelhost's own: how near
  the ceiling a leaner front end could bring the batched path at most.

Before the rounds, each server's embedding of a few sentences is compared with the others'
(cosine similarity), so all do the same work. Printed: req/s per round and median, p50/p99
latency (wrk), CPU per request (and of it the event loop's thread), modelhost's mean batch size
(from its /metrics), and the ratios modelhost / MLServer (goal >= 1.5), modelhost / the
in-process ceiling (goal >= 0.95): the same runtime's ``predict`` called in a loop in this
process, pinned to the server core, at 1 or ``--connections`` sentences a call, whichever is
nearer modelhost's mean batch size (sentences per second of wall time, and of CPU time;
measured after every round, the median taken, on the batches the servers get: see
``model_cost``), and batched / unbatched beside what batching saves the model alone. The goal
batched / unbatched >= 3 was set on the torch runtime (``--only modelhost-torch-batched --only
modelhost-torch-unbatched``): ONNX Runtime's forward pass of one sentence costs less than twice
its share of a batch of 64, so on it no server can gain 3x from batching.

    bench/batching.sh [--rounds 3] [--seconds 10] [--connections 64] [--only NAME ...]
                      [--profile FILE] [--json FILE]
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import shutil
import statistics
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
CEILING_GOAL = 0.95
VARIANTS = (
    "modelhost-batched",
    "modelhost-unbatched",
    "mlserver-batched",
    "modelhost-torch-batched",
    "mlserver-unbatched",
    "modelhost-torch-unbatched",
    "modelhost-lean-batched",
)
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
    on_torch = harness.edit_manifest(
        repository, work / "models-torch", MODEL, lambda manifest: manifest.update(
            runtime="transformers"
        )
    )  # fmt: skip
    on_torch_unbatched = harness.edit_manifest(
        on_torch, work / "models-torch-unbatched", MODEL, lambda manifest: manifest.pop("batching")
    )
    folders = {"modelhost-batched": repository, "modelhost-unbatched": unbatched,
               "modelhost-torch-batched": on_torch,
               "modelhost-torch-unbatched": on_torch_unbatched,
               "modelhost-lean-batched": repository}  # fmt: skip
    core = args.server_core
    started: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    for name in args.only:
        if name.startswith("modelhost"):
            started[name] = harness.start_modelhost(
                name, folders[name], work, processes, core=core, lean="-lean-" in name
            )
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
    runtimes = {"onnx": repository}
    if {"modelhost-torch-batched", "modelhost-torch-unbatched", "mlserver-batched"} & set(started):
        runtimes["torch"] = on_torch
    # The in-process ceilings (the model alone at 1 and --connections sentences a call) are
    # measured after every round, beside the servers' rounds: measured once at the end they
    # were up to 5 % off the moments the servers ran in (the host's speed drifts), as much as
    # the margin the goal of 0.95 leaves.
    ceiling_sizes = sorted({1, args.connections})
    ceiling_runs: dict[str, dict[int, list[tuple[float, float]]]] = {
        name: {size: [] for size in ceiling_sizes} for name in runtimes
    }

    def measure_ceilings() -> None:
        for name, folder in runtimes.items():
            for size in ceiling_sizes:
                cpu, wall = model_cost(folder, core, size, repetitions=1)
                ceiling_runs[name][size].append((cpu, wall))
                print(f"  the {name} model alone at {size} a call: {cpu:.0f} us CPU a sentence")

    loads = harness.run_rounds(
        wrk,
        targets,
        rounds=args.rounds,
        seconds=args.seconds,
        warmup_seconds=args.warmup_seconds,
        after_round=measure_ceilings,
    )
    harness.report_rounds(targets, args.rounds, core, args.client_core)
    mean_batch = {}
    for name, (total_before, count_before) in before.items():
        total, count = batch_stats(started[name][1])
        if count > count_before:
            mean_batch[name] = (total - total_before) / (count - count_before)
            print(f"{name}: mean batch size {mean_batch[name]:.1f} (warm-up and rounds)")
    model_us: dict[str, dict[int, tuple[float, float]]] = {}
    for name in runtimes:
        model_us[name] = {
            size: (
                statistics.median(cpu for cpu, _ in runs),
                statistics.median(wall for _, wall in runs),
            )
            for size, runs in ceiling_runs[name].items()
        }
        for size, (cpu, wall) in model_us[name].items():
            print(
                f"the model alone ({name}: predict on {size} sentence(s) a call, in-process, "
                f"pinned to core {core}, median of the rounds): {cpu:.0f} us CPU, {wall:.0f} us "
                "wall per sentence"
            )
    ratios = report(targets, model_us, mean_batch, args.connections)
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
                    "main_thread_us_per_request": {
                        t.name: t.main_thread_us_per_request for t in targets
                    },
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


def model_cost(
    repository: Path, core: int, batch: int, repetitions: int = 3
) -> tuple[float, float]:
    """Microseconds of CPU (thread time) and of wall time per sentence of the model's runtime
    ``predict`` on ``batch`` sentences a call, in this process, pinned to ``core`` with one
    compute thread, like a server on one core: the in-process ceiling.

    The calls take the batches the servers get: wrk's one Lua counter hands consecutive
    requests consecutive sentences (from a random start, wrapping round), so a full batch is a
    window of ``batch`` consecutive sentences, padded to its longest (13-15 tokens here). The
    windows start every ``batch // 4`` sentences round the whole list (16 windows of 64; every
    sentence alone at 1), not only from its first 128 sentences, whose batches pad to 13-14
    tokens while the servers' mostly pad to 14-15."""
    import os
    import time

    import numpy as np

    from modelhost.manifest import read_manifest
    from modelhost.runtimes.factory import runtime_class
    from modelhost.settings import Settings

    version = repository / MODEL / "1"
    manifest = read_manifest(version)
    # The servers' own export folder (their default cache folder): exported once, reused.
    runtime = runtime_class(manifest.runtime)(threads=1, work_dir=Settings().cache_dir / "runtimes")
    runtime.load(version, manifest)
    cyclic = SENTENCES * 2
    batches = [
        np.array([s.encode() for s in cyclic[start : start + batch]], dtype=object)
        for start in range(0, len(SENTENCES), max(1, batch // 4))
    ]
    sentences = sum(len(b) for b in batches)
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    try:
        runtime.predict({"text": batches[0]})
        cpu, wall = [], []
        for _ in range(repetitions):
            started, started_wall = time.thread_time(), time.perf_counter()
            for texts in batches:
                runtime.predict({"text": texts})
            cpu.append(1e6 * (time.thread_time() - started) / sentences)
            wall.append(1e6 * (time.perf_counter() - started_wall) / sentences)
    finally:
        os.sched_setaffinity(0, previous)
        runtime.unload()
    return statistics.median(cpu), statistics.median(wall)


def report(
    targets: list[Target],
    model_costs: dict[str, dict[int, tuple[float, float]]],
    mean_batch: dict[str, float],
    connections: int,
) -> dict[str, Any]:
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

    compare("modelhost batched / unbatched", "modelhost-batched", "modelhost-unbatched")
    compare("modelhost torch batched / unbatched", "modelhost-torch-batched",
            "modelhost-torch-unbatched", BATCHED_GOAL)  # fmt: skip
    compare("modelhost batched / mlserver batched", "modelhost-batched", "mlserver-batched",
            MLSERVER_GOAL)  # fmt: skip
    compare("modelhost torch batched / mlserver batched", "modelhost-torch-batched",
            "mlserver-batched")  # fmt: skip
    compare("modelhost onnx / torch, batched", "modelhost-batched", "modelhost-torch-batched")
    compare("lean front end / modelhost's, batched", "modelhost-lean-batched", "modelhost-batched")
    compare("mlserver batched / unbatched", "mlserver-batched", "mlserver-unbatched")
    compare("modelhost unbatched / mlserver unbatched", "modelhost-unbatched",
            "mlserver-unbatched")  # fmt: skip
    runtimes = {name: "torch" if "torch" in name else "onnx" for name in VARIANTS
                if name.startswith("modelhost")}  # fmt: skip
    for batched, runtime in runtimes.items():
        costs = model_costs.get(runtime)
        if costs is None or batched not in mean_batch or not batched.endswith("-batched"):
            continue
        size = _nearest(costs, mean_batch[batched])
        own = costs[1][1] / costs[size][1]  # wall time per sentence, 1 a call / `size` a call
        ratios[f"{runtime} model alone, {size} a call / 1 a call"] = own
        print(
            f"the {runtime} model alone runs {own:.3f}x as many sentences a second at {size} a "
            f"call as at 1: what batching can gain on it"
        )
    for name, runtime in runtimes.items():
        target = by_name.get(name)
        if target is None or runtime not in model_costs:
            continue
        size = (
            _nearest(model_costs[runtime], mean_batch.get(name, 1.0))
            if name.endswith("-batched")
            else 1
        )
        cpu_us, wall_us = model_costs[runtime][size]
        ceiling_rps = 1e6 / wall_us
        rps = target.median_rps / ceiling_rps
        cpu = cpu_us / target.cpu_us_per_request
        ratios[f"{name} / in-process ceiling"] = {"rps": rps, "cpu_time": cpu, "batch": size}
        goal = f"   ({harness.verdict(rps, CEILING_GOAL)})" if name == "modelhost-batched" else ""
        print(
            f"{name} / in-process {runtime} ceiling at {size} a call ({ceiling_rps:.0f} "
            f"sentences/s): req/s ratio {rps:6.3f}   CPU-time ratio {cpu:6.3f}{goal}"
        )
        print(
            f"  {name}: CPU/request {target.cpu_us_per_request:.0f} us = model {cpu_us:.0f} + "
            f"the rest {target.cpu_us_per_request - cpu_us:.0f}; p50 {target.median_p50:.1f} ms,"
            f" p99 {target.median_p99:.1f} ms"
        )
        if name.startswith("modelhost"):
            # modelhost runs the model on other threads than the event loop's (the main
            # thread): what they spend beyond the model alone is the part of the rest that the
            # HTTP and request path do not explain.
            main_us = target.main_thread_us_per_request
            others_us = target.cpu_us_per_request - main_us
            print(
                f"  {name}: the event loop's thread {main_us:.0f} us a request, the other "
                f"threads {others_us:.0f} ({others_us - cpu_us:+.0f} beside the model alone)"
            )
    if "mlserver-batched" in by_name and "torch" in model_costs:
        torch_us = model_costs["torch"][connections][0]
        bound = by_name["mlserver-batched"].cpu_us_per_request / torch_us
        ratios["mlserver_cpu_over_torch_model"] = bound
        print(
            f"mlserver-batched spends {by_name['mlserver-batched'].cpu_us_per_request:.0f} us "
            f"CPU a request, {bound:.2f}x the torch model's own {torch_us:.0f} us"
        )
    return ratios


def _nearest(costs: dict[int, tuple[float, float]], mean_batch: float) -> int:
    """The measured batch size nearest ``mean_batch``: a mean of 63.0 is batches of 64 and a
    few smaller ones at the ends of rounds, whose per-sentence cost differs from 64's by less
    than the noise."""
    return min(costs, key=lambda size: abs(size - mean_batch))


def _check_sentences() -> None:
    assert len(set(SENTENCES)) == len(SENTENCES) == 256
    assert all(re.fullmatch(r"[A-Za-z' ,.]+", s) for s in SENTENCES)


_check_sentences()

if __name__ == "__main__":
    sys.exit(main())
