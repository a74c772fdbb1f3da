"""modelhost's own application behind the leanest ASGI driver: how much a native HTTP front end
could save at most, for ``bench/overhead_vs_mlserver.py``'s target ``modelhost-lean-http``.

``modelhost serve`` runs its application under its own HTTP/1.1 connection
(``modelhost.api.http_connection``: flow control, timeouts, the connection cap, pipelining,
100 Continue, chunked bodies). This script runs the *same* application (``create_app``,
the settings from the same environment: auth, usage records and metrics on as the bench sets
them) under an asyncio protocol on uvloop that feeds httptools and, for each request, builds
the ASGI scope, hands over the body in one message, and writes the answer's head and body in
one write. It does nothing else: no flow control, no timeouts, no pipelining order, no 100
Continue, no chunked answers. Not a server anyone should run; the least any front end on
uvloop and httptools could spend before the application, so ``modelhost`` against
``modelhost-lean-http`` in one run bounds what any leaner front end could still gain.

    MODELHOST_MODEL_REPOSITORY=... python bench/lean_asgi.py PORT
"""

from __future__ import annotations

import asyncio
import sys
from http import HTTPStatus
from typing import Any, cast

import httptools
import uvloop

from modelhost.app import create_app
from modelhost.observability.logging import configure_logging
from modelhost.settings import Settings

_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}


class LeanProtocol(asyncio.Protocol):
    """httptools fed from ``data_received``; each complete request run through ``app``."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but write the same way.
        self.transport = cast(asyncio.Transport, transport)
        self.parser = httptools.HttpRequestParser(self)
        self.client = transport.get_extra_info("peername")
        self.server = transport.get_extra_info("sockname")

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_begin(self) -> None:
        self.url, self.headers, self.body = b"", [], b""

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        url = httptools.parse_url(self.url)
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "server": self.server,
            "client": self.client,
            "scheme": "http",
            "method": self.parser.get_method().decode("ascii"),
            "root_path": "",
            "path": url.path.decode("ascii"),
            "raw_path": url.path,
            "query_string": url.query or b"",
            "headers": self.headers,
            "state": {},
        }
        asyncio.get_running_loop().create_task(self.answer(scope, self.body))

    async def answer(self, scope: dict[str, Any], body: bytes) -> None:
        head: list[bytes] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status = message["status"]
                head.append(b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"")))
                for name, value in message.get("headers", ()):
                    head.append(b"%s: %s\r\n" % (name, value))
                head.append(b"\r\n")
            else:
                head.append(message.get("body", b""))
                self.transport.write(b"".join(head))
                head.clear()

        await self.app(scope, receive, send)


async def serve(port: int) -> None:
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    loop = asyncio.get_running_loop()
    async with app.router.lifespan_context(app):
        server = await loop.create_server(
            lambda: LeanProtocol(app), "127.0.0.1", port, backlog=4096
        )
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1])))
