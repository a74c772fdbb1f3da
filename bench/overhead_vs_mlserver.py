"""P1: V2 JSON infer on the iris LogisticRegression, one row a request: modelhost vs MLServer
1.7.1 vs the in-process ceiling, batched and unbatched, side by side in one run.

All servers run at the same time, each pinned to the server core (``taskset -c 0``); wrk
(``-t1 -c32``), pinned to the client core, loads them in turn, rotating the order each round.
Every target does the same work per request: one row in, the ``predict`` output (the label)
out, in V2 JSON. The rows of issue 13's table (the default targets):

* ``ceiling``: ``bench/starlette_model.py``: Starlette, ``json``, ``model.predict`` via
  ``run_in_threadpool``, nothing else: what any server on this stack must spend;
* ``mlserver``: MLServer 1.7.1 with mlserver-sklearn (``bench/.venv-mlserver``) on the same
  fitted model (the demo's model.joblib), no adaptive batching (its default);
  ``settings.json``: ``parallel_workers: 0`` (inference in the server process, on its core)
  and ``debug: false`` (no access log, like modelhost);
* ``modelhost-nobatch``: ``modelhost serve`` on the demo models with ``batching`` removed from
  iris-sklearn's model.yaml: one predict per request;
* ``mlserver-batched``: MLServer with adaptive batching, ``max_batch_size: 64``,
  ``max_batch_time: 0.002``;
* ``modelhost``: the demo's iris-sklearn as built (``batching: {max_delay_ms: 2}``).

Every modelhost target runs as in production: auth on, each request with a real API key (a
user made with ``modelhost users create`` in its database), usage records on (written in
batches to SQLite), metrics on. More targets with ``--only``: ``modelhost-nousage`` and
``modelhost-nobatch-nousage`` (``MODELHOST_USAGE_RECORDS=false``),
``modelhost-nobatch-threads`` (``MODELHOST_INLINE_PREDICT_MS=0``: every predict in a worker
thread), ``starlette-hello`` (a bare JSON endpoint, no model), and the floors of
``bench/http_floor.py``: ``uvicorn-floor`` (a bare ASGI app on uvicorn, configured like
``modelhost serve``: what uvicorn alone costs a request) and ``httptools-floor`` (a minimal
asyncio protocol on httptools with one write per answer: the least a Python server on this
loop and parser could spend); ``modelhost-lean-http`` (``bench/lean_asgi.py``: modelhost's own
application, batched, every feature on, behind a minimal ASGI driver on httptools: beside
``modelhost`` it bounds what a leaner HTTP front end could still save).

Printed ratios and goals: modelhost unbatched / MLServer unbatched (>= 1.5) and / the ceiling
(>= 0.75); modelhost batched / MLServer batched (>= 4). A CPU-time ratio (CPU seconds per
request from /proc) is printed beside each req/s ratio: it holds up better when other processes
share the machine.

    bench/overhead_vs_mlserver.sh [--rounds 3] [--seconds 10] [--connections 32]
                                  [--only NAME ...] [--profile FILE] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import harness
from harness import Target
from http_overhead import INFER_BODY, MODEL, start_ceiling

BATCHED_GOAL = 4.0
UNBATCHED_GOAL = 1.5
CEILING_GOAL = 0.75
# One row in, the label out: the same request to every server.
BODY = {**INFER_BODY, "outputs": [{"name": "label"}]}
MLSERVER_BODY = {**INFER_BODY, "outputs": [{"name": "predict"}]}
BATCHED_TARGETS = ("modelhost", "modelhost-nousage", "modelhost-lean-http", "mlserver-batched")
DEFAULT_VARIANTS = ("ceiling", "mlserver", "modelhost-nobatch", "mlserver-batched", "modelhost")
VARIANTS = (
    *DEFAULT_VARIANTS,
    "modelhost-nousage",
    "modelhost-nobatch-nousage",
    "modelhost-nobatch-threads",
    "starlette-hello",
    "uvicorn-floor",
    "httptools-floor",
    "modelhost-lean-http",
)


def main() -> int:
    args = parse_args()
    harness.require_tools("wrk", "taskset")
    harness.check_cores(args.server_core, args.client_core)

    def body(work: Path, processes: list[subprocess.Popen[bytes]]) -> int:
        info = harness.machine_info()
        info["mlserver"] = harness.mlserver_versions()
        harness.print_machine_info(info)
        print(
            f"settings: {args.rounds} rounds x {args.seconds} s, wrk -t1 -c{args.connections}, "
            f"warm-up {args.warmup_seconds} s per target\n"
        )
        return run(args, work, processes, info)

    return harness.guarded_main(body, "modelhost-bench-mlserver-")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds per target (default 3)")
    parser.add_argument("--seconds", type=int, default=10, help="wrk seconds per round (10)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--warmup-seconds", type=int, default=2, help="uncounted wrk warm-up (2)")
    parser.add_argument("--server-core", type=int, default=0, help="core of the servers (0)")
    parser.add_argument("--client-core", type=int, default=1, help="core of wrk (1)")
    parser.add_argument(
        "--only",
        action="append",
        choices=VARIANTS,
        help=f"run only these targets (repeat; default: {', '.join(DEFAULT_VARIANTS)})",
    )
    parser.add_argument(
        "--profile", type=Path, help="py-spy the first modelhost target under load into this file"
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    if args.rounds < 1 or args.seconds < 1 or args.connections < 1:
        parser.error("--rounds, --seconds and --connections must be at least 1")
    args.only = [name for name in VARIANTS if name in (args.only or DEFAULT_VARIANTS)]
    return args


def mlserver_repository(repository: Path, work: Path, name: str, batched: bool) -> Path:
    """MLServer's model repository: settings.json and iris-sklearn/ with the demo's joblib;
    ``batched``: adaptive batching (64 requests, 2 ms)."""
    folder = work / f"{name}-models"
    model = folder / MODEL
    model.mkdir(parents=True)
    shutil.copy(repository / MODEL / "1" / "model.joblib", model / "model.joblib")
    (folder / "settings.json").write_text(json.dumps({"parallel_workers": 0, "debug": False}))
    settings: dict[str, Any] = {
        "name": MODEL,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib"},
    }
    if batched:
        settings |= {"max_batch_size": 64, "max_batch_time": 0.002}
    (model / "model-settings.json").write_text(json.dumps(settings))
    return folder


def start_model_ceiling(
    repository: Path, work: Path, processes: list[subprocess.Popen[bytes]], core: int
) -> tuple[subprocess.Popen[bytes], str]:
    """``bench/starlette_model.py`` under uvicorn, configured like ``modelhost serve``."""
    model = repository / MODEL / "1" / "model.joblib"
    return harness.start_uvicorn(
        "starlette_model:app", "ceiling", work, processes, core=core,
        env={"CEILING_MODEL": str(model)},
    )  # fmt: skip


def run(
    args: argparse.Namespace,
    work: Path,
    processes: list[subprocess.Popen[bytes]],
    info: dict[str, str],
) -> int:
    from modelhost.demo_models import build_demo_models

    built = work / "demo-models"
    build_demo_models(built, minilm=False)

    def label_only(manifest: dict[str, Any]) -> None:
        # The same model work as the other servers: predict, not predict_proba too.
        manifest["outputs"] = [o for o in manifest["outputs"] if o["name"] == "label"]

    repository = harness.edit_manifest(built, work / "models", MODEL, label_only)
    unbatched = harness.edit_manifest(
        repository, work / "models-nobatch", MODEL, lambda manifest: manifest.pop("batching")
    )
    body = json.dumps(BODY, separators=(",", ":"))
    mlserver_body = json.dumps(MLSERVER_BODY, separators=(",", ":"))
    core = args.server_core

    # name → (process, url, body, wrk script, request headers)
    started: dict[str, tuple[subprocess.Popen[bytes], str, str, Path, dict[str, str]]] = {}
    for name in args.only:
        if name.startswith("modelhost"):
            models = unbatched if "nobatch" in name else repository
            env = {
                "MODELHOST_AUTH": "enabled",
                "MODELHOST_USAGE_RECORDS": "false" if name.endswith("nousage") else "true",
            }
            if name.endswith("-threads"):
                env["MODELHOST_INLINE_PREDICT_MS"] = "0"  # every predict in a worker thread
            headers = {"Authorization": f"Bearer {harness.create_api_key(work, name)}"}
            process, base = harness.start_modelhost(
                name, models, work, processes, core=core, env=env, lean=name.endswith("-lean-http")
            )
            script = harness.post_script(work / f"{name}.lua", body, headers)
            started[name] = (process, f"{base}/v2/models/{MODEL}/infer", body, script, headers)
        elif name.startswith("mlserver"):
            folder = mlserver_repository(repository, work, name, batched=name.endswith("batched"))
            process, base = harness.start_mlserver(name, folder, work, processes, core=core)
            script = harness.post_script(work / f"{name}.lua", mlserver_body)
            url = f"{base}/v2/models/{MODEL}/infer"
            started[name] = (process, url, mlserver_body, script, {})
        elif name == "ceiling":
            process, base = start_model_ceiling(repository, work, processes, core)
            script = harness.post_script(work / f"{name}.lua", body)
            started[name] = (process, f"{base}/v2/models/{MODEL}/infer", body, script, {})
        elif name == "uvicorn-floor":
            process, base = harness.start_uvicorn(
                "http_floor:app", name, work, processes, core=core
            )
            script = harness.post_script(work / f"{name}.lua", body)
            started[name] = (process, f"{base}/v2/models/{MODEL}/infer", body, script, {})
        elif name == "httptools-floor":
            port = harness.free_port()
            process = harness.start(
                ["taskset", "-c", str(core), sys.executable,
                 str(harness.BENCH_DIR / "http_floor.py"), str(port)],
                work / f"{name}.log",
                processes,
            )  # fmt: skip
            script = harness.post_script(work / f"{name}.lua", body)
            url = f"http://127.0.0.1:{port}/v2/models/{MODEL}/infer"
            started[name] = (process, url, body, script, {})
        else:
            process, base = start_ceiling(work, processes, core)
            script = harness.post_script(work / f"{name}.lua", body)
            started[name] = (process, f"{base}/hello", body, script, {})

    targets = []
    for name, (process, url, request_body, request_script, headers) in started.items():
        log = work / f"{name}.log"
        if name.startswith("modelhost") or name.startswith("mlserver"):
            base = url.split("/v2/")[0]
            harness.wait_ready(process, f"{base}/v2/health/ready", log, timeout=120)
        harness.wait_ready(
            process, None, log, probe=url, body=request_body, timeout=120, headers=headers
        )
        answer = harness.post_json(url, request_body, headers)
        if "outputs" in answer:
            outputs = {output["name"]: output["data"] for output in answer["outputs"]}
            print(f"warm-up: {name} answered {outputs}")
        # Batching servers wait on their timers by design: not expected to fill their core.
        batched = name in BATCHED_TARGETS
        targets.append(Target(name, url, process.pid, request_script, cpu_bound=not batched))
    print(f"servers on core {core}, wrk on core {args.client_core}; load {harness.load_average()}")
    print()

    wrk = harness.wrk_command(args.client_core, 1, args.connections)
    loads = harness.run_rounds(
        wrk, targets, rounds=args.rounds, seconds=args.seconds, warmup_seconds=args.warmup_seconds
    )
    harness.report_rounds(targets, args.rounds, core, args.client_core)
    ratios = report(targets)
    if args.profile is not None:
        first = next(t for t in targets if t.name.startswith("modelhost"))
        harness.profile(args.profile, args.seconds, args.client_core, wrk, first)
    ok = True
    for target in targets:
        process = started[target.name][0]
        if process.poll() is not None:
            print(f"{target.name} exited ({process.returncode}) during the run", file=sys.stderr)
            print((work / f"{target.name}.log").read_text(), file=sys.stderr)
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
                    "cpu_us_per_request": {t.name: t.cpu_us_per_request for t in targets},
                    "main_thread_us_per_request": {
                        t.name: t.main_thread_us_per_request for t in targets
                    },
                    "ratios": ratios,
                },
                indent=2,
            )
        )
    return 0 if ok else 1


def report(targets: list[Target]) -> dict[str, Any]:
    """Prints and returns the ratios the run allows (only those whose targets ran)."""
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
        line = f"{label:<44} req/s ratio {rps:6.3f}   CPU-time ratio {cpu:6.3f}"
        if goal is not None:
            line += f"   ({harness.verdict(rps, goal)})"
        print(line)

    compare("modelhost unbatched / mlserver unbatched", "modelhost-nobatch", "mlserver",
            UNBATCHED_GOAL)  # fmt: skip
    compare("modelhost unbatched / ceiling", "modelhost-nobatch", "ceiling", CEILING_GOAL)
    compare("modelhost batched / mlserver batched", "modelhost", "mlserver-batched",
            BATCHED_GOAL)  # fmt: skip
    compare("mlserver unbatched / ceiling", "mlserver", "ceiling")
    compare("modelhost batched / ceiling", "modelhost", "ceiling")
    compare("mlserver batched / unbatched", "mlserver-batched", "mlserver")
    compare("modelhost batched / unbatched", "modelhost", "modelhost-nobatch")
    compare("modelhost (usage off) / mlserver batched", "modelhost-nousage", "mlserver-batched")
    compare("modelhost unbatched, usage off / mlserver", "modelhost-nobatch-nousage", "mlserver")
    compare("predict inline / in threads (unbatched)", "modelhost-nobatch",
            "modelhost-nobatch-threads")  # fmt: skip
    compare("usage records off / on (batched)", "modelhost-nousage", "modelhost")
    compare("usage records off / on (unbatched)", "modelhost-nobatch-nousage", "modelhost-nobatch")
    # The lean bound: the same application behind the least a front end can do.
    compare("lean front end / modelhost's (batched)", "modelhost-lean-http", "modelhost")
    compare("lean front end / mlserver batched", "modelhost-lean-http", "mlserver-batched")
    for on, off in (
        ("modelhost", "modelhost-nousage"),
        ("modelhost-nobatch", "modelhost-nobatch-nousage"),
    ):
        if on in by_name and off in by_name:
            added = by_name[on].cpu_us_per_request - by_name[off].cpu_us_per_request
            ratios[f"usage writer us/request ({on})"] = added
            print(f"the usage writer adds {added:.0f} us of CPU per request to {on}")
    # What each server spends a request above the HTTP layer alone (bench/http_floor.py).
    for floor in ("uvicorn-floor", "httptools-floor"):
        if floor not in by_name:
            continue
        base = by_name[floor].cpu_us_per_request
        ratios[f"{floor} us/request"] = base
        for target in targets:
            if not target.name.endswith("-floor"):
                above = target.cpu_us_per_request - base
                print(f"{target.name} spends {above:.0f} us of CPU a request above {floor}")
    return ratios


if __name__ == "__main__":
    sys.exit(main())
