"""V2 JSON infer req/s on the iris LogisticRegression: modelhost vs MLServer 1.7.1 vs the bare
Starlette ceiling, side by side in one run; and the usage-record writer's cost.

All servers run at the same time, each pinned to the server core (``taskset -c 0``); wrk
(``-t1 -c32``), pinned to the client core, loads them in turn, rotating the order each round:

* ``modelhost``: ``modelhost serve`` on the demo models as built (iris-sklearn batches with
  ``max_delay_ms: 2``), usage records on (the default: one record per request, written in batches
  to SQLite by the usage writer);
* ``modelhost-nousage``: the same with ``MODELHOST_USAGE_RECORDS=false``;
* ``modelhost-nobatch`` and ``modelhost-nobatch-nousage``: the model.yaml without ``batching``
  (one predict per request, as MLServer does by default), usage records on and off;
* ``mlserver``: MLServer 1.7.1 with mlserver-sklearn (``bench/.venv-mlserver``) serving the same
  fitted model (the demo's model.joblib), ``settings.json``: ``parallel_workers: 0`` (inference
  in the server process: with workers it would use more cores than the one it is pinned to) and
  ``debug: false`` (no access log, like modelhost);
* ``starlette-hello``: ``bench/starlette_hello.py``, the ceiling of the web stack both build on.

Every server does the same model work per request: modelhost's iris-sklearn answers ``label``
(``predict``) and ``probabilities`` (``predict_proba``); MLServer's request asks for the outputs
``predict`` and ``predict_proba``. Same input row, same JSON encoding.

The ratios printed: modelhost / MLServer (goal >= 4), modelhost / ceiling, and for the usage
writer req/s without / with it and the CPU time per request it adds. A CPU-time ratio (CPU
seconds per request from /proc) is printed beside each req/s ratio: it holds up better when
other processes share the machine.

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

GOAL = 4.0
MLSERVER_BODY = {**INFER_BODY, "outputs": [{"name": "predict"}, {"name": "predict_proba"}]}
VARIANTS = (
    "modelhost",
    "modelhost-nousage",
    "modelhost-nobatch",
    "modelhost-nobatch-nousage",
    "mlserver",
    "starlette-hello",
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
        help="run only these targets (repeat; default: all). The ratios need modelhost, "
        "mlserver and starlette-hello",
    )
    parser.add_argument(
        "--profile", type=Path, help="py-spy the first modelhost target under load into this file"
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    if args.rounds < 1 or args.seconds < 1 or args.connections < 1:
        parser.error("--rounds, --seconds and --connections must be at least 1")
    args.only = [name for name in VARIANTS if name in (args.only or VARIANTS)]
    return args


def mlserver_repository(repository: Path, work: Path) -> Path:
    """MLServer's model repository: settings.json and iris-sklearn/ with the demo's joblib."""
    folder = work / "mlserver-models"
    model = folder / MODEL
    model.mkdir(parents=True)
    shutil.copy(repository / MODEL / "1" / "model.joblib", model / "model.joblib")
    (folder / "settings.json").write_text(json.dumps({"parallel_workers": 0, "debug": False}))
    (model / "model-settings.json").write_text(
        json.dumps(
            {
                "name": MODEL,
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib"},
            }
        )
    )
    return folder


def run(
    args: argparse.Namespace,
    work: Path,
    processes: list[subprocess.Popen[bytes]],
    info: dict[str, str],
) -> int:
    from modelhost.demo_models import build_demo_models

    repository = work / "models"
    build_demo_models(repository, minilm=False)
    unbatched = harness.edit_manifest(
        repository, work / "models-nobatch", MODEL, lambda manifest: manifest.pop("batching")
    )
    body = json.dumps(INFER_BODY, separators=(",", ":"))
    mlserver_body = json.dumps(MLSERVER_BODY, separators=(",", ":"))
    script = harness.post_script(work / "post.lua", body)
    mlserver_script = harness.post_script(work / "post-mlserver.lua", mlserver_body)
    core = args.server_core

    started: dict[str, tuple[subprocess.Popen[bytes], str, str, Path]] = {}  # url, body, script
    for name in args.only:
        if name.startswith("modelhost"):
            models = unbatched if "nobatch" in name else repository
            env = {"MODELHOST_USAGE_RECORDS": "false" if name.endswith("nousage") else "true"}
            process, base = harness.start_modelhost(
                name, models, work, processes, core=core, env=env
            )
            started[name] = (process, f"{base}/v2/models/{MODEL}/infer", body, script)
        elif name == "mlserver":
            folder = mlserver_repository(repository, work)
            process, base = harness.start_mlserver(name, folder, work, processes, core=core)
            started[name] = (process, f"{base}/v2/models/{MODEL}/infer", mlserver_body,
                             mlserver_script)  # fmt: skip
        else:
            process, base = start_ceiling(work, processes, core)
            started[name] = (process, f"{base}/hello", body, script)

    targets = []
    for name, (process, url, request_body, request_script) in started.items():
        log = work / f"{name}.log"
        if name == "starlette-hello":
            harness.wait_ready(process, None, log, probe=url, body=request_body)
        else:
            base = url.split("/v2/")[0]
            harness.wait_ready(process, f"{base}/v2/health/ready", log, timeout=120)
            harness.wait_ready(process, None, log, probe=url, body=request_body, timeout=120)
            answer = harness.post_json(url, request_body)
            outputs = {output["name"]: output["data"] for output in answer["outputs"]}
            print(f"warm-up: {name} answered {outputs}")
        targets.append(
            Target(name, url, process.pid, request_script, cpu_bound="nobatch" in name
                   or not name.startswith("modelhost"))
        )  # fmt: skip
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

    compare("modelhost / mlserver", "modelhost", "mlserver", GOAL)
    compare("modelhost (usage off) / mlserver", "modelhost-nousage", "mlserver")
    compare("modelhost-nobatch / mlserver", "modelhost-nobatch", "mlserver")
    compare("modelhost-nobatch (usage off) / mlserver", "modelhost-nobatch-nousage", "mlserver")
    compare("modelhost / ceiling", "modelhost", "starlette-hello")
    compare("mlserver / ceiling", "mlserver", "starlette-hello")
    compare("usage records off / on (batched)", "modelhost-nousage", "modelhost")
    compare("usage records off / on (unbatched)", "modelhost-nobatch-nousage", "modelhost-nobatch")
    for on, off in (
        ("modelhost", "modelhost-nousage"),
        ("modelhost-nobatch", "modelhost-nobatch-nousage"),
    ):
        if on in by_name and off in by_name:
            added = by_name[on].cpu_us_per_request - by_name[off].cpu_us_per_request
            ratios[f"usage writer us/request ({on})"] = added
            print(f"the usage writer adds {added:.0f} us of CPU per request to {on}")
    return ratios


if __name__ == "__main__":
    sys.exit(main())
