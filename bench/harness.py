"""What the side-by-side benchmarks share: starting servers, wrk rounds, /proc readings, reports.

Every benchmark in bench/ runs the servers it compares at the same time, each pinned to the
server core (``taskset -c 0``), and loads them in turn from the client core, rotating the order
over rounds so machine noise hits them alike. The pieces here:

* processes: :func:`start` / :func:`stop` (and :func:`guarded_main`, which stops them all on
  Ctrl-C or SIGTERM), :func:`start_modelhost`, :func:`start_mlserver` (MLServer 1.7.1 from its
  own virtualenv, ``bench/.venv-mlserver``), :func:`wait_ready`;
* load: :func:`run_wrk` / :func:`parse_wrk`, :func:`run_rounds` (rounds over :class:`Target`\\ s,
  with the server's CPU time per round from /proc, its main thread's apart);
* the machine: :func:`machine_info`, :func:`load_average`, :func:`process_stats`,
  :func:`main_thread_cpu`, :func:`rss_bytes`; :func:`use_commit` to benchmark another revision;
* reports: :func:`print_table`, and :func:`profile` (py-spy hot spots of a server under load).
"""

from __future__ import annotations

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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

BENCH_DIR = Path(__file__).resolve().parent
MLSERVER_VENV = BENCH_DIR / ".venv-mlserver"
# A CPU-bound server on its own core under wrk uses it all; less means something else took it.
CPU_BOUND = 0.90

POST_LUA = """\
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
{headers}"""

# Bodies taken in turn, one per request (each connection starts at a different one).
ROTATING_POST_LUA = """\
local bodies = {{{bodies}}}
local counter = 0
local path = {path}
local headers = {{["Content-Type"] = "application/json"}}
function init(args)
  counter = math.random(#bodies) - 1
end
request = function()
  counter = counter + 1
  return wrk.format("POST", path, headers, bodies[(counter % #bodies) + 1])
end
"""

# Where a server's test database and usage journal go, and what it logs: the benches measure
# serving, not API keys (auth off) nor log lines.
MODELHOST_BENCH_ENV = {"MODELHOST_AUTH": "disabled", "MODELHOST_LOG_LEVEL": "warning"}


# --- processes ---------------------------------------------------------------------------------


def guarded_main(body: Callable[[Path, list[subprocess.Popen[bytes]]], int], prefix: str) -> int:
    """Run ``body(work_dir, processes)``; whatever happens, stop every process it started.

    SIGTERM and SIGHUP unwind like Ctrl-C does, so the servers never outlive the bench.
    """

    def _interrupt(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        try:
            return body(Path(tmp), processes)
        except KeyboardInterrupt:
            print("\ninterrupted", file=sys.stderr)
            return 130
        finally:
            for process in processes:
                stop(process)


def check_cores(*cores: int) -> None:
    allowed = os.sched_getaffinity(0)
    for core in cores:
        if core not in allowed:
            sys.exit(f"core {core} is not available here (cores: {sorted(allowed)})")


def require_tools(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (the bench/*.sh wrappers install it with apt-get)")


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


def modelhost_executable() -> Path:
    exe = Path(sys.executable).parent / "modelhost"
    if not exe.exists():
        sys.exit(f"{exe} not found: run with the project's virtualenv python")
    return exe


def start_modelhost(
    name: str,
    models: Path,
    work: Path,
    processes: list[subprocess.Popen[bytes]],
    *,
    core: int,
    env: dict[str, str] | None = None,
    lean: bool = False,
) -> tuple[subprocess.Popen[bytes], str]:
    """``modelhost serve`` on ``models``, pinned to ``core``; returns the process and base URL.

    Auth off, log level warning, its own SQLite database and usage journal under ``work``.
    ``lean``: the same application and settings behind ``bench/lean_asgi.py``'s minimal front
    end instead of modelhost's own (what a leaner front end could save at most).
    """
    port = free_port()
    if lean:
        command = [sys.executable, str(BENCH_DIR / "lean_asgi.py"), str(port)]
    else:
        command = [str(modelhost_executable()), "serve", "--model-repository", str(models),
                   "--port", str(port), "--log-level", "warning"]  # fmt: skip
    process = start(
        ["taskset", "-c", str(core), *command],
        work / f"{name}.log",
        processes,
        env={
            **MODELHOST_BENCH_ENV,
            "MODELHOST_MODEL_REPOSITORY": str(models),
            "MODELHOST_DATABASE_URL": modelhost_database(work, name),
            "MODELHOST_USAGE_JOURNAL": str(work / f"{name}-usage.journal"),
            **(env or {}),
        },
    )  # fmt: skip
    return process, f"http://127.0.0.1:{port}"


def start_uvicorn(
    app: str,
    name: str,
    work: Path,
    processes: list[subprocess.Popen[bytes]],
    *,
    core: int,
    env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """``app`` (``module:attribute`` in ``bench/``) under uvicorn with the settings ``modelhost
    serve`` gives it (uvloop, httptools, no access log, no proxy headers, no server header),
    pinned to ``core``; returns the process and base URL. A baseline run with uvicorn's defaults
    would pay for work modelhost turns off (X-Forwarded-For checks on every loopback request)."""
    port = free_port()
    process = start(
        ["taskset", "-c", str(core), sys.executable, "-m", "uvicorn", "--app-dir",
         str(BENCH_DIR), app, "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop",
         "--http", "httptools", "--no-access-log", "--no-proxy-headers", "--no-server-header",
         "--log-level", "warning"],
        work / f"{name}.log",
        processes,
        env=env,
    )  # fmt: skip
    return process, f"http://127.0.0.1:{port}"


def modelhost_database(work: Path, name: str) -> str:
    """The SQLite database :func:`start_modelhost` gives the server ``name``."""
    return f"sqlite:///{work / name}.db"


def create_api_key(work: Path, name: str) -> str:
    """A real API key (a user of role ``user``) in the database of the server ``name``, made
    with ``modelhost users create`` before the server starts: benches that keep auth on."""
    done = subprocess.run(
        [str(modelhost_executable()), "users", "create", f"bench-{name}", "--role", "user"],
        env={**os.environ, "MODELHOST_DATABASE_URL": modelhost_database(work, name)},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def start_mlserver(
    name: str,
    repository: Path,
    work: Path,
    processes: list[subprocess.Popen[bytes]],
    *,
    core: int,
    grpc_port: int | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """``mlserver start repository`` (MLServer's own venv), pinned to ``core``.

    ``repository`` holds a settings.json (``parallel_workers: 0``) and the models' folders;
    the ports are free ones picked here, or ``grpc_port`` for its gRPC server (MLSERVER_*
    variables override settings.json).
    """
    exe = MLSERVER_VENV / "bin" / "mlserver"
    if not exe.exists():
        sys.exit(f"{exe} not found: the bench/*.sh wrappers create {MLSERVER_VENV}")
    port = free_port()
    env = {
        "MLSERVER_HTTP_PORT": str(port),
        "MLSERVER_GRPC_PORT": str(grpc_port if grpc_port is not None else free_port()),
        "MLSERVER_METRICS_PORT": str(free_port()),
        "MLSERVER_HOST": "127.0.0.1",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        # Don't let the project's venv leak into MLServer's interpreter.
        "PYTHONPATH": "",
        "VIRTUAL_ENV": str(MLSERVER_VENV),
        "PATH": f"{MLSERVER_VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    process = start(
        ["taskset", "-c", str(core), str(exe), "start", str(repository)],
        work / f"{name}.log",
        processes,
        env=env,
    )
    return process, f"http://127.0.0.1:{port}"


def mlserver_versions() -> str:
    python = MLSERVER_VENV / "bin" / "python"
    if not python.exists():
        return "not installed"
    code = (
        "from importlib.metadata import version as v\n"
        "names = ['mlserver', 'mlserver-sklearn', 'uvicorn', 'uvloop', 'starlette', 'fastapi',"
        " 'torch', 'transformers']\n"
        "out = []\n"
        "for n in names:\n"
        "    try:\n"
        "        out.append(f'{n} {v(n)}')\n"
        "    except Exception:\n"
        "        pass\n"
        "print(', '.join(out))\n"
    )
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    return done.stdout.strip() or done.stderr.strip()


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
    headers: dict[str, str] | None = None,
) -> None:
    """Until GET ``url`` answers 200 (or POST ``body`` to ``probe`` does)."""
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
                post_json(probe, body, headers)
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server not ready after {timeout:.0f} s:\n{log.read_text()}")


def post_json(url: str, body: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    request = urllib.request.Request(
        url,
        data=body.encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        if response.status != 200:
            raise RuntimeError(f"{url} answered {response.status}")
        answer: dict[str, Any] = json.loads(response.read())
        return answer


def edit_manifest(
    repository: Path, copy: Path, model: str, change: Callable[[dict[str, Any]], None]
) -> Path:
    """A copy of a model repository with ``change`` applied to ``model``'s version-1 model.yaml."""
    shutil.copytree(repository, copy)
    path = copy / model / "1" / "model.yaml"
    manifest = yaml.safe_load(path.read_text())
    change(manifest)
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return copy


# --- /proc ---------------------------------------------------------------------------------------


def process_stats(pid: int) -> tuple[float, float, int]:
    """CPU seconds (user + system), system seconds and context switches of ``pid``.

    CPU time comes from the process's own stat, which keeps the time of threads that have
    ended (a thread pool lets idle threads go: summing the live threads would lose theirs);
    context switches are summed over the live threads.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    cpu, system, switches = 0.0, 0.0, 0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
        system = int(fields[12]) / ticks
    except (OSError, IndexError, ValueError):
        pass
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            for line in (task / "status").read_text().splitlines():
                if "ctxt_switches:" in line:
                    switches += int(line.split()[1])
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended meanwhile
    return cpu, system, switches


def main_thread_cpu(pid: int) -> float:
    """CPU seconds (user + system) of ``pid``'s main thread alone: the event loop's, in every
    server measured here (Python's asyncio servers run their loop on the main thread; model
    calls, usage writers and the like run on others)."""
    try:
        fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def wait_until_idle(
    pids: Iterable[int], *, window_s: float = 0.25, busy: float = 0.05, timeout_s: float = 60.0
) -> float:
    """Wait until none of the processes ``pids`` uses ``busy`` of a core or more over a
    ``window_s`` window; returns the seconds waited.

    wrk stops at its deadline with requests still in the servers: a server that serves one at
    a time (64 queued, 17 ms each for torch MiniLM unbatched) works on for a second after, on
    the core the next target is measured on, and takes a tenth of that target's round.
    """
    watched = list(pids)
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        before = [process_stats(pid)[0] for pid in watched]
        time.sleep(window_s)
        after = [process_stats(pid)[0] for pid in watched]
        if all((b - a) / window_s < busy for a, b in zip(before, after, strict=True)):
            break
    return time.monotonic() - started


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (VmRSS), 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def load_average() -> str:
    """The 1, 5 and 15 minute load averages and the cores, e.g. ``2.10 1.80 1.50 (2 cores)``."""
    try:
        one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        return "unknown"
    return f"{one} {five} {fifteen} ({os.cpu_count()} cores)"


# --- wrk -----------------------------------------------------------------------------------------


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
    """One server endpoint under test: the URL wrk loads, with the lua script that makes its
    requests, and what the rounds measured of it."""

    name: str
    url: str
    pid: int
    script: Path
    results: list[WrkResult] = field(default_factory=list)
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    system_seconds: float = 0.0
    main_thread_seconds: float = 0.0  # of cpu_seconds, the main thread's (the event loop's)
    context_switches: int = 0
    cpu_bound: bool = True  # False: the server waits by design (a batching timer), don't warn
    note: str = ""

    @property
    def median_rps(self) -> float:
        return statistics.median(r.requests_per_second for r in self.results)

    @property
    def median_p50(self) -> float:
        return statistics.median(r.p50_ms for r in self.results)

    @property
    def median_p99(self) -> float:
        return statistics.median(r.p99_ms for r in self.results)

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.results)

    @property
    def cpu_us_per_request(self) -> float:
        return 1e6 * self.cpu_seconds / max(self.requests, 1)

    @property
    def main_thread_us_per_request(self) -> float:
        return 1e6 * self.main_thread_seconds / max(self.requests, 1)

    @property
    def failed(self) -> bool:
        return any(r.non_2xx or r.socket_errors or r.requests == 0 for r in self.results)


def wrk_command(core: int, threads: int, connections: int, timeout_s: int = 2) -> list[str]:
    """wrk pinned to ``core``; a response slower than ``timeout_s`` counts as a socket error."""
    return [
        "taskset", "-c", str(core), "wrk", f"-t{threads}", f"-c{connections}", "--latency",
        "--timeout", f"{timeout_s}s",
    ]  # fmt: skip


def post_script(path: Path, body: str, headers: dict[str, str] | None = None) -> Path:
    """A wrk script POSTing ``body`` (JSON text) on every request, with ``headers``."""
    lines = "".join(
        f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}\n" for k, v in (headers or {}).items()
    )
    path.write_text(POST_LUA.format(body=json.dumps(body), headers=lines))
    return path


def rotating_post_script(path: Path, url_path: str, bodies: Iterable[str]) -> Path:
    """A wrk script POSTing ``bodies`` (JSON texts) to ``url_path`` in turn, one per request."""
    quoted = ",\n  ".join(json.dumps(body) for body in bodies)
    path.write_text(ROTATING_POST_LUA.format(bodies=quoted, path=json.dumps(url_path)))
    return path


def run_wrk(wrk: list[str], script: Path, url: str, seconds: int) -> WrkResult:
    command = [*wrk, "-s", str(script), f"-d{seconds}s", url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
    return parse_wrk(done.stdout)


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


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


def measure(wrk: list[str], target: Target, seconds: int) -> WrkResult:
    """One wrk run against ``target``, with the server's CPU time over it added to the target."""
    return measured(target, lambda: run_wrk(wrk, target.script, target.url, seconds))


def measured(target: Target, load: Callable[[], WrkResult]) -> WrkResult:
    """``load()`` (one run of a load generator against ``target``), with the server's CPU time
    over it added to the target."""
    cpu_before, system_before, switches_before = process_stats(target.pid)
    main_before = main_thread_cpu(target.pid)
    started = time.monotonic()
    result = load()
    elapsed = time.monotonic() - started
    cpu_after, system_after, switches_after = process_stats(target.pid)
    target.main_thread_seconds += main_thread_cpu(target.pid) - main_before
    result.server_cpu = (cpu_after - cpu_before) / elapsed
    target.cpu_seconds += cpu_after - cpu_before
    target.system_seconds += system_after - system_before
    target.wall_seconds += elapsed
    target.context_switches += switches_after - switches_before
    target.results.append(result)
    return result


def run_rounds(
    wrk: list[str],
    targets: list[Target],
    *,
    rounds: int,
    seconds: int,
    warmup_seconds: int,
    after_round: Callable[[], None] | None = None,
) -> list[str]:
    """Load every target ``rounds`` times, rotating the order each round, and call
    ``after_round`` after each (an in-process measurement taken beside the rounds rather than
    once before or after them, so that it sees the same moments of a drifting host); returns
    the load averages read after each round."""
    pids = {target.pid for target in targets}
    if warmup_seconds > 0:
        for target in targets:
            run_wrk(wrk, target.script, target.url, warmup_seconds)
    width = max(len(target.name) for target in targets)
    loads = []
    for round_number in range(1, rounds + 1):
        # Rotate which target goes first so none always follows the same one.
        shift = (round_number - 1) % len(targets)
        for target in targets[shift:] + targets[:shift]:
            # Not in the shadow of the last target's backlog (nor of a warm-up's).
            waited = wait_until_idle(pids)
            result = measure(wrk, target, seconds)
            print(
                f"round {round_number} {target.name:<{width}} "
                f"{result.requests_per_second:>9.0f} req/s"
                f"  p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms"
                f"  server CPU {100 * result.server_cpu:3.0f}%"
                f"  non-2xx {result.non_2xx}  socket errors {result.socket_errors}"
                f"  (after {waited:.2f} s for the servers to go idle)",
                flush=True,
            )
        if after_round is not None:
            wait_until_idle(pids)
            after_round()
        loads.append(load_average())
        print(f"  load average after round {round_number}: {loads[-1]}", flush=True)
    return loads


def report_rounds(targets: list[Target], rounds: int, server_core: int, client_core: int) -> None:
    """The table of req/s per round, medians, latency, CPU per request; warns about starved
    rounds."""
    header = ["target", *(f"round {i}" for i in range(1, rounds + 1))]
    header += ["median req/s", "p50 ms", "p99 ms", "µs CPU / req", "non-2xx"]
    rows = [
        [
            target.name,
            *(f"{r.requests_per_second:.0f}" for r in target.results),
            f"{target.median_rps:.0f}",
            f"{target.median_p50:.2f}",
            f"{target.median_p99:.2f}",
            f"{target.cpu_us_per_request:.0f}",
            str(sum(r.non_2xx + r.socket_errors for r in target.results)),
        ]
        for target in targets
    ]
    print()
    print_table(header, rows)
    print("(p50/p99: median over the rounds; non-2xx includes socket errors)")
    for target in targets:
        print(
            f"{target.name}: server CPU {100 * target.cpu_seconds / target.wall_seconds:.0f}% "
            f"of its core ({100 * target.system_seconds / max(target.cpu_seconds, 1e-9):.0f}% "
            f"of it in the kernel), {target.cpu_us_per_request:.0f} us CPU "
            f"({target.main_thread_us_per_request:.0f} of it on the main thread) and "
            f"{target.context_switches / max(target.requests, 1):.1f} context switches per "
            "request"
        )
    starved = [
        f"{target.name} round {number}"
        for target in targets
        for number, result in enumerate(target.results, 1)
        if result.server_cpu < CPU_BOUND and target.cpu_bound
    ]
    if starved:
        print(
            f"WARNING: a server used under {100 * CPU_BOUND:.0f}% of its core in {starved}: "
            f"other processes took core {server_core}, or the load generator's core "
            f"{client_core} so that it could not keep the server busy. Those req/s (and their "
            "ratios) are unreliable; the CPU-time ratios are less affected. Rerun on a quiet "
            "machine."
        )


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    line = "| " + " | ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    line += " |"
    print(line.format(*header))
    rules = ["-" * (w + 2) if i == 0 else "-" * (w + 1) + ":" for i, w in enumerate(widths)]
    print("|" + "|".join(rules) + "|")
    for row in rows:
        print(line.format(*row))


def verdict(value: float, goal: float) -> str:
    return f"meets the goal of >= {goal:g}" if value >= goal else f"MISSES the goal of >= {goal:g}"


# --- machine info --------------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's model name, from /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def machine_info(packages: Iterable[str] = ()) -> dict[str, str]:
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
    versions = {}
    names = ("uvicorn", "starlette", "uvloop", "httptools", "scikit-learn", "numpy", *packages)
    for package in names:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "?"
    return {
        "source": source_revision(),
        "nproc": str(os.cpu_count()),
        "cpu": cpu_model(),
        "load": load_average(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "wrk": (wrk_version.splitlines() or ["?"])[0],
        "packages": ", ".join(f"{name} {v}" for name, v in versions.items()),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def print_machine_info(info: dict[str, str]) -> None:
    print("machine:")
    for key, value in info.items():
        print(f"  {key:<9} {value}")


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


# --- profile -------------------------------------------------------------------------------------


def profile(output: Path, seconds: int, client_core: int, wrk: list[str], target: Target) -> None:
    """One more (uncounted) wrk run of ``target`` under py-spy; prints the hot spots."""
    py_spy = Path(sys.executable).parent / "py-spy"
    if not py_spy.exists():
        print(f"\n--profile: {py_spy} not found (pip install py-spy)", file=sys.stderr)
        return
    print(f"\nprofiling {target.name} (pid {target.pid}) with py-spy for {seconds} s under the "
          "same load...")  # fmt: skip
    sampler = subprocess.Popen(
        ["taskset", "-c", str(client_core), str(py_spy), "record", "--pid", str(target.pid),
         "--duration", str(seconds), "--rate", "200", "--gil", "--threads", "--nonblocking",
         "--format", "raw", "--output", str(output)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        time.sleep(0.5)
        result = run_wrk(wrk, target.script, target.url, seconds)
        _, errors = sampler.communicate(timeout=seconds + 30)
    finally:
        stop(sampler)
    print(
        f"(under py-spy: {result.requests_per_second:.0f} req/s, non-2xx {result.non_2xx}; "
        "not counted above)"
    )
    if sampler.returncode != 0 or not output.exists():
        print(f"py-spy failed: {errors.decode(errors='replace')}", file=sys.stderr)
        return
    print_hot_spots(output)


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
