"""modelhost at two commits, side by side: P1's iris request (``bench/overhead_vs_mlserver.py``)
on each, to measure what a change to the request path saves.

Each commit's tree is exported (``git archive``) and served by its own ``modelhost serve``
(``PYTHONPATH`` puts the export ahead of the installed package), both pinned to the server
core, on the same demo models, as P1 runs them: auth on with a real key, usage records on,
metrics on. wrk, pinned to the client core, loads them in turn, alternating which goes first;
the CPU time per request (from /proc) is the figure to read: a change of a few per cent is
below what req/s shows on a shared machine. Run it both ways round (``A B``, then ``B A``): an
A/A run (the same commit on both sides) measured the B side ~4 % cheaper on a shared VM, so one
run's difference of that size says nothing.

    .venv/bin/python bench/ab_commits.py BEFORE AFTER [--nobatch] [--rounds 6] [--seconds 4]
                                         [--b-env NAME=VALUE ...]

``--nobatch``: iris-sklearn without ``batching`` (one predict per request). ``--b-env``: a
setting for the B side only (``MODELHOST_INLINE_PREDICT_MS=2``), to measure a setting's worth
with the same commit on both sides.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path
from typing import Any

import harness
from harness import Target
from overhead_vs_mlserver import BODY, MODEL


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", help="a commit (the A side)")
    parser.add_argument("after", help="a commit (the B side)")
    parser.add_argument("--nobatch", action="store_true", help="iris-sklearn without batching")
    parser.add_argument("--rounds", type=int, default=6, help="rounds per side (6)")
    parser.add_argument("--seconds", type=int, default=4, help="wrk seconds per round (4)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument(
        "--b-env", action="append", default=[], metavar="NAME=VALUE",
        help="an environment variable for the B side's server only (repeatable)",
    )  # fmt: skip
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--client-core", type=int, default=1)
    args = parser.parse_args()
    harness.require_tools("wrk", "taskset", "git")
    harness.check_cores(args.server_core, args.client_core)
    return harness.guarded_main(lambda work, processes: run(args, work, processes), "mh-ab-")


def run(args: argparse.Namespace, work: Path, processes: list[subprocess.Popen[bytes]]) -> int:
    from modelhost.demo_models import build_demo_models

    build_demo_models(work / "demo-models", minilm=False)

    def label_only(manifest: dict[str, Any]) -> None:
        manifest["outputs"] = [o for o in manifest["outputs"] if o["name"] == "label"]
        if args.nobatch:
            manifest.pop("batching")

    models = harness.edit_manifest(work / "demo-models", work / "models", MODEL, label_only)
    body = json.dumps(BODY, separators=(",", ":"))
    harness.print_machine_info(harness.machine_info())
    targets = []
    for side, revision in (("A", args.before), ("B", args.after)):
        tree = work / f"tree-{side}"
        commit = export(revision, tree)
        name = f"{side} {commit}"
        headers = {"Authorization": f"Bearer {harness.create_api_key(work, side)}"}
        env = {"MODELHOST_AUTH": "enabled", "PYTHONPATH": str(tree / "src")}
        if side == "B":
            env.update(setting.split("=", 1) for setting in args.b_env)
            name += "".join(f" {setting}" for setting in args.b_env)
        process, base = harness.start_modelhost(
            side, models, work, processes, core=args.server_core, env=env
        )
        url = f"{base}/v2/models/{MODEL}/infer"
        harness.wait_ready(process, f"{base}/v2/health/ready", work / f"{side}.log", timeout=120)
        harness.post_json(url, body, headers)
        script = harness.post_script(work / f"{side}.lua", body, headers)
        targets.append(Target(name, url, process.pid, script, cpu_bound=args.nobatch))
    print(f"\n{'unbatched' if args.nobatch else 'batched'} iris, {args.rounds} rounds x "
          f"{args.seconds} s, wrk -t1 -c{args.connections}\n")  # fmt: skip
    wrk = harness.wrk_command(args.client_core, 1, args.connections)
    harness.run_rounds(wrk, targets, rounds=args.rounds, seconds=args.seconds, warmup_seconds=2)
    harness.report_rounds(targets, args.rounds, args.server_core, args.client_core)
    a, b = targets
    print(
        f"\nB / A: CPU time per request {b.cpu_us_per_request / a.cpu_us_per_request:.3f}, "
        f"req/s {b.median_rps / a.median_rps:.3f}"
    )
    return 1 if any(target.failed for target in targets) else 0


def export(revision: str, tree: Path) -> str:
    """``revision``'s tree in ``tree``; returns its short commit id."""
    root = harness.BENCH_DIR.parent
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "--verify", f"{revision}^{{commit}}"],
        cwd=root, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    tree.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", commit, "src"], cwd=root, capture_output=True,
                             check=True).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return commit


if __name__ == "__main__":
    raise SystemExit(main())
