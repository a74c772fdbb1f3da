"""What modelhost's own request work costs, without HTTP: P1's batched iris request driven
straight into the ASGI application, in-process, by many concurrent callers.

P1 (``bench/overhead_vs_mlserver.py``) measures the whole server under wrk on a shared machine,
where a change of a few per cent is below the noise. This bench takes the HTTP server, the
kernel and the load generator out: the same application ``modelhost serve`` runs (auth on with
a real key, usage records on and written to SQLite, metrics on, the demo's iris-sklearn with
``batching: {max_delay_ms: 2}`` and its ``label`` output only), a scope and a body as uvicorn
would hand them, and ``--concurrency`` callers sending requests back to back. It prints the CPU
time per request of the whole process (the usage writer's thread included), best of
``--rounds``: the figure to compare between two versions of the request path, run one after
the other on the same host.

    .venv/bin/python bench/app_cpu.py [--requests 20000] [--concurrency 32] [--rounds 5]
                                     [--nobatch] [--profile FILE.prof]

``--profile`` runs one more round under cProfile and writes its stats (read them with
``python -m pstats``): where the time goes, function by function (cProfile's own cost inflates
small functions; compare shares, not microseconds).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import harness
from overhead_vs_mlserver import BODY, MODEL

BATCHES: list[int] = []  # each answer's batch size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000, help="requests a round (20000)")
    parser.add_argument("--concurrency", type=int, default=32, help="callers at once (32)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the best is printed (5)")
    parser.add_argument("--nobatch", action="store_true", help="iris-sklearn without batching")
    parser.add_argument("--profile", type=Path, help="one more round under cProfile, to FILE")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mh-app-cpu-") as folder:
        work = Path(folder)
        models = build_models(work, args.nobatch)
        key = prepare_environment(work, models)
        import uvloop  # as modelhost serve runs

        return uvloop.run(run(args, key))


def build_models(work: Path, nobatch: bool) -> Path:
    from modelhost.demo_models import build_demo_models

    build_demo_models(work / "demo-models", minilm=False)

    def edit(manifest: dict[str, Any]) -> None:
        manifest["outputs"] = [o for o in manifest["outputs"] if o["name"] == "label"]
        if nobatch:
            manifest.pop("batching")

    return harness.edit_manifest(work / "demo-models", work / "models", MODEL, edit)


def prepare_environment(work: Path, models: Path) -> str:
    """The settings ``modelhost serve`` would get from P1, and a real API key in its database."""
    os.environ.update(
        {
            "MODELHOST_MODEL_REPOSITORY": str(models),
            "MODELHOST_DATABASE_URL": harness.modelhost_database(work, "app"),
            "MODELHOST_USAGE_JOURNAL": str(work / "usage.journal"),
            "MODELHOST_AUTH": "enabled",
            "MODELHOST_USAGE_RECORDS": os.environ.get("MODELHOST_USAGE_RECORDS", "true"),
            "MODELHOST_LOG_LEVEL": "warning",
            "MODELHOST_CACHE_DIR": str(work / "cache"),
        }
    )
    return harness.create_api_key(work, "app")


async def run(args: argparse.Namespace, key: str) -> int:
    from modelhost.app import create_app
    from modelhost.observability.logging import configure_logging
    from modelhost.settings import Settings

    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    body = json.dumps(BODY, separators=(",", ":")).encode()
    headers = [
        (b"host", b"127.0.0.1:8080"),
        (b"user-agent", b"wrk"),
        (b"authorization", f"Bearer {key}".encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    async with app.router.lifespan_context(app):
        await drive(app, headers, body, 200, 1)  # loads the model
        best = float("inf")
        for round_number in range(1, args.rounds + 1):
            cpu, wall = await measure(app, headers, body, args)
            best = min(best, cpu)
            print(
                f"round {round_number}: {cpu * 1e6:7.1f} us CPU a request, "
                f"{args.requests / wall:8.0f} req/s in-process"
            )
        kind = "nobatch" if args.nobatch else "batched"
        print(f"best: {best * 1e6:.1f} us CPU a request ({kind})")
        if args.profile is not None:
            profiler = cProfile.Profile()
            profiler.enable()
            await drive(app, headers, body, args.requests, args.concurrency)
            profiler.disable()
            profiler.dump_stats(args.profile)
            print(f"profile: {args.profile}")
    return 0


async def measure(
    app: Any, headers: list[tuple[bytes, bytes]], body: bytes, args: argparse.Namespace
) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    BATCHES.clear()
    await drive(app, headers, body, args.requests, args.concurrency)
    print(f"mean batch {sum(BATCHES) / max(len(BATCHES), 1):.1f}", end=", ")
    return (time.process_time() - cpu) / args.requests, time.perf_counter() - wall


async def drive(
    app: Any, headers: list[tuple[bytes, bytes]], body: bytes, requests: int, concurrency: int
) -> None:
    left = requests
    path = f"/v2/models/{MODEL}/infer"

    async def caller() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            status = await one(app, path, headers, body)
            if status != 200:
                sys.exit(f"the server answered {status}")

    await asyncio.gather(*(caller() for _ in range(concurrency)))


async def one(app: Any, path: str, headers: list[tuple[bytes, bytes]], body: bytes) -> int:
    """One request as uvicorn hands it over: its scope, one body message, and ``send``."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8080),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": "POST",
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": list(headers),
        "state": {},
    }
    received = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal received
        if received:
            await asyncio.Event().wait()  # the client stays until it has its answer
        received = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            for name, value in message["headers"]:
                if name == b"x-batch-size":
                    BATCHES.append(int(value))

    await app(scope, receive, send)
    return status


if __name__ == "__main__":
    sys.exit(main())
