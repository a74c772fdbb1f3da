"""modelhost's HTTP/1.1 connection (api/http_connection.py) over real sockets: keep-alive, HEAD,
100 Continue, pipelining, chunked bodies both ways, flow control, what is not HTTP, and an
application that fails."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
import uvicorn

from modelhost.api.connections import ConnectionGuard
from modelhost.api.http_connection import http_protocol
from tests.support.models import write_memory_model
from tests.support.server import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("models")
    write_memory_model(root, "echo", 1)
    with ServerProcess(root, tmp_path_factory.mktemp("logs") / "server.log") as running:
        yield running


def read_response(sock: socket.socket, *, head_only: bool = False) -> tuple[bytes, bytes]:
    """One response's head and body (by its content-length) from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed mid-head: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    if head_only:
        assert rest == b""
        return head, b""
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        rest += chunk
    assert len(rest) == length
    return head, rest


def test_head_get_and_expect_continue_on_one_connection(server: ServerProcess) -> None:
    body = orjson.dumps(
        {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": [1.0, 2.0]}]}
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"HEAD /v2/health/ready HTTP/1.1\r\nhost: t\r\n\r\n")
        head, _ = read_response(sock, head_only=True)
        assert head.startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /v2/health/ready HTTP/1.1\r\nhost: t\r\n\r\n")
        head, _ = read_response(sock)
        assert head.startswith(b"HTTP/1.1 200")
        # The client waits for the 100 before it sends the body.
        sock.sendall(
            b"POST /v2/models/echo/infer HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n"
            b"expect: 100-continue\r\ncontent-length: %d\r\n\r\n" % len(body)
        )
        interim, _ = read_response(sock, head_only=True)
        assert interim == b"HTTP/1.1 100 Continue"
        sock.sendall(body)
        head, answer = read_response(sock)
        assert head.startswith(b"HTTP/1.1 200"), head
        assert orjson.loads(answer)["outputs"][0]["data"] == [2.0, 4.0]  # the model doubles


# -- the protocol alone, under uvicorn's server on loopback, with an application made to probe it


async def probe_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/echo``: the body back (read as it comes); ``/stream``: a chunked answer; ``/big``: 8 MiB;
    ``/slow``: answers after 0.3 s; ``/fail``, ``/silent``: fails, returns without an answer;
    ``/wait-disconnect``: reads the body, then waits for the client to leave."""
    path = scope["path"]
    body = b""
    more = path != "/early"  # answers before it reads the body, as a 413 does
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body += message["body"]
        more = message["more_body"]
    if path == "/fail":
        raise RuntimeError("the application failed on purpose")
    if path == "/silent":
        return
    if path == "/wait-disconnect":
        PROBES["disconnect"] = await receive()
        return
    if path == "/slow":
        await asyncio.sleep(0.3)
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"one,", b"two,", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    answer = b"x" * (8 << 20) if path == "/big" else path.encode() + b":" + body
    headers = [(b"content-length", b"%d" % len(answer)), (b"x-path", path.encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


PROBES: dict[str, Any] = {}


@pytest.fixture(scope="module")
def probe() -> Iterator[tuple[str, int]]:
    guard = ConnectionGuard(cap=100, header_timeout=2.0, body_timeout=2.0)
    config = uvicorn.Config(
        probe_app, lifespan="off", loop="uvloop", http=http_protocol(guard),
        timeout_keep_alive=1, log_config=None,
    )  # fmt: skip
    server = uvicorn.Server(config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the probe server did not start"
        time.sleep(0.01)
    yield "127.0.0.1", sock.getsockname()[1]
    server.should_exit = True
    thread.join(10)


class Responses:
    """Responses read off one socket in turn, what arrived past one kept for the next."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def next(self) -> tuple[bytes, bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.receive()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
        while len(self.buffer) < length:
            self.buffer += self.receive()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return head, body

    def receive(self) -> bytes:
        chunk = self.sock.recv(65536)
        assert chunk, f"the connection closed mid-response: {self.buffer[:200]!r}"
        return chunk


def request(path: str, body: bytes = b"", extra: bytes = b"") -> bytes:
    return b"POST %s HTTP/1.1\r\nhost: t\r\ncontent-length: %d\r\n%s\r\n%s" % (
        path.encode(),
        len(body),
        extra,
        body,
    )


def test_pipelined_requests_are_answered_in_order(probe: tuple[str, int]) -> None:
    with socket.create_connection(probe, timeout=10) as sock:
        # The first is the slowest: answered out of order, its answer would come second.
        sock.sendall(request("/slow", b"a") + request("/echo", b"b") + request("/echo", b"c"))
        responses = Responses(sock)
        answers = [responses.next()[1] for _ in range(3)]
    assert answers == [b"/slow:a", b"/echo:b", b"/echo:c"]


def test_chunked_upload_and_chunked_answer(probe: tuple[str, int]) -> None:
    with httpx.Client(base_url=f"http://{probe[0]}:{probe[1]}") as client:
        parts = [b"x" * 100_000, b"y" * 300_000, b"z"]
        echoed = client.post("/echo", content=iter(parts))  # an iterator: sent chunked
        assert echoed.status_code == 200
        assert echoed.content == b"/echo:" + b"".join(parts)
        streamed = client.post("/stream")
        assert streamed.headers["transfer-encoding"] == "chunked"
        assert streamed.content == b"one,two,three"


def test_big_bodies_both_ways_with_a_slow_reader(probe: tuple[str, int]) -> None:
    """Write flow control: an 8 MiB answer to a client that reads slowly arrives whole."""
    with socket.create_connection(probe, timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        upload = bytes(range(256)) * 16384  # 4 MiB, read by the app as it comes
        sock.sendall(request("/echo", upload))
        head, body = read_response(sock)
        assert body == b"/echo:" + upload
        sock.sendall(request("/big"))
        time.sleep(0.5)  # the server's buffer fills and it pauses
        head, body = read_response(sock)
        assert len(body) == 8 << 20 and body.count(b"x") == len(body)


def test_what_is_not_http_is_400_and_an_oversized_head_431(probe: tuple[str, int]) -> None:
    with socket.create_connection(probe, timeout=10) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        head, body = read_response(sock)
        assert head.startswith(b"HTTP/1.1 400") and b"connection: close" in head
        assert sock.recv(1) == b""
    with socket.create_connection(probe, timeout=10) as sock:
        sock.sendall(b"GET /echo HTTP/1.1\r\nhost: t\r\n")
        for _ in range(20):  # 80 KiB of headers, in reads of their own
            sock.sendall(b"x-filler: " + b"f" * 4096 + b"\r\n")
            time.sleep(0.01)
        head, body = read_response(sock)
        assert head.startswith(b"HTTP/1.1 431"), head
        assert body == b"Request header fields too large"


@pytest.mark.parametrize("path", ["/fail", "/silent"])
def test_an_application_that_does_not_answer_is_500(probe: tuple[str, int], path: str) -> None:
    with socket.create_connection(probe, timeout=10) as sock:
        sock.sendall(request(path))
        head, body = read_response(sock)
        assert head.startswith(b"HTTP/1.1 500") and body == b"Internal Server Error"
    with socket.create_connection(probe, timeout=10) as sock:  # the server goes on
        sock.sendall(request("/echo", b"ok"))
        assert read_response(sock)[1] == b"/echo:ok"


def test_connection_close_http_10_and_idle_keep_alive(probe: tuple[str, int]) -> None:
    with socket.create_connection(probe, timeout=10) as sock:
        sock.sendall(request("/echo", b"1", extra=b"connection: close\r\n"))
        head, _ = read_response(sock)
        assert b"connection: close" in head and sock.recv(1) == b""
    with socket.create_connection(probe, timeout=10) as sock:
        sock.sendall(b"GET /echo HTTP/1.0\r\n\r\n")
        head, body = read_response(sock)
        assert body == b"/echo:" and sock.recv(1) == b""
    with socket.create_connection(probe, timeout=10) as sock:
        for _ in range(4):  # busy for 2 s: longer than the 1 s keep-alive, and never idle that long
            sock.sendall(request("/echo", b"k"))
            assert read_response(sock)[1] == b"/echo:k"
            time.sleep(0.5)
        started = time.monotonic()
        assert sock.recv(1) == b""  # then idle: closed after the keep-alive period
        assert 0.3 < time.monotonic() - started < 3


def test_answered_before_its_body_the_connection_goes_on_then_idles_out(
    probe: tuple[str, int],
) -> None:
    with socket.create_connection(probe, timeout=10) as sock:
        sock.sendall(b"POST /early HTTP/1.1\r\nhost: t\r\ncontent-length: 8\r\n\r\n1234")
        responses = Responses(sock)
        assert responses.next()[1] == b"/early:"
        sock.sendall(b"5678" + request("/echo", b"next"))  # the rest of the body, then another
        assert responses.next()[1] == b"/echo:next"
        started = time.monotonic()
        assert sock.recv(1) == b""  # idle: closed after the 1 s keep-alive
        assert time.monotonic() - started < 3
    with socket.create_connection(probe, timeout=10) as sock:
        sock.sendall(b"POST /early HTTP/1.1\r\nhost: t\r\ncontent-length: 8\r\n\r\n1234")
        assert Responses(sock).next()[1] == b"/early:"
        sock.sendall(b"5678")  # the body ends after the answer: idle from then on
        started = time.monotonic()
        assert sock.recv(1) == b""
        assert time.monotonic() - started < 3


def test_an_answer_before_the_100_continue_closes_the_connection(
    probe: tuple[str, int],
) -> None:
    with socket.create_connection(probe, timeout=10) as sock:
        sock.sendall(
            b"POST /early HTTP/1.1\r\nhost: t\r\nexpect: 100-continue\r\ncontent-length: 4\r\n\r\n"
        )
        head, body = Responses(sock).next()
        assert head.startswith(b"HTTP/1.1 200") and b"connection: close" in head
        assert body == b"/early:" and sock.recv(1) == b""


def test_a_client_that_leaves_is_told(probe: tuple[str, int]) -> None:
    PROBES.pop("disconnect", None)
    with socket.create_connection(probe, timeout=10) as sock:
        sock.sendall(request("/wait-disconnect", b"bye"))
        time.sleep(0.2)
    deadline = time.monotonic() + 5
    while "disconnect" not in PROBES:
        assert time.monotonic() < deadline, "the application was never told"
        time.sleep(0.05)
    assert PROBES["disconnect"] == {"type": "http.disconnect"}


def test_an_upgrade_is_answered_as_plain_http_then_closed(probe: tuple[str, int]) -> None:
    with socket.create_connection(probe, timeout=10) as sock:
        sock.sendall(
            b"GET /echo HTTP/1.1\r\nhost: t\r\nconnection: upgrade\r\nupgrade: websocket\r\n"
            b"sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        head, body = read_response(sock)
        assert head.startswith(b"HTTP/1.1 200") and body == b"/echo:"
        assert b"connection: close" in head and sock.recv(1) == b""
