"""HTTP overhead of modelhost's V2 JSON infer path against a bare Starlette ceiling, in one run.

Two servers run side by side, each pinned to the same core (``taskset -c 0``):

* ``modelhost serve`` on the demo models, answering
  ``POST /v2/models/iris-sklearn/infer`` (a LogisticRegression, one row of 4 features);
* ``bench/starlette_hello.py`` under uvicorn with the settings ``modelhost serve`` uses (uvloop,
  httptools, no access log, log level warning), answering ``POST /hello`` with the same body.

wrk, pinned to another core, loads them in turn, alternating over several rounds so machine noise
hits both alike. The script prints req/s per round, the median, p50/p99 latency and the ratio
modelhost / ceiling (goal: >= 0.30), and fails if any response was not 2xx.

    bench/http_overhead.sh [--rounds 3] [--seconds 10] [--connections 32] [--profile out.txt]

``--profile`` adds one more modelhost round (not counted) under py-spy and prints the hot spots.
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
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import FrameType

BENCH_DIR = Path(__file__).resolve().parent
MODEL = "iris-sklearn"
INFER_BODY = {
    "inputs": [{"name": "input", "datatype": "FP64", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]
}
GOAL = 0.30

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


@dataclass
class Target:
    name: str
    url: str
    results: list[WrkResult]


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

    print_machine_info(args)
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="modelhost-bench-") as tmp:
        work = Path(tmp)
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
    parser.add_argument("--server-core", type=int, default=0, help="core of both servers (0)")
    parser.add_argument("--client-core", type=int, default=1, help="core of wrk (1)")
    parser.add_argument(
        "--profile",
        type=Path,
        help="after the rounds, sample modelhost under load with py-spy into this file "
        "(collapsed stacks) and print the hot spots",
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
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

    modelhost_port, hello_port = free_port(), free_port()
    modelhost = start(
        [*pin, str(modelhost_exe), "serve", "--model-repository", str(repository),
         "--port", str(modelhost_port), "--log-level", "warning"],
        work / "modelhost.log",
        processes,
    )  # fmt: skip
    hello = start(
        [*pin, sys.executable, "-m", "uvicorn", "--app-dir", str(BENCH_DIR),
         "starlette_hello:app", "--host", "127.0.0.1", "--port", str(hello_port),
         "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"],
        work / "hello.log",
        processes,
    )  # fmt: skip

    modelhost_base = f"http://127.0.0.1:{modelhost_port}"
    hello_base = f"http://127.0.0.1:{hello_port}"
    wait_ready(modelhost, f"{modelhost_base}/v2/health/ready", work / "modelhost.log")
    wait_ready(hello, None, work / "hello.log", probe=f"{hello_base}/hello", body=body)
    infer_url = f"{modelhost_base}/v2/models/{MODEL}/infer"
    answer = post_json(infer_url, body)  # loads the model; its first request is not measured
    labels = {output["name"]: output["data"] for output in answer["outputs"]}
    print(f"warm-up: {MODEL} answered {labels}")
    print(f"servers on core {args.server_core}, wrk on core {args.client_core}\n")

    targets = [
        Target("modelhost", infer_url, []),
        Target("starlette-hello", f"{hello_base}/hello", []),
    ]
    wrk = [
        "taskset", "-c", str(args.client_core), "wrk", f"-t{args.wrk_threads}",
        f"-c{args.connections}", "--latency", "-s", str(script),
    ]  # fmt: skip
    if args.warmup_seconds > 0:
        for target in targets:
            run_wrk(wrk, target.url, args.warmup_seconds)
    for round_number in range(1, args.rounds + 1):
        # Alternate which target goes first so neither always follows the other.
        order = targets if round_number % 2 else list(reversed(targets))
        for target in order:
            result = run_wrk(wrk, target.url, args.seconds)
            target.results.append(result)
            print(
                f"round {round_number} {target.name:<16} {result.requests_per_second:>9.0f} req/s"
                f"  p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms"
                f"  non-2xx {result.non_2xx}  socket errors {result.socket_errors}"
            )

    ok = report(args, targets)
    if args.profile is not None:
        profile(args, wrk, targets[0].url, modelhost.pid)
    for process, log in ((modelhost, "modelhost.log"), (hello, "hello.log")):
        if process.poll() is not None:
            print(f"{log}: server exited ({process.returncode}) during the run", file=sys.stderr)
            print((work / log).read_text(), file=sys.stderr)
            ok = False
    return 0 if ok else 1


def report(args: argparse.Namespace, targets: list[Target]) -> bool:
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
    ratio = medians["modelhost"] / medians["starlette-hello"]
    verdict = "meets" if ratio >= GOAL else "below"
    print(f"\nratio modelhost / ceiling = {ratio:.3f}  ({verdict} the goal of >= {GOAL:.2f})")

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
                    "ratio": ratio,
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
    command: list[str], log: Path, processes: list[subprocess.Popen[bytes]]
) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
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
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "wrk": (wrk_version.splitlines() or ["?"])[0],
        "packages": ", ".join(f"{name} {v}" for name, v in versions.items()),
    }


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
         "--duration", str(seconds), "--rate", "200", "--format", "raw", "--nonblocking",
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
    print(f"(under py-spy: {result.requests_per_second:.0f} req/s, not counted above)")
    if sampler.returncode != 0 or not args.profile.exists():
        print(f"py-spy failed: {errors.decode(errors='replace')}", file=sys.stderr)
        return
    print_hot_spots(args.profile)


def print_hot_spots(collapsed: Path, top: int = 10) -> None:
    """Self and inclusive samples per function from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_function(frame) for frame in stack.split(";")]
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if total == 0:
        print("py-spy recorded no samples")
        return
    print(f"\n{total} samples (non-idle threads); top {top} by own time:")
    for frame, count in own.most_common(top):
        print(f"  {100 * count / total:5.1f}%  {frame}")
    print(f"\ntop {top} modelhost functions by inclusive time:")
    shown = [(f, c) for f, c in inclusive.most_common() if "modelhost/" in f][:top]
    for frame, count in shown:
        print(f"  {100 * count / total:5.1f}%  {frame}")
    print(f"\nthe collapsed stacks are in {collapsed} (flamegraph.pl or speedscope read them)")


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
