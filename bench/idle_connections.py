"""Idle connections: 25,000 attempted against one server, which must stay answerable.

One ``modelhost serve`` (empty repository, default settings: MODELHOST_MAX_CONNECTIONS 10,000
and its descriptor limit raised to the hard one) pinned to the server core. From the client
core, ``--clients`` processes (default 5) each open their share of ``--connections`` (default
25,000) plain TCP connections that never send a byte, as fast as they can, each process from
its own loopback address (127.0.0.2, 127.0.0.3, ...: one address has ~28,000 ephemeral ports),
and each with its own descriptor limit raised (one process may not hold them all). Meanwhile a
separate client sends ``GET /v2/health/ready`` on a fresh connection every 20 ms, as a probe
does, and the server's open descriptors (``/proc/<pid>/fd``) are counted every 100 ms.

Printed: the probe's answers (200, fast 503s, failures) and latency percentiles while the
connections are being opened and after all are open (``--hold-seconds``, default 10); the
server's descriptors at their peak and at the end; how many connections it kept; its RSS.
Goal: descriptors bounded (below its limit), probes answered within 100 ms at p99.

    .venv/bin/python bench/idle_connections.py [--connections 25000] [--clients 5]
        [--hold-seconds 10] [--server-core 0] [--client-core 1]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import harness

PROBE_EVERY = 0.02
GOAL_P99 = 0.100


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=25_000)
    parser.add_argument("--clients", type=int, default=5)
    parser.add_argument("--hold-seconds", type=float, default=10.0)
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--client-core", type=int, default=1)
    args = parser.parse_args()
    harness.check_cores(args.server_core, args.client_core)
    harness.require_tools("taskset")
    os.sched_setaffinity(0, {args.client_core})
    return harness.guarded_main(lambda work, procs: run(args, work, procs), "mh-idle-")


def run(args: argparse.Namespace, work: Path, processes: list[subprocess.Popen[bytes]]) -> int:
    models = work / "models"
    models.mkdir()
    server, url = harness.start_modelhost("server", models, work, processes, core=args.server_core)
    harness.wait_ready(server, f"{url}/v2/health/ready", work / "server.log")
    port = int(url.rsplit(":", 1)[1])
    limit = _descriptor_limit(server.pid)

    counts: list[int] = []
    sampling = threading.Event()
    sampler = threading.Thread(target=_sample_descriptors, args=(server.pid, counts, sampling))
    prober = _Prober(port)
    sampler.start()
    prober.start()
    time.sleep(1.0)
    idle_fds = len(os.listdir(f"/proc/{server.pid}/fd"))

    context = multiprocessing.get_context("spawn")
    share = args.connections // args.clients
    results = context.Queue()
    release = context.Event()
    clients = [
        context.Process(target=_open_idle, args=(f"127.0.0.{2 + i}", port, share, results, release))
        for i in range(args.clients)
    ]
    opening_started = time.monotonic()
    for client in clients:
        client.start()
    print(f"opening {args.connections:,} idle connections from {args.clients} processes...")
    opened = [results.get(timeout=300) for _ in clients]
    opening_ended = time.monotonic()
    print(f"... done in {opening_ended - opening_started:.1f} s; holding {args.hold_seconds:g} s")
    time.sleep(args.hold_seconds)
    holding_ended = time.monotonic()
    kept = len(os.listdir(f"/proc/{server.pid}/fd"))
    rss = harness.rss_bytes(server.pid)
    release.set()
    for client in clients:
        client.join(60)
    prober.stop()
    sampling.set()
    sampler.join()

    attempted = sum(o["attempted"] for o in opened)
    connected = sum(o["connected"] for o in opened)
    errors = sum(o["errors"] for o in opened)
    print(f"load average: {harness.load_average()}")
    print(
        f"connections attempted {attempted:,} from {args.clients} processes "
        f"({connected:,} connected, {errors:,} connect errors) in "
        f"{opening_ended - opening_started:.1f} s; server descriptor limit {limit:,}"
    )
    harness.print_table(
        ["server", "value"],
        [
            ["descriptors before", f"{idle_fds:,}"],
            ["descriptors at peak", f"{max(counts):,}"],
            ["descriptors after holding", f"{kept:,}"],
            ["RSS after holding", f"{rss / 2**20:.0f} MiB"],
        ],
    )
    print()
    rows = []
    for phase, start, end in (
        ("while opening", opening_started, opening_ended),
        (f"holding {args.hold_seconds:g} s", opening_ended, holding_ended),
    ):
        rows.append(_probe_row(phase, [p for p in prober.results if start <= p[0] < end]))
    harness.print_table(
        ["health probes", "sent", "200", "503", "failed", "p50 ms", "p99 ms", "max ms"], rows
    )
    worst = max(_p99([p for p in prober.results if p[0] >= opening_started]), 0.0)
    bounded = max(counts) < limit
    print(
        f"\ndescriptors {'bounded' if bounded else 'NOT bounded'} (peak {max(counts):,}, "
        f"limit {limit:,}); probe p99 {worst * 1000:.1f} ms: "
        f"{'meets' if worst <= GOAL_P99 else 'MISSES'} the goal of <= {GOAL_P99 * 1000:.0f} ms"
    )
    return 0


def _open_idle(address: str, port: int, count: int, results: Any, release: Any) -> None:
    """A client process: ``count`` connections from ``address`` that never send a byte."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    held: list[socket.socket] = []
    errors = 0
    for _ in range(count):
        sock = socket.socket()
        try:
            sock.bind((address, 0))
            sock.connect(("127.0.0.1", port))
            held.append(sock)
        except OSError:
            errors += 1
            sock.close()
    results.put({"attempted": count, "connected": len(held), "errors": errors})
    release.wait(600)
    for sock in held:
        sock.close()


class _Prober(threading.Thread):
    """GET /v2/health/ready on a new connection every PROBE_EVERY seconds."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self._port = port
        self._stopping = threading.Event()
        self.results: list[tuple[float, int, float]] = []  # (sent at, status or 0, seconds)

    def run(self) -> None:
        request = b"GET /v2/health/ready HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n"
        while not self._stopping.is_set():
            sent = time.monotonic()
            status = 0
            try:
                with socket.create_connection(("127.0.0.1", self._port), timeout=5) as sock:
                    sock.sendall(request)
                    answer = b""
                    while chunk := sock.recv(4096):
                        answer += chunk
                status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0
            except OSError:
                status = 0
            self.results.append((sent, status, time.monotonic() - sent))
            self._stopping.wait(max(0.0, PROBE_EVERY - (time.monotonic() - sent)))

    def stop(self) -> None:
        self._stopping.set()
        self.join(10)


def _sample_descriptors(pid: int, counts: list[int], done: threading.Event) -> None:
    while not done.is_set():
        try:
            counts.append(len(os.listdir(f"/proc/{pid}/fd")))
        except OSError:
            pass
        done.wait(0.1)


def _descriptor_limit(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise RuntimeError("no descriptor limit")


def _p99(probes: list[tuple[float, int, float]]) -> float:
    answered = sorted(p[2] for p in probes if p[1] in (200, 503))
    if len(answered) < 2:
        return answered[0] if answered else float("inf")
    return statistics.quantiles(answered, n=100, method="inclusive")[98]


def _probe_row(phase: str, probes: list[tuple[float, int, float]]) -> list[str]:
    answered = sorted(p[2] for p in probes if p[1] in (200, 503))
    p50 = statistics.median(answered) if answered else float("nan")
    return [
        phase,
        str(len(probes)),
        str(sum(1 for p in probes if p[1] == 200)),
        str(sum(1 for p in probes if p[1] == 503)),
        str(sum(1 for p in probes if p[1] not in (200, 503))),
        f"{p50 * 1000:.1f}",
        f"{_p99(probes) * 1000:.1f}",
        f"{(answered[-1] if answered else float('nan')) * 1000:.1f}",
    ]


if __name__ == "__main__":
    sys.exit(main())
