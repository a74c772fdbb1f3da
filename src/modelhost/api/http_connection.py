"""modelhost's HTTP/1.1 connection: httptools' parser feeding ASGI request cycles.

uvicorn still runs the server (sockets, signals, lifespan, the ``date`` header, the graceful
shutdown); this is the protocol it creates for each connection, in place of its own httptools
one. It keeps that one's contract (keep-alive, pipelined requests answered in order, ``100
Continue``, chunked bodies both ways, ``HEAD``, read and write flow control, 400 for what is not
HTTP, 500 when the application fails before answering, ``shutdown()`` and the server's
connection and task sets) and adds what :mod:`modelhost.api.connections` asks of every
connection: the guard's cap, and timeouts on headers, bodies and idle time.

Why not uvicorn's own: its protocol took 19-26 us of CPU a small request in-process, against
9-14 for a driver that does only the scope, the body and one write (``bench/front_end_cpu.py``),
and a batched iris request costs ~200 us in all. The steps that cost it are each small: an
``asyncio.Event`` per request, a keep-alive timer armed after every answer and cancelled on the
next request's bytes, two regular-expression searches per response header, the head and body as
two writes (modelhost held the head back in a wrapper transport to join them), the body copied
through a ``bytearray``. Here, the connection (the request cycle's own savings are in
:mod:`modelhost.api.request_cycle`):

- **One timer a connection, armed lazily.** The connection's state (reading headers, reading a
  body, busy, idle) has at most one deadline. The timer is armed when a state with a deadline is
  entered and none is armed early enough; when it fires it checks the state then, and re-arms
  for the new deadline if the state moved on. A keep-alive connection answering requests back to
  back re-arms it once every keep-alive period, not twice a request.
- **A silent connection costs little**: the parser and the socket's addresses wait for its first
  byte.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import httptools

from modelhost.api.request_cycle import STATUS_LINES, RequestCycle

if TYPE_CHECKING:
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    from modelhost.api.connections import ConnectionGuard

log = logging.getLogger(__name__)

# A request body buffered past this pauses reading until the application takes it.
HIGH_WATER = 64 * 1024
# A request's line and headers past this get 431: memory a client may hold before a request runs
# (counted over the reads that were all head; the first read of a head may add one read's size).
MAX_HEAD_BYTES = 64 * 1024

# The connection's states; each but BUSY has a deadline.
_HEADERS = 0  # waiting for, or reading, a request's line and headers
_BODY = 1  # reading a request body the application waits for
_BUSY = 2  # the application has the whole request (or the body is paused by us)
_IDLE = 3  # between keep-alive requests


class HttpConnection(asyncio.Protocol):
    """One client connection. Built through :func:`http_protocol`, which binds the guard."""

    guard: ConnectionGuard

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        self.app = config.loaded_app
        self.root_path = config.root_path
        self.keep_alive_seconds = float(config.timeout_keep_alive)
        self.server_state = server_state
        self.app_state = app_state
        self.loop = _loop or asyncio.get_event_loop()
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser: httptools.HttpRequestParser | None = None  # from the first byte on
        self.server: tuple[str, int] | None = None
        self.client: tuple[str, int] | None = None
        self.admitted = False
        self.broken = False  # the client sent something that is not HTTP: ignore the rest
        self.read_paused = False
        self.write_paused = False
        self.drained: asyncio.Future[None] | None = None
        # The request being answered; the pipelined ones behind it, in order.
        self.active: RequestCycle | None = None
        self.pipeline: deque[RequestCycle] = deque()
        # Per request, while its head is parsed.
        self.cycle: RequestCycle | None = None
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_bytes = 0
        self.expect = False
        self.messages = 0  # requests parsed whole
        # The state, since when, and the one timer.
        self.state = _HEADERS
        self.since = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if not self.guard.admit(self):
            transport.abort()  # type: ignore[attr-defined]
            return
        self.admitted = True
        self.server_state.connections.add(self)  # type: ignore[arg-type]
        # The first request's headers are due within the header timeout of connecting.
        self.since = self.loop.time()
        self.arm(self.since + self.guard.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server_state.connections.discard(self)
        if self.admitted:
            self.admitted = False
            self.guard.closed(self)
        self.cancel_timer()
        for cycle in (self.active, *self.pipeline):
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True
                cycle.wake()
        self.pipeline.clear()
        self.wake_writers()

    def eof_received(self) -> None:
        pass  # the transport closes: a half-closed client gets no answer (as uvicorn)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self.wake_writers()

    def data_received(self, data: bytes) -> None:
        if self.broken:
            return
        parser = self.parser
        if parser is None:  # set up on the first byte: a silent connection costs only this
            parser = self.parser = httptools.HttpRequestParser(self)
            self.server = _address(self.transport.get_extra_info("sockname"))
            self.client = _address(self.transport.get_extra_info("peername"))
        before, messages = self.state, self.messages
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # No upgrade is served (no WebSocket, no h2c): the request is answered as plain
            # HTTP/1.1, and the connection closes after it (the parser stops at the upgrade).
            for cycle in (self.active, *self.pipeline):
                if cycle is not None:
                    cycle.keep_alive = False
            self.broken = True
            if self.cycle is not None:  # what follows its head is not its body
                self.on_message_complete()
            return
        except httptools.HttpParserError as exc:
            self.refuse(400, f"Invalid HTTP request: {exc}")
            return
        if self.transport.is_closing():
            return
        state = self.state
        if state == _HEADERS:  # a head begun, not finished: due within the header timeout
            if before != _HEADERS or messages != self.messages:  # of its first byte
                self.since = self.loop.time()
            else:  # this read was all head: a head that arrives in one read is never counted
                self.head_bytes += len(data)
                if self.head_bytes > MAX_HEAD_BYTES:
                    self.refuse(431, "Request header fields too large")
                    return
            deadline = self.since + self.guard.header_timeout
            if self.timer is None or self.timer_at > deadline:
                self.arm(deadline)
        elif state == _BODY:  # the body must keep coming
            self.since = now = self.loop.time()
            if self.timer is None:
                self.arm(now + self.guard.body_timeout)

    # -- httptools' callbacks

    def on_message_begin(self) -> None:
        self.state = _HEADERS
        self.url = b""
        self.headers = []
        self.head_bytes = 0
        self.expect = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        # llhttp keeps trailing whitespace, which RFC 9110 (5.5) excludes from the value.
        value = value.rstrip(b" \t")
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self.parser
        assert parser is not None
        http_version = parser.get_http_version()
        url = httptools.parse_url(self.url)
        raw_path = url.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = unquote(path)
        root_path = self.root_path
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": http_version,
            "server": self.server,
            "client": self.client,
            "scheme": "http",
            "method": parser.get_method().decode("ascii"),
            "root_path": root_path,
            "path": root_path + path if root_path else path,
            "raw_path": root_path.encode("ascii") + raw_path if root_path else raw_path,
            "query_string": url.query or b"",
            "headers": self.headers,
            "state": self.app_state.copy(),
        }
        keep_alive = http_version != "1.0" and parser.should_keep_alive()
        self.cycle = cycle = RequestCycle(self, scope, keep_alive, self.expect)
        self.state = _BODY
        self.guard.busy(self)
        if self.active is None:
            self.start(cycle)
        else:  # pipelined: answered after the ones before it; read no further till then
            self.pipeline.append(cycle)
            self.pause_reading()

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            return
        cycle.add_body(body)
        if cycle.buffered > HIGH_WATER:
            self.pause_reading()

    def on_message_complete(self) -> None:
        cycle = self.cycle
        self.cycle = None
        self.messages += 1
        if self.state == _BODY:
            self.state = _BUSY
            if self.active is None:  # answered before its body was all in (a 413): idle now
                self.become_idle()
        if cycle is not None:
            cycle.more_body = False
            cycle.wake()

    # -- the requests

    def start(self, cycle: RequestCycle) -> None:
        self.active = cycle
        task = self.loop.create_task(cycle.run(self.app))
        tasks = self.server_state.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def response_done(self, cycle: RequestCycle) -> None:
        self.server_state.total_requests += 1
        if not cycle.keep_alive:
            self.transport.close()
            return
        if self.transport.is_closing():
            return
        if self.pipeline:
            self.start(self.pipeline.popleft())
            if not self.pipeline:
                self.resume_reading()
            return
        self.active = None
        if self.cycle is None and self.state != _HEADERS:  # no next request begun
            self.become_idle()
        self.resume_reading()

    def become_idle(self) -> None:
        """Nothing in progress: the keep-alive period runs (and the guard may close it)."""
        self.state = _IDLE
        self.since = now = self.loop.time()
        self.guard.idle(self)
        if self.timer is None:
            self.arm(now + self.keep_alive_seconds)

    def shutdown(self) -> None:
        """The server is stopping: close now if idle, else after the answer in flight."""
        if self.active is None:
            self.transport.close()
        else:
            for cycle in (self.active, *self.pipeline):
                cycle.keep_alive = False

    def evict(self) -> None:
        """Closed for room (the guard picked it)."""
        self.admitted = False
        self.guard.closed(self)
        self.cancel_timer()
        self.transport.abort()

    def refuse(self, status: int, message: str) -> None:
        """Answer what is not a request (when nothing else is being answered) and close."""
        self.broken = True
        log.info("refusing a connection's input: %s", message)
        if self.active is not None:  # its answer goes out; nothing after it
            for cycle in (self.active, *self.pipeline):
                cycle.keep_alive = False
            self.pause_reading()
            return
        body = message.encode("ascii", "replace")
        self.transport.write(
            b"%scontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (STATUS_LINES[status], len(body), body)
        )
        if self.transport.can_write_eof():
            # A lingering close: what the client still sends is read and dropped until it
            # closes (or the header timeout passes). Closed at once with its bytes unread, the
            # kernel would answer them with a reset that can destroy the answer before the
            # client reads it.
            self.transport.write_eof()
            self.state = _HEADERS
            self.since = now = self.loop.time()
            if self.timer is None:
                self.arm(now + self.guard.header_timeout)
        else:
            self.transport.close()

    # -- flow control

    def pause_reading(self) -> None:
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused and not self.broken:
            self.read_paused = False
            self.transport.resume_reading()
            if self.state == _BODY:  # the client's turn again: the body timeout counts anew
                self.since = now = self.loop.time()
                if self.timer is None:
                    self.arm(now + self.guard.body_timeout)

    async def drain(self) -> None:
        if self.drained is None:
            self.drained = self.loop.create_future()
        await asyncio.shield(self.drained)

    def wake_writers(self) -> None:
        drained, self.drained = self.drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    # -- the one timer

    def arm(self, at: float) -> None:
        self.cancel_timer()
        self.timer_at = at
        self.timer = self.loop.call_at(at, self.on_timer)

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def on_timer(self) -> None:
        """The state's deadline may have passed; if the state moved on, wait for its own."""
        self.timer = None
        if self.transport.is_closing():
            return
        state = self.state
        guard = self.guard
        if state == _HEADERS:
            deadline = self.since + guard.header_timeout
        elif state == _BODY:
            if self.read_paused:
                return  # not the client's fault: we are not reading (resuming re-arms it)
            deadline = self.since + guard.body_timeout
        elif state == _IDLE:
            deadline = self.since + self.keep_alive_seconds
        else:
            return  # busy: the response re-arms it
        now = self.loop.time()
        if now < deadline:
            self.arm(deadline)
            return
        if state == _HEADERS:
            guard.stats.header_timeouts += 1
            self.transport.abort()
        elif state == _BODY:
            guard.stats.body_timeouts += 1
            self.transport.abort()
        else:
            self.transport.close()


def _address(info: Any) -> tuple[str, int] | None:
    """A socket address as ASGI gives it: (host, port), or None (a Unix socket)."""
    if isinstance(info, (list, tuple)) and len(info) >= 2:
        return str(info[0]), int(info[1])
    return None


def http_protocol(guard: ConnectionGuard) -> type[HttpConnection]:
    """The protocol class to give uvicorn (``Config(http=...)``), bound to ``guard``."""
    return type("GuardedHttpConnection", (HttpConnection,), {"guard": guard})
