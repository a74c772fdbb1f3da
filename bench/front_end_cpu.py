"""What the HTTP front end alone costs a request, in-process: uvicorn's protocol, modelhost's
own (``modelhost.api.http_connection``, with the connection guard) and the leanest driver
(``bench/lean_asgi.py``), each fed P1's request bytes on one keep-alive connection.

``bench/overhead_vs_mlserver.py``'s targets ``modelhost`` and ``modelhost-lean-http`` compare
the two front ends over real HTTP, where the kernel, wrk and batching move the figure by ±20 %
between runs. This bench takes all of that out: no socket (a transport object that keeps what
is written), a bare ASGI application that reads the body and answers modelhost's iris answer
with modelhost's headers, and requests sent back to back. The difference between ``modelhost``
and ``lean`` is the CPU a leaner front end could still save a request at most; the lean driver
has no flow control, timeouts or connection cap to pay for.

    .venv/bin/python bench/front_end_cpu.py [--requests 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import uvloop
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from lean_asgi import LeanProtocol
from modelhost.api.connections import ConnectionGuard
from modelhost.api.http_connection import http_protocol
from overhead_vs_mlserver import BODY, MODEL

ANSWER = (
    b'{"model_name":"iris-sklearn","model_version":"1",'
    b'"outputs":[{"name":"label","datatype":"INT64","shape":[1],"data":[0]}]}'
)
HEADERS = [
    (b"content-length", b"%d" % len(ANSWER)),
    (b"content-type", b"application/json"),
    (b"x-request-id", b"59488f94de48089c0000000000000001"),
]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the body; answers as modelhost's infer route does for iris (status, 3 headers)."""
    while (await receive()).get("more_body", False):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": ANSWER})


class RecordingTransport:
    """The transport calls the protocols make; a write that ends the answer wakes the caller."""

    def __init__(self) -> None:
        self.answered: asyncio.Future[None] | None = None
        self.closing = False

    def write(self, data: bytes) -> None:
        if data.endswith(ANSWER) and self.answered is not None:
            self.answered.set_result(None)

    def writelines(self, chunks: list[bytes]) -> None:
        self.write(b"".join(chunks))

    def close(self) -> None:
        self.closing = True

    abort = close

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8080)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def request_bytes() -> bytes:
    body = json.dumps(BODY, separators=(",", ":")).encode()
    head = (
        f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nhost: 127.0.0.1:8080\r\nuser-agent: wrk\r\n"
        f"authorization: Bearer {'k' * 43}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def cpu_per_request(protocol: asyncio.Protocol, request: bytes, requests: int) -> float:
    transport = RecordingTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    started = time.process_time()
    for _ in range(requests):
        transport.answered = loop.create_future()
        protocol.data_received(request)
        await transport.answered
    return (time.process_time() - started) / requests


async def run(args: argparse.Namespace) -> None:
    # modelhost serve's uvicorn settings (cli/server.py): no access log, no proxy headers.
    config = Config(
        app=app, loop="uvloop", http="httptools", lifespan="off", access_log=False,
        proxy_headers=False, server_header=False,
    )  # fmt: skip
    config.load()
    state = ServerState()
    guarded = http_protocol(ConnectionGuard(cap=1000, header_timeout=10.0, body_timeout=10.0))
    front_ends: dict[str, Callable[[], asyncio.Protocol]] = {
        "uvicorn": lambda: HttpToolsProtocol(config, state, {}),
        "modelhost": lambda: guarded(config, state, {}),
        "lean": lambda: LeanProtocol(app),
    }
    request = request_bytes()
    best = dict.fromkeys(front_ends, float("inf"))
    for round_number in range(1, args.rounds + 1):
        line = []
        for name, make in front_ends.items():
            await cpu_per_request(make(), request, 500)  # warm-up
            seconds = await cpu_per_request(make(), request, args.requests)
            best[name] = min(best[name], seconds)
            line.append(f"{name} {seconds * 1e6:5.1f}")
        print(f"round {round_number}: " + ", ".join(line) + " us CPU a request")
    print("best: " + ", ".join(f"{name} {us * 1e6:.1f}" for name, us in best.items()) + " us")
    saved = best["modelhost"] - best["lean"]
    print(f"a leaner front end could save at most {saved * 1e6:.1f} us CPU a request")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000, help="requests a round (20000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the best is kept (5)")
    uvloop.run(run(parser.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
