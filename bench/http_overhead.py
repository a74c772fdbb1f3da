"""HTTP overhead of modelhost's V2 JSON infer path against a bare Starlette ceiling, in one run.

The servers run side by side, all pinned to the same core (``taskset -c 0``):

* ``modelhost serve`` on the demo models (auth disabled, a throwaway SQLite database), answering
  ``POST /v2/models/iris-sklearn/infer`` (a LogisticRegression, one row of 4 features); one
  server per ``--batching`` variant (default: the demo model as built), plus a ``gc.freeze()``
  twin of the first with ``--gc-freeze``;
* ``bench/starlette_hello.py`` under uvicorn with the settings ``modelhost serve`` uses (uvloop,
  httptools, no access log, log level warning), answering ``POST /hello`` with the same body.

wrk, pinned to another core, loads them in turn, rotating the order over several rounds so
machine noise hits all alike. The script prints req/s per round, the median, p50/p99 latency and
the ratio modelhost / ceiling (goal: >= 0.30), and fails if any response was not 2xx. It also
reads each server's CPU time from /proc: CPU per request, and the CPU-time ratio (ceiling CPU per
request / modelhost CPU per request), which holds up better than req/s on a shared machine (a
round where a server used under 90 % of its core is flagged).

    bench/http_overhead.sh [--rounds 3] [--seconds 10] [--connections 32] [--profile out.txt]
                           [--batching demo|off|MS ...] [--gc-freeze] [--commit HEAD]
                           [--json out.json]

``--profile`` adds one more round of the first modelhost (not counted) under py-spy and prints
the hot spots. It samples only the thread holding the GIL (``py-spy record --gil``): with the
server on one core that is where its Python CPU time goes, without threads that wait for the GIL.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import FrameType

import yaml

BENCH_DIR = Path(__file__).resolve().parent
MODEL = "iris-sklearn"
INFER_BODY = {
    "inputs": [{"name": "input", "datatype": "FP64", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]
}
GOAL = 0.30
GC_FREEZE_SUFFIX = "-gcfreeze"
# A server on its own core under wrk uses it all; less means something else took the core.
CPU_BOUND = 0.90

POST_LUA = """\
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
"""


@dataclass
class WrkResult:
    requests_per_second: float
    requests: int
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    server_cpu: float = 0.0  # the server's CPU seconds per second of the round


@dataclass
class Target:
    name: str
    url: str
    pid: int
    results: list[WrkResult]
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    system_seconds: float = 0.0
    context_switches: int = 0
    batching: dict[str, object] | None = None  # the model's batching, None: off


def main() -> int:
    args = parse_args()
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (bench/http_overhead.sh installs wrk with apt-get)")
    allowed = os.sched_getaffinity(0)
    for core in (args.server_core, args.client_core):
        if core not in allowed:
            sys.exit(f"core {core} is not available here (cores: {sorted(allowed)})")

    # SIGTERM/SIGHUP unwind through the finally below, like Ctrl-C does.
    def _interrupt(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)

    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="modelhost-bench-") as tmp:
        work = Path(tmp)
        if args.commit is not None:
            use_commit(args.commit, work / "source")
        print_machine_info(args)
        try:
            return run(args, work, processes)
        except KeyboardInterrupt:
            print("\ninterrupted", file=sys.stderr)
            return 130
        finally:
            for process in processes:
                stop(process)


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
        "--gc-freeze",
        action="store_true",
        help="also run the first --batching variant through bench/gc_freeze_serve.py, which "
        "calls gc.freeze() once the server is ready",
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


def run(args: argparse.Namespace, work: Path, processes: list[subprocess.Popen[bytes]]) -> int:
    from modelhost.demo_models import build_demo_models

    repository = work / "models"
    build_demo_models(repository)
    body = json.dumps(INFER_BODY, separators=(",", ":"))
    script = work / "post.lua"
    script.write_text(POST_LUA.format(body=json.dumps(body)))

    bin_dir = Path(sys.executable).parent
    modelhost_exe = bin_dir / "modelhost"
    if not modelhost_exe.exists():
        sys.exit(f"{modelhost_exe} not found: run with the project's virtualenv python")
    pin = ["taskset", "-c", str(args.server_core)]

    def start_modelhost(name: str, models: Path) -> tuple[subprocess.Popen[bytes], str]:
        port = free_port()
        launcher = [str(modelhost_exe)]
        if name.endswith(GC_FREEZE_SUFFIX):
            launcher = [sys.executable, str(BENCH_DIR / "gc_freeze_serve.py")]
        process = start(
            [*pin, *launcher, "serve", "--model-repository", str(models),
             "--port", str(port), "--log-level", "warning"],
            work / f"{name}.log",
            processes,
            env={
                # No API keys in a throwaway database: the bench measures serving, not auth.
                "MODELHOST_AUTH": "disabled",
                "MODELHOST_DATABASE_URL": f"sqlite:///{work / name}.db",
                "MODELHOST_USAGE_JOURNAL": str(work / f"{name}-usage.journal"),
            },
        )  # fmt: skip
        return process, f"http://127.0.0.1:{port}"

    modelhosts = []  # (name, repository, the model's batching)
    demo_batching = read_batching(repository)
    for variant in args.batching:
        if variant == "demo":
            modelhosts.append(("modelhost", repository, demo_batching))
            continue
        name = "modelhost-nobatch" if variant == "off" else f"modelhost-batch{variant}ms"
        batching = None if variant == "off" else {"max_delay_ms": float(variant)}
        copy = work / f"models-{name}"
        shutil.copytree(repository, copy)
        manifest_path = copy / MODEL / "1" / "model.yaml"
        manifest = yaml.safe_load(manifest_path.read_text())
        manifest.pop("batching", None)
        if batching is not None:
            manifest["batching"] = batching
        manifest_path.write_text(yaml.safe_dump(manifest, sort_keys=False))
        modelhosts.append((name, copy, batching))
    if args.gc_freeze:
        name, models, batching = modelhosts[0]
        modelhosts.insert(1, (name + GC_FREEZE_SUFFIX, models, batching))
    print(f"the demo's {MODEL} model.yaml has batching: {demo_batching or 'off'}")
    servers = [(name, *start_modelhost(name, models)) for name, models, _ in modelhosts]
    hello_port = free_port()
    hello = start(
        [*pin, sys.executable, "-m", "uvicorn", "--app-dir", str(BENCH_DIR),
         "starlette_hello:app", "--host", "127.0.0.1", "--port", str(hello_port),
         "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"],
        work / "starlette-hello.log",
        processes,
    )  # fmt: skip
    hello_base = f"http://127.0.0.1:{hello_port}"

    targets = []
    for (name, process, base), (_, _, batching) in zip(servers, modelhosts, strict=True):
        wait_ready(process, f"{base}/v2/health/ready", work / f"{name}.log")
        infer_url = f"{base}/v2/models/{MODEL}/infer"
        answer = post_json(infer_url, body)  # loads the model; this request is not measured
        labels = {output["name"]: output["data"] for output in answer["outputs"]}
        print(f"warm-up: {name} {MODEL} answered {labels}")
        if name.endswith(GC_FREEZE_SUFFIX):
            wait_for_line(work / f"{name}.log", "gc_freeze_serve: froze")
        targets.append(Target(name, infer_url, process.pid, [], batching=batching))
    wait_ready(hello, None, work / "starlette-hello.log", probe=f"{hello_base}/hello", body=body)
    targets.append(Target("starlette-hello", f"{hello_base}/hello", hello.pid, []))
    print(f"servers on core {args.server_core}, wrk on core {args.client_core}\n")

    wrk = [
        "taskset", "-c", str(args.client_core), "wrk", f"-t{args.wrk_threads}",
        f"-c{args.connections}", "--latency", "-s", str(script),
    ]  # fmt: skip
    if args.warmup_seconds > 0:
        for target in targets:
            run_wrk(wrk, target.url, args.warmup_seconds)
    for round_number in range(1, args.rounds + 1):
        # Rotate which target goes first so none always follows the same one.
        shift = (round_number - 1) % len(targets)
        order = targets[shift:] + targets[:shift]
        for target in order:
            cpu_before, system_before, switches_before = process_stats(target.pid)
            started = time.monotonic()
            result = run_wrk(wrk, target.url, args.seconds)
            elapsed = time.monotonic() - started
            cpu_after, system_after, switches_after = process_stats(target.pid)
            result.server_cpu = (cpu_after - cpu_before) / elapsed
            target.cpu_seconds += cpu_after - cpu_before
            target.system_seconds += system_after - system_before
            target.wall_seconds += elapsed
            target.context_switches += switches_after - switches_before
            target.results.append(result)
            print(
                f"round {round_number} {target.name:<16} {result.requests_per_second:>9.0f} req/s"
                f"  p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms"
                f"  server CPU {100 * result.server_cpu:3.0f}%"
                f"  non-2xx {result.non_2xx}  socket errors {result.socket_errors}"
            )

    predict_seconds = predict_cost(repository, args.server_core)
    ok = report(args, targets, predict_seconds)
    if args.profile is not None:
        profile(args, wrk, targets[0].url, targets[0].pid)
    for target, process in zip(targets, [*(p for _, p, _ in servers), hello], strict=True):
        if process.poll() is not None:
            print(f"{target.name} exited ({process.returncode}) during the run", file=sys.stderr)
            print((work / f"{target.name}.log").read_text(), file=sys.stderr)
            ok = False
    return 0 if ok else 1


def report(args: argparse.Namespace, targets: list[Target], predict_seconds: float) -> bool:
    print()
    header = ["target", *(f"round {i}" for i in range(1, args.rounds + 1))]
    header += ["median req/s", "p50 ms", "p99 ms", "non-2xx"]
    rows = []
    medians = {}
    for target in targets:
        rates = [result.requests_per_second for result in target.results]
        medians[target.name] = statistics.median(rates)
        rows.append(
            [
                target.name,
                *(f"{rate:.0f}" for rate in rates),
                f"{medians[target.name]:.0f}",
                f"{statistics.median(r.p50_ms for r in target.results):.2f}",
                f"{statistics.median(r.p99_ms for r in target.results):.2f}",
                str(sum(r.non_2xx + r.socket_errors for r in target.results)),
            ]
        )
    print_table(header, rows)
    print("(p50/p99: median over the rounds; non-2xx includes socket errors)")
    cpu_us = {}
    for target in targets:
        requests = sum(r.requests for r in target.results) or 1
        cpu_us[target.name] = 1e6 * target.cpu_seconds / requests
        print(
            f"{target.name}: server CPU {100 * target.cpu_seconds / target.wall_seconds:.0f}% "
            f"of its core ({100 * target.system_seconds / max(target.cpu_seconds, 1e-9):.0f}% "
            f"of it in the kernel), {cpu_us[target.name]:.0f} us CPU and "
            f"{target.context_switches / requests:.1f} context switches per request"
        )
    print()
    ratios = {}
    for target in targets[:-1]:
        ratios[target.name] = ratio = medians[target.name] / medians["starlette-hello"]
        verdict = "meets" if ratio >= GOAL else "below"
        print(f"ratio {target.name} / ceiling = {ratio:.3f}  ({verdict} the goal of >= {GOAL:.2f})")

    starved = [
        f"{target.name} round {number}"
        for target in targets
        for number, result in enumerate(target.results, 1)
        if result.server_cpu < CPU_BOUND and target.batching is None  # batching waits by design
    ]
    if starved:
        print(
            f"WARNING: a server used under {100 * CPU_BOUND:.0f}% of its core in {starved}: "
            f"other processes took core {args.server_core}, or wrk's core {args.client_core} so "
            "that wrk could not keep the server busy. Those req/s (and the ratio) are "
            "unreliable; the CPU-time ratio below is less affected. Rerun on a quiet machine."
        )

    # CPU time per request (from /proc, so other processes on the core don't inflate it) splits
    # an unbatched modelhost's cost into the HTTP ceiling, the model's own predict and the rest.
    ceiling_us = cpu_us["starlette-hello"]
    predict_us = 1e6 * predict_seconds
    for target in targets[:-1]:
        print(f"CPU-time ratio ceiling / {target.name} = {ceiling_us / cpu_us[target.name]:.3f}")
    for target in targets[:-1]:
        if target.batching is None:
            modelhost_us = cpu_us[target.name]
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

    failures = [
        target.name
        for target in targets
        if any(r.non_2xx or r.socket_errors or r.requests == 0 for r in target.results)
    ]
    if failures:
        print(f"FAILED: non-2xx responses or socket errors from {failures}", file=sys.stderr)
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "machine": machine_info(),
                    "settings": {
                        "rounds": args.rounds,
                        "seconds": args.seconds,
                        "connections": args.connections,
                    },
                    "targets": {t.name: [vars(r) for r in t.results] for t in targets},
                    "median_rps": medians,
                    "ratio": ratios,
                    "cpu_us_per_request": cpu_us,
                    "predict_us": predict_us,
                },
                indent=2,
            )
        )
    return not failures


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    line = "| " + " | ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    line += " |"
    print(line.format(*header))
    rules = ["-" * (w + 2) if i == 0 else "-" * (w + 1) + ":" for i, w in enumerate(widths)]
    print("|" + "|".join(rules) + "|")
    for row in rows:
        print(line.format(*row))


# --- wrk ---------------------------------------------------------------------------------------

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def read_batching(repository: Path) -> dict[str, object] | None:
    manifest = yaml.safe_load((repository / MODEL / "1" / "model.yaml").read_text())
    batching: dict[str, object] | None = manifest.get("batching")
    return batching


def predict_cost(repository: Path, core: int) -> float:
    """CPU seconds one ``SklearnRuntime.predict`` of the bench's row takes, pinned to ``core``."""
    import numpy as np

    from modelhost.registry.manifest import read_manifest
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


def run_wrk(wrk: list[str], url: str, seconds: int) -> WrkResult:
    command = [*wrk, f"-d{seconds}s", url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
    return parse_wrk(done.stdout)


def parse_wrk(output: str) -> WrkResult:
    def latency(percent: str) -> float:
        match = re.search(rf"^\s*{percent}%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M)
        if match is None:
            raise RuntimeError(f"no {percent}% latency in wrk's output:\n{output}")
        return float(match.group(1)) * _UNITS_MS[match.group(2)]

    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    total = re.search(r"^\s*(\d+) requests in", output, re.M)
    if rate is None or total is None:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return WrkResult(
        requests_per_second=float(rate.group(1)),
        requests=int(total.group(1)),
        p50_ms=latency("50"),
        p99_ms=latency("99"),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
    )


# --- processes ---------------------------------------------------------------------------------


def start(
    command: list[str],
    log: Path,
    processes: list[subprocess.Popen[bytes]],
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=log.parent,  # files a server writes by default (database, journal) stay in there
            env={**os.environ, **(env or {})},
        )
    processes.append(process)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def process_stats(pid: int) -> tuple[float, float, int]:
    """CPU seconds (user + system), system seconds and context switches of ``pid``'s threads."""
    ticks = os.sysconf("SC_CLK_TCK")
    cpu, system, switches = 0.0, 0.0, 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
            system += int(fields[12]) / ticks
            for line in (task / "status").read_text().splitlines():
                if "ctxt_switches:" in line:
                    switches += int(line.split()[1])
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended meanwhile
    return cpu, system, switches


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(
    process: subprocess.Popen[bytes],
    url: str | None,
    log: Path,
    *,
    probe: str | None = None,
    body: str = "",
    timeout: float = 60.0,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited ({process.returncode}):\n{log.read_text()}")
        try:
            if url is not None:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            else:
                assert probe is not None
                post_json(probe, body)
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server not ready after {timeout:.0f} s:\n{log.read_text()}")


def wait_for_line(log: Path, prefix: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith(prefix):
                print(f"  {line}")
                return
        time.sleep(0.1)
    raise RuntimeError(f"no {prefix!r} line in {log} after {timeout:.0f} s")


def post_json(url: str, body: str) -> dict[str, object]:
    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        if response.status != 200:
            raise RuntimeError(f"{url} answered {response.status}")
        answer: dict[str, object] = json.loads(response.read())
        return answer


# --- machine info and profile ------------------------------------------------------------------


def machine_info() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
    versions = {}
    for package in ("uvicorn", "starlette", "uvloop", "httptools", "scikit-learn", "numpy"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "?"
    return {
        "source": source_revision(),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "wrk": (wrk_version.splitlines() or ["?"])[0],
        "packages": ", ".join(f"{name} {v}" for name, v in versions.items()),
    }


_SOURCE_NOTE: str | None = None


def use_commit(revision: str, target: Path) -> None:
    """Export ``revision``'s tree to ``target``; this process and the servers import it first."""
    global _SOURCE_NOTE
    root = BENCH_DIR.parent
    resolved = subprocess.run(
        ["git", "rev-parse", "--short", "--verify", f"{revision}^{{commit}}"],
        cwd=root, capture_output=True, text=True,
    )  # fmt: skip
    if resolved.returncode != 0:
        sys.exit(f"--commit {revision}: {resolved.stderr.strip()}")
    archive = target.with_suffix(".tar")
    subprocess.run(["git", "archive", "-o", str(archive), resolved.stdout.strip()], cwd=root,
                   check=True)  # fmt: skip
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    source = str(target / "src")
    sys.path.insert(0, source)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [source, *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    _SOURCE_NOTE = f"git archive of {revision} ({resolved.stdout.strip()})"


def source_revision() -> str:
    """The commit the servers run, and whether src/ differs from it (benchmarks of a dirty tree)."""
    import modelhost

    if _SOURCE_NOTE is not None:
        if not modelhost.__file__ or not modelhost.__file__.startswith(sys.path[0]):
            sys.exit(f"modelhost imports from {modelhost.__file__}, not the exported tree")
        return _SOURCE_NOTE
    root = Path(modelhost.__file__).resolve().parent.parent.parent  # <root>/src/modelhost
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=root, capture_output=True, text=True
        ).stdout.splitlines()
    except OSError:
        return "unknown (no git)"
    if not commit:
        return "unknown (not a git checkout)"
    dirty = f" + {len(changed)} uncommitted changes in src/" if changed else ""
    return f"{root}: {commit}{dirty}"


def print_machine_info(args: argparse.Namespace) -> None:
    print("machine:")
    for key, value in machine_info().items():
        print(f"  {key:<9} {value}")
    print(
        f"settings: {args.rounds} rounds x {args.seconds} s, wrk -t{args.wrk_threads} "
        f"-c{args.connections}, warm-up {args.warmup_seconds} s per target\n"
    )


def profile(args: argparse.Namespace, wrk: list[str], url: str, pid: int) -> None:
    py_spy = Path(sys.executable).parent / "py-spy"
    if not py_spy.exists():
        print(f"\n--profile: {py_spy} not found (pip install py-spy)", file=sys.stderr)
        return
    seconds = args.seconds
    print(f"\nprofiling modelhost (pid {pid}) with py-spy for {seconds} s under the same load...")
    sampler = subprocess.Popen(
        ["taskset", "-c", str(args.client_core), str(py_spy), "record", "--pid", str(pid),
         "--duration", str(seconds), "--rate", "200", "--gil", "--threads", "--nonblocking",
         "--format", "raw",
         "--output", str(args.profile)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        time.sleep(0.5)
        result = run_wrk(wrk, url, seconds)
        _, errors = sampler.communicate(timeout=seconds + 30)
    finally:
        stop(sampler)
    print(
        f"(under py-spy: {result.requests_per_second:.0f} req/s, non-2xx {result.non_2xx}; "
        "not counted above)"
    )
    if sampler.returncode != 0 or not args.profile.exists():
        print(f"py-spy failed: {errors.decode(errors='replace')}", file=sys.stderr)
        return
    print_hot_spots(args.profile)


def print_hot_spots(collapsed: Path, top: int = 10) -> None:
    """Samples per thread, per package and per function from py-spy's collapsed stacks."""
    threads: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        if frames[0].startswith("thread ("):  # --threads: "thread (0x..): name"
            threads[re.sub(r"_\d+$", "", frames.pop(0).split(": ", 1)[-1])] += count
        functions = [_function(frame) for frame in frames] or ["?"]
        own[functions[-1]] += count
        packages[_package(functions[-1])] += count
        for function in set(functions):
            inclusive[function] += count
    if total == 0:
        print("py-spy recorded no samples")
        return
    print(f"\n{total} samples of the thread holding the GIL")
    for title, counter, limit in (
        ("by thread", threads, top),
        ("own time by package", packages, top),
        (f"top {top} functions by own time", own, top),
    ):
        if counter:
            print(f"{title}:")
            for key, count in counter.most_common(limit):
                print(f"  {100 * count / total:5.1f}%  {key}")
    print(f"top {top} modelhost functions by inclusive time:")
    shown = [(f, c) for f, c in inclusive.most_common() if "modelhost/" in f][:top]
    for function, count in shown:
        print(f"  {100 * count / total:5.1f}%  {function}")
    print(f"the collapsed stacks are in {collapsed} (flamegraph.pl or speedscope read them)")


def _package(function: str) -> str:
    match = re.search(r"\(([^/)]+)", function)
    name = match.group(1) if match else function
    return name.removesuffix(".py")


def _function(frame: str) -> str:
    # "name (path/to/file.py:123)" -> "name (to/file.py)": lines apart, shorter paths.
    match = re.match(r"(.*) \((.*?):\d+\)$", frame)
    if match is None:
        return frame
    name, path = match.groups()
    for marker in ("site-packages/", "src/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"


if __name__ == "__main__":
    sys.exit(main())
