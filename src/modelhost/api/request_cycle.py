"""One HTTP request's ASGI cycle: the ``receive`` and ``send`` its application task calls, and
the response framed for the wire (status line, checked headers, content length or chunks).

:mod:`modelhost.api.http_connection` parses the requests and owns the socket, its flow control
and its timers; it makes a :class:`RequestCycle` for each request's head, feeds it the body, and
is told when the response is done. Here, what is per request:

- **The body is handed over as it arrived**: one read, one ``bytes``, no copy; ``receive()``
  awaits only when it must. After the whole body, ``receive()`` waits for the end (the client
  gone or the response sent), as ASGI asks.
- **The head leaves with the first body bytes** in one write; the response headers are checked
  with one search over all names and one over all values.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelhost.api.http_connection import HttpConnection

log = logging.getLogger(__name__)

# Past this, the head and the body go to the kernel as two buffers of one writev() instead of
# one joined copy: a copy of a big body costs more than the second buffer.
_JOIN_BELOW = 64 * 1024

# RFC 9110's token characters are allowed in names; control characters are never in values.
_BAD_NAME = re.compile(b'[\x00-\x20\x7f()<>@,;:\\[\\]={}\\\\"/?]')
_BAD_VALUE = re.compile(b"[\x00-\x08\x0a-\x1f\x7f]")


def _status_line(code: int) -> bytes:
    try:
        phrase = HTTPStatus(code).phrase.encode()
    except ValueError:
        phrase = b""
    return b"HTTP/1.1 %d %s\r\n" % (code, phrase)


STATUS_LINES = {code: _status_line(code) for code in range(100, 600)}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_DISCONNECT: dict[str, Any] = {"type": "http.disconnect"}


class RequestCycle:
    """One request: the ASGI ``receive`` and ``send`` its application task calls."""

    __slots__ = (
        "connection",
        "scope",
        "keep_alive",
        "disconnected",
        "waiting_for_100_continue",
        "chunks",
        "buffered",
        "more_body",
        "body_delivered",
        "waiter",
        "response_started",
        "response_complete",
        "head",
        "chunked",
        "length_left",
        "is_head",
    )

    def __init__(
        self, connection: HttpConnection, scope: dict[str, Any], keep_alive: bool, expect: bool
    ) -> None:
        self.connection: HttpConnection | None = connection  # None once the response is done
        self.scope = scope
        self.keep_alive = keep_alive
        self.disconnected = False
        self.waiting_for_100_continue = expect
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.more_body = True
        self.body_delivered = False  # the last body message has gone to the application
        self.waiter: asyncio.Future[None] | None = None
        self.response_started = False
        self.response_complete = False
        self.head: bytes | None = None  # held until the first body bytes (or the end)
        self.chunked = False
        self.length_left = 0
        self.is_head = scope["method"] == "HEAD"

    # -- from the connection

    def add_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        self.wake()

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- ASGI

    async def run(self, app: Callable[..., Awaitable[object]]) -> None:
        try:
            result = await app(self.scope, self.receive, self.send)
        except BaseException as exc:  # noqa: BLE001 - as uvicorn: logged, answered, contained
            log.error("Exception in ASGI application", exc_info=exc)
            if not self.response_started and not self.disconnected:
                await self._send_500()
            else:
                self._close()
        else:
            if result is not None:
                log.error("ASGI callable should return None, but returned %r.", result)
                self._close()
            elif not self.response_started and not self.disconnected:
                log.error("ASGI callable returned without starting response.")
                await self._send_500()
            elif not self.response_complete and not self.disconnected:
                log.error("ASGI callable returned without completing response.")
                self._close()
        finally:
            self.connection = None  # no reference cycle left for the garbage collector

    async def receive(self) -> dict[str, Any]:
        if self.waiting_for_100_continue:
            self.waiting_for_100_continue = False
            connection = self.connection
            if connection is not None and not connection.transport.is_closing():
                connection.transport.write(_CONTINUE)
        while True:
            if self.disconnected or self.response_complete or self.connection is None:
                return _DISCONNECT
            if self.chunks or not (self.more_body or self.body_delivered):
                break
            if self.more_body:  # the body is still coming
                self.connection.resume_reading()
            # else: all of it was delivered; what is left to tell is the end (as ASGI asks)
            await self._wait()
        chunks = self.chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.chunks = []
        self.buffered = 0
        if not self.more_body:
            self.body_delivered = True
        return {"type": "http.request", "body": body, "more_body": self.more_body}

    async def send(self, message: dict[str, Any]) -> None:
        connection = self.connection
        if connection is not None and connection.write_paused and not self.disconnected:
            await connection.drain()
        if self.disconnected or connection is None:
            return
        kind = message["type"]
        if not self.response_started:
            if kind != "http.response.start":
                raise RuntimeError(f"Expected 'http.response.start', but got {kind!r}.")
            self._start(connection, message["status"], message.get("headers", ()))
        elif not self.response_complete:
            if kind != "http.response.body":
                raise RuntimeError(f"Expected 'http.response.body', but got {kind!r}.")
            self._body(connection, message.get("body", b""), message.get("more_body", False))
        else:
            raise RuntimeError(f"Unexpected ASGI message {kind!r} after the response completed.")

    def _start(self, connection: HttpConnection, status: int, headers: Any) -> None:
        self.response_started = True
        if self.waiting_for_100_continue:
            # Answered without asking for the body: the client holds it back for a 100 that
            # will not come, and may send it after all. The connection ends with this answer.
            self.waiting_for_100_continue = False
            self.keep_alive = False
        parts = [STATUS_LINES[status], default_head(connection.server_state.default_headers)]
        length: bytes | None = None
        close = False
        chunked = False
        names = []
        values = []
        for name, value in headers:
            name = name.lower()
            names.append(name)
            values.append(value)
            if name == b"content-length":
                if length is None:
                    length = value
            elif name == b"transfer-encoding":
                chunked = value.lower() == b"chunked"
            elif name == b"connection":
                if b"close" in (token.strip() for token in value.lower().split(b",")):
                    close = True
            parts += (name, b": ", value, b"\r\n")
        if _BAD_NAME.search(b"".join(names)) or _BAD_VALUE.search(b"".join(values)):
            raise RuntimeError("Invalid HTTP header name or value.")
        if close:
            self.keep_alive = False
        elif not self.keep_alive:
            parts.append(b"connection: close\r\n")
        if length is not None and not chunked:
            self.length_left = int(length)
        elif not chunked and not self.is_head and status not in (204, 304):
            chunked = True  # neither length nor encoding given: the body is chunked
            parts.append(b"transfer-encoding: chunked\r\n")
        self.chunked = chunked
        parts.append(b"\r\n")
        self.head = b"".join(parts)

    def _body(self, connection: HttpConnection, body: bytes, more_body: bool) -> None:
        if self.is_head:
            out = b""
        elif self.chunked:
            out = b"%x\r\n%s\r\n" % (len(body), body) if body else b""
            if not more_body:
                out += b"0\r\n\r\n"
        else:
            if len(body) > self.length_left:
                raise RuntimeError("Response content longer than Content-Length")
            self.length_left -= len(body)
            out = body
        head = self.head
        transport = connection.transport
        if head is not None:
            self.head = None
            if len(out) < _JOIN_BELOW:
                transport.write(head + out)
            else:
                transport.writelines((head, out))
        elif out:
            transport.write(out)
        if not more_body:
            if self.length_left and not self.is_head:
                raise RuntimeError("Response content shorter than Content-Length")
            self.response_complete = True
            self.wake()
            connection.response_done(self)

    async def _wait(self) -> None:
        connection = self.connection
        if connection is None:
            return
        self.waiter = connection.loop.create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None

    async def _send_500(self) -> None:
        await self.send(
            {
                "type": "http.response.start",
                "status": 500,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", b"21"),
                    (b"connection", b"close"),
                ],
            }
        )
        await self.send({"type": "http.response.body", "body": b"Internal Server Error"})

    def _close(self) -> None:
        connection = self.connection
        if connection is not None:
            if self.head is not None:  # a head with no body after it still goes
                connection.transport.write(self.head)
                self.head = None
            connection.transport.close()


class _EncodedDefaults:
    """uvicorn's default headers (the ``date`` it renews each second), last encoded as head
    lines: encoded again only when uvicorn replaces the list."""

    source: object = None
    lines = b""


def default_head(defaults: list[tuple[bytes, bytes]]) -> bytes:
    if _EncodedDefaults.source is not defaults:
        _EncodedDefaults.lines = b"".join(b"%s: %s\r\n" % pair for pair in defaults)
        _EncodedDefaults.source = defaults
    return _EncodedDefaults.lines
