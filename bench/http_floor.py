"""Two floors under every Python server on this stack, for ``bench/overhead_vs_mlserver.py``.

Both read a POST's body and answer the same small V2-shaped JSON (the size of modelhost's iris
answer), with nothing else to do: what the HTTP layer alone costs a request.

* ``app``: a bare ASGI application. Served by uvicorn with ``modelhost serve``'s settings
  (``uvicorn --app-dir bench http_floor:app --loop uvloop --http httptools --no-access-log
  --no-proxy-headers --no-server-header``) it is uvicorn's own cost: its protocol, its ASGI
  request/response cycle and its two writes (head, then body) per answer.
* ``python bench/http_floor.py PORT``: an asyncio protocol on uvloop that feeds httptools and
  answers each request from a task with one write. Not an HTTP server anyone should run (no
  flow control, no timeouts, no 100-continue, no pipelining order): the least any server built
  on uvloop and httptools in Python could spend, parsing and one write per request.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any, cast

import httptools
import orjson
import uvloop

ANSWER = orjson.dumps(
    {
        "model_name": "iris-sklearn",
        "model_version": "1",
        "outputs": [{"name": "label", "datatype": "INT64", "shape": [1], "data": [0]}],
    }
)
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(ANSWER))]
_RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
    len(ANSWER),
    ANSWER,
)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The bare ASGI application (lifespan answered, so uvicorn starts without a warning)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].rsplit(".", 1)[-1]
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    more_body = True
    while more_body:
        more_body = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": ANSWER})


class MinimalProtocol(asyncio.Protocol):
    """httptools fed from ``data_received``; each complete request answered by a task."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but write the same way.
        self.transport = cast(asyncio.Transport, transport)
        self.parser = httptools.HttpRequestParser(self)
        self.body: list[bytes] = []

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.body = []
        asyncio.get_running_loop().create_task(self.answer())

    async def answer(self) -> None:
        self.transport.write(_RESPONSE)


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(MinimalProtocol, "127.0.0.1", port, backlog=4096)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1])))
