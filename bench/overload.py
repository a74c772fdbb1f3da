"""Overload: offer twice modelhost's measured capacity for 20 s, open-loop, and watch what it
answers, how fast the admitted requests are, its memory, and how soon it is back to normal.

One ``modelhost serve`` pinned to the server core, serving a copy of a demo model (default
``minilm``: the transformers runtime, batching 5 ms, up to 64 a batch) whose model.yaml bounds
its queue (``max_queue_size``, default 128). This process, pinned to the client core, then:

1. **idle latency**: 50 requests one after another; their median is the idle latency;
2. **capacity**: closed-loop wrk (``-t1 -c64``, the sentences in turn) for 10 s: req/s at
   saturation;
3. **overload**: an open-loop generator (asyncio + aiohttp on uvloop) fires requests at
   ``--factor`` x capacity (default 2) for ``--burst-seconds`` (20), each at its scheduled time
   whatever the server answers, each with the header ``X-Request-Timeout-Ms`` (``--deadline-ms``,
   1000); the client gives up on a request after 10 x the deadline (counted as "other");
4. **recovery**: from the moment the last burst request is sent, a probe request every 100 ms
   for ``--probe-seconds`` (5); back to normal = from the first probe after which every probe
   answers 200 in under 2 x the idle latency.

The server's RSS is read before the burst, every 100 ms during it, and after the probes.
Latency is printed both from the moment each request was handed to the client (what the
deadline goal is judged on: the server's share) and from its scheduled send time (which adds the
generator's own lag, printed too: a generator sharing its core with other work falls behind).

Goals: no status outside 2xx/429/503/504; p99 latency of the admitted (2xx) requests within the
deadline; back to normal within 1 s.

    bench/overload.sh [--model minilm|iris-sklearn] [--factor 2] [--burst-seconds 20]
                      [--deadline-ms 1000] [--max-queue-size 128] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import harness
from batching import SENTENCES
from batching import infer_body as sentence_body
from harness import Target
from http_overhead import INFER_BODY

PROBE_INTERVAL = 0.1
CLIENT_TIMEOUT_FACTOR = 10
RECOVERY_GOAL = 1.0  # seconds
NORMAL_FACTOR = 2.0  # "normal": under this many times the idle latency
EXPECTED = ("2xx", "429", "503", "504")


@dataclass(slots=True)
class Outcome:
    scheduled: float  # time.perf_counter() when the request was due
    sent: float  # ... when it was handed to the client
    done: float  # ... when its answer (or error) came
    status: str  # "200", "503", ... or the client error's name
    retry_after: bool = False

    @property
    def latency(self) -> float:
        """From the scheduled send time: includes the generator's lag."""
        return self.done - self.scheduled

    @property
    def group(self) -> str:
        if self.status.isdigit() and self.status.startswith("2"):
            return "2xx"
        return self.status if self.status in EXPECTED else "other"


def main() -> int:
    args = parse_args()
    harness.require_tools("wrk", "taskset")
    harness.check_cores(args.server_core, args.client_core)
    # The generator (this process) and wrk on the client core, the server alone on its own.
    os.sched_setaffinity(0, {args.client_core})

    def body(work: Path, processes: list[subprocess.Popen[bytes]]) -> int:
        info = harness.machine_info(("aiohttp", "torch", "transformers"))
        harness.print_machine_info(info)
        return run(args, work, processes, info)

    return harness.guarded_main(body, "modelhost-bench-overload-")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("minilm", "iris-sklearn"), default="minilm")
    parser.add_argument("--factor", type=float, default=2.0, help="offered load / capacity (2)")
    parser.add_argument("--burst-seconds", type=float, default=20.0, help="overload time (20)")
    parser.add_argument("--deadline-ms", type=int, default=1000, help="X-Request-Timeout-Ms")
    parser.add_argument("--max-queue-size", type=int, default=128, help="model.yaml's (128)")
    parser.add_argument("--capacity-seconds", type=int, default=10, help="wrk run (10)")
    parser.add_argument("--capacity-connections", type=int, default=64, help="wrk -c (64)")
    parser.add_argument("--capacity", type=float, help="skip the wrk run: capacity in req/s")
    parser.add_argument("--probe-seconds", type=float, default=5.0, help="probes after (5)")
    parser.add_argument("--server-core", type=int, default=0, help="core of the server (0)")
    parser.add_argument("--client-core", type=int, default=1, help="core of the clients (1)")
    parser.add_argument(
        "--profile",
        type=Path,
        help="sample the server with py-spy during the burst into this file (collapsed stacks) "
        "and print the hot spots; py-spy shares the client core with the generator",
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    if args.capacity_connections > args.max_queue_size:
        parser.error("--capacity-connections above --max-queue-size would measure refusals")
    return args


def request_bodies(model: str) -> list[bytes]:
    if model == "minilm":
        return [sentence_body(sentence).encode() for sentence in SENTENCES]
    return [json.dumps(INFER_BODY, separators=(",", ":")).encode()]


def run(
    args: argparse.Namespace,
    work: Path,
    processes: list[subprocess.Popen[bytes]],
    info: dict[str, str],
) -> int:
    from modelhost.demo_models import build_demo_models

    demo = work / "demo-models"
    build_demo_models(demo, minilm=args.model == "minilm")

    def bound_queue(manifest: dict[str, Any]) -> None:
        manifest["max_queue_size"] = args.max_queue_size

    models = harness.edit_manifest(demo, work / "models", args.model, bound_queue)
    print(f"model {args.model}: {(models / args.model / '1' / 'model.yaml').read_text()}")
    process, base = harness.start_modelhost(
        "modelhost", models, work, processes, core=args.server_core
    )
    url = f"{base}/v2/models/{args.model}/infer"
    bodies = request_bodies(args.model)
    harness.wait_ready(process, f"{base}/v2/health/ready", work / "modelhost.log", timeout=180)
    harness.wait_ready(
        process, None, work / "modelhost.log", probe=url, body=bodies[0].decode(), timeout=180
    )

    # Warm-up under load (not measured), then capacity at saturation.
    lua_bodies = [body.decode() for body in bodies]
    script = harness.rotating_post_script(
        work / "bodies.lua", f"/v2/models/{args.model}/infer", lua_bodies
    )
    wrk = harness.wrk_command(args.client_core, 1, args.capacity_connections)
    target = Target("modelhost", url, process.pid, script)
    harness.run_wrk(wrk, script, url, 3)
    if args.capacity is None:
        result = harness.measure(wrk, target, args.capacity_seconds)
        if result.non_2xx or result.socket_errors:
            print(f"capacity run had {result.non_2xx} non-2xx, {result.socket_errors} errors")
        capacity = result.requests_per_second
        print(
            f"capacity: {capacity:.0f} req/s (wrk -c{args.capacity_connections}, "
            f"{args.capacity_seconds} s; p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, "
            f"server CPU {100 * result.server_cpu:.0f}%)"
        )
    else:
        capacity = args.capacity
        print(f"capacity: {capacity:.0f} req/s (given)")
    time.sleep(1.0)  # let the queue empty before measuring idle latency
    results = run_async(overload(args, url, bodies, capacity, process.pid))
    results["capacity_rps"] = capacity
    results["load_average_after"] = harness.load_average()
    ok = report(args, results)
    if process.poll() is not None:
        print(f"modelhost exited ({process.returncode})", file=sys.stderr)
        print((work / "modelhost.log").read_text(), file=sys.stderr)
        ok = False
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {"machine": info, "settings": vars(args) | {"json": str(args.json)}, **results},
                indent=2,
                default=str,
            )
        )
    return 0 if ok else 1


async def overload(
    args: argparse.Namespace, url: str, bodies: list[bytes], capacity: float, pid: int
) -> dict[str, Any]:
    import aiohttp

    loop = asyncio.get_running_loop()
    now = time.perf_counter  # uvloop's loop.time() ticks in whole milliseconds
    headers = {"Content-Type": "application/json", "X-Request-Timeout-Ms": str(args.deadline_ms)}
    client_timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_FACTOR * args.deadline_ms / 1000)
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:

        async def one(body: bytes, scheduled: float, into: list[Outcome]) -> None:
            sent = now()
            retry_after = False
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    status = str(response.status)
                    retry_after = "Retry-After" in response.headers
            except TimeoutError:
                status = "client timeout"
            except aiohttp.ClientError as exc:
                status = type(exc).__name__
            into.append(Outcome(scheduled, sent, now(), status, retry_after))

        # 1. idle latency
        idle: list[Outcome] = []
        for i in range(50):
            await one(bodies[i % len(bodies)], now(), idle)
        idle_latency = statistics.median(o.latency for o in idle)
        bad_idle = [o.status for o in idle if o.group != "2xx"]
        print(
            f"idle latency: median {1000 * idle_latency:.1f} ms over {len(idle)} sequential "
            f"requests (non-2xx: {bad_idle or 'none'}); 'normal' is under "
            f"{1000 * NORMAL_FACTOR * idle_latency:.1f} ms"
        )

        # 2. the burst, open loop
        rate = args.factor * capacity
        count = int(rate * args.burst_seconds)
        rss_before = harness.rss_bytes(pid)
        rss_samples: list[tuple[float, int]] = []
        stop_sampling = asyncio.Event()

        async def sample_rss() -> None:
            while not stop_sampling.is_set():
                rss_samples.append((now(), harness.rss_bytes(pid)))
                try:
                    await asyncio.wait_for(stop_sampling.wait(), PROBE_INTERVAL)
                except TimeoutError:
                    pass

        print(
            f"overload: {rate:.0f} req/s ({args.factor:g} x capacity) for {args.burst_seconds:g} "
            f"s = {count} requests, deadline {args.deadline_ms} ms; load {harness.load_average()}",
            flush=True,
        )
        metrics_before = await scrape_metrics(session, url.split("/v2/")[0], args.model)
        sampler = loop.create_task(sample_rss())
        spy = start_py_spy(args, pid)
        burst: list[Outcome] = []
        tasks: set[asyncio.Task[None]] = set()
        start = now() + 0.05
        cpu_start = harness.process_stats(pid)[0]
        for i in range(count):
            scheduled = start + i / rate
            delay = scheduled - now()
            if delay > 0:
                await asyncio.sleep(delay)
            task = loop.create_task(one(bodies[i % len(bodies)], scheduled, burst))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        burst_end = now()
        cpu_burst = harness.process_stats(pid)[0] - cpu_start

        # 3. probes every 100 ms from the end of the burst
        probes: list[Outcome] = []
        probe_count = int(args.probe_seconds / PROBE_INTERVAL)
        for k in range(probe_count):
            scheduled = burst_end + k * PROBE_INTERVAL
            delay = scheduled - now()
            if delay > 0:
                await asyncio.sleep(delay)
            task = loop.create_task(one(bodies[k % len(bodies)], scheduled, probes))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        while tasks:
            await asyncio.gather(*list(tasks))
        stop_sampling.set()
        await sampler
        rss_after = harness.rss_bytes(pid)
        metrics_after = await scrape_metrics(session, url.split("/v2/")[0], args.model)
        metrics = metrics_delta(metrics_before, metrics_after)
    if spy is not None:
        await asyncio.to_thread(finish_py_spy, spy, args.profile)

    results = analyse(
        args, idle_latency, start, burst_end, burst, probes, rss_before, rss_after, rss_samples
    )
    results["server_cpu_during_burst"] = cpu_burst / max(burst_end - start, 1e-9)
    results["server_metrics"] = metrics
    return results


async def scrape_metrics(session: Any, base: str, model: str) -> dict[str, float]:
    """Sums of modelhost's own histograms for the model (summed over labels): batch sizes, queue
    waits, and the server-side duration of the requests it answered 200."""
    async with session.get(f"{base}/metrics") as response:
        text = await response.text()
    found: dict[str, float] = {}
    for line in text.splitlines():
        name = line.split("{", 1)[0]
        if f'model="{model}"' not in line or not name.endswith(("_sum", "_count")):
            continue
        if name.startswith("modelhost_request_duration_seconds") and 'status="200"' not in line:
            continue
        found[name] = found.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return found


def metrics_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    delta = {name: after[name] - before.get(name, 0.0) for name in after}
    summary: dict[str, float] = {}
    for key, prefix in (
        ("batch size", "modelhost_batch_size"),
        ("queue wait ms", "modelhost_queue_wait_seconds"),
        ("server time of 200s ms", "modelhost_request_duration_seconds"),
    ):
        count = delta.get(f"{prefix}_count", 0.0)
        if count:
            mean = delta.get(f"{prefix}_sum", 0.0) / count
            summary[f"mean {key}"] = mean if key == "batch size" else 1000 * mean
            summary[f"{key} count"] = count
    return summary


def start_py_spy(args: argparse.Namespace, pid: int) -> subprocess.Popen[bytes] | None:
    if args.profile is None:
        return None
    py_spy = Path(sys.executable).parent / "py-spy"
    if not py_spy.exists():
        print(f"--profile: {py_spy} not found (pip install py-spy)", file=sys.stderr)
        return None
    return subprocess.Popen(
        ["taskset", "-c", str(args.client_core), str(py_spy), "record", "--pid", str(pid),
         "--duration", str(int(args.burst_seconds)), "--rate", "100", "--gil", "--threads",
         "--nonblocking", "--format", "raw", "--output", str(args.profile)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip


def finish_py_spy(spy: subprocess.Popen[bytes], output: Path) -> None:
    try:
        _, errors = spy.communicate(timeout=60)
    finally:
        harness.stop(spy)
    if spy.returncode != 0 or not output.exists():
        print(f"py-spy failed: {errors.decode(errors='replace')}", file=sys.stderr)
        return
    harness.print_hot_spots(output, top=15)


def analyse(
    args: argparse.Namespace,
    idle_latency: float,
    start: float,
    burst_end: float,
    burst: list[Outcome],
    probes: list[Outcome],
    rss_before: int,
    rss_after: int,
    rss_samples: list[tuple[float, int]],
) -> dict[str, Any]:
    groups = Counter(outcome.group for outcome in burst)
    statuses = Counter(outcome.status for outcome in burst)
    admitted = sorted(o.done - o.sent for o in burst if o.group == "2xx")
    admitted_scheduled = sorted(o.latency for o in burst if o.group == "2xx")
    refused = sorted(o.done - o.sent for o in burst if o.group in ("429", "503"))
    lag = sorted(o.sent - o.scheduled for o in burst)
    offered_seconds = burst_end - start
    answered_2xx_by = max((o.done for o in burst if o.group == "2xx"), default=burst_end)

    threshold = NORMAL_FACTOR * idle_latency
    probes.sort(key=lambda o: o.scheduled)

    def normal(outcome: Outcome) -> bool:
        return outcome.group == "2xx" and outcome.done - outcome.sent < threshold

    stable_from = None
    for index in range(len(probes) - 1, -1, -1):
        if not normal(probes[index]):
            break
        stable_from = index
    first_normal = next((i for i, o in enumerate(probes) if normal(o)), None)

    def seconds_after(index: int | None) -> float | None:
        return None if index is None else probes[index].scheduled - burst_end

    peak = max((rss for _, rss in rss_samples), default=rss_before)
    return {
        "idle_latency_ms": 1000 * idle_latency,
        "offered_rps": len(burst) / offered_seconds if offered_seconds > 0 else 0.0,
        "requests": len(burst),
        "groups": dict(groups),
        "statuses": dict(statuses),
        "retry_after_on_503": sum(1 for o in burst if o.status == "503" and o.retry_after),
        "goodput_rps": groups.get("2xx", 0) / max(answered_2xx_by - start, 1e-9),
        "admitted_ms": percentiles(admitted),
        "admitted_from_schedule_ms": percentiles(admitted_scheduled),
        "refused_ms": percentiles(refused),
        "generator_lag_ms": percentiles(lag),
        "probes": [
            {
                "after_s": round(o.scheduled - burst_end, 3),
                "status": o.status,
                "ms": round(1000 * (o.done - o.sent), 1),
            }
            for o in probes
        ],
        "first_normal_probe_s": seconds_after(first_normal),
        "normal_from_s": seconds_after(stable_from),
        "normal_threshold_ms": 1000 * threshold,
        "rss_before": rss_before,
        "rss_peak": peak,
        "rss_after": rss_after,
    }


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}

    def at(q: float) -> float:
        return 1000 * values[min(len(values) - 1, int(q * len(values)))]

    return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": 1000 * values[-1]}


def report(args: argparse.Namespace, r: dict[str, Any]) -> bool:
    mib = 1 << 20
    print()
    lag = r["generator_lag_ms"]
    print(
        f"offered {r['offered_rps']:.0f} req/s for {args.burst_seconds:g} s "
        f"({r['requests']} requests; capacity {r['capacity_rps']:.0f} req/s); generator lag "
        f"p50 {lag.get('p50', 0):.1f} ms, p99 {lag.get('p99', 0):.1f} ms, "
        f"max {lag.get('max', 0):.1f} ms"
    )
    rows = [[group, str(r["groups"].get(group, 0))] for group in (*EXPECTED, "other")]
    harness.print_table(["status", "count"], rows)
    print(f"all statuses: {r['statuses']}; 503s with Retry-After: {r['retry_after_on_503']}")
    print(
        f"goodput (2xx per second of the burst): {r['goodput_rps']:.0f} req/s = "
        f"{r['goodput_rps'] / r['capacity_rps']:.2f} x capacity; server CPU during the burst "
        f"{100 * r['server_cpu_during_burst']:.0f}% of its core"
    )
    metrics = r["server_metrics"]
    if metrics:
        print(
            "modelhost's /metrics over the burst and the probes: "
            + ", ".join(f"{key} {value:.1f}" for key, value in metrics.items())
        )
    latency_rows = []
    for label, key in (
        ("admitted (2xx), from send", "admitted_ms"),
        ("admitted (2xx), from schedule", "admitted_from_schedule_ms"),
        ("refused (429/503), from send", "refused_ms"),
    ):
        stats = r[key]
        if stats:
            latency_rows.append([label, *(f"{stats[q]:.1f}" for q in ("p50", "p90", "p99", "max"))])
    if latency_rows:
        harness.print_table(["latency ms", "p50", "p90", "p99", "max"], latency_rows)
    print(
        f"server RSS: before {r['rss_before'] / mib:.0f} MiB, peak {r['rss_peak'] / mib:.0f} MiB, "
        f"after {r['rss_after'] / mib:.0f} MiB"
    )
    timeline = ", ".join(
        f"{p['after_s']:.1f}s:{p['status']}/{p['ms']:.0f}ms" for p in r["probes"][:15]
    )
    print(f"probes after the burst (sent at: status/latency): {timeline}, ...")
    print(
        f"back to normal (every probe 200 and under {r['normal_threshold_ms']:.1f} ms): "
        f"first normal probe at {fmt_seconds(r['first_normal_probe_s'])}, all normal from "
        f"{fmt_seconds(r['normal_from_s'])} after the burst"
    )
    print(f"load average after: {r['load_average_after']}")

    other = r["groups"].get("other", 0)
    p99 = r["admitted_ms"].get("p99", float("inf"))
    recovered = r["normal_from_s"]
    checks = [
        (f"no status outside 2xx/429/503/504 (other: {other})", other == 0),
        (f"p99 of admitted {p99:.0f} ms within the {args.deadline_ms} ms deadline",
         p99 <= args.deadline_ms),
        (f"back to normal within {RECOVERY_GOAL:g} s ({fmt_seconds(recovered)})",
         recovered is not None and recovered <= RECOVERY_GOAL),
    ]  # fmt: skip
    print()
    for text, passed in checks:
        print(f"{'meets' if passed else 'MISSES'}: {text}")
    return all(passed for _, passed in checks)


def run_async(coroutine: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """On uvloop (as the servers run), so the generator keeps its schedule at high rates."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def fmt_seconds(value: float | None) -> str:
    return "never (within the probes)" if value is None else f"{value:.1f} s"


if __name__ == "__main__":
    sys.exit(main())
