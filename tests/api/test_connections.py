"""No client can hoard connections: the cap closes the oldest idle ones, slow headers and
stalled bodies are cut off, and a client that leaves mid-upload is a 499, not a 500."""

from __future__ import annotations

import os
import resource
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.models import write_memory_model
from tests.support.server import ServerProcess

CAP = 64
TIMEOUT = 2.0  # header and body timeouts of the server under test
SLOW = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}]}


@pytest.fixture(scope="module", autouse=True)
def enough_descriptors() -> None:
    """This test process opens hundreds of sockets itself."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    write_memory_model(root, "slow", 1, delay=1.5)
    return root


@pytest.fixture(scope="module")
def guarded(repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {
        "MODELHOST_MAX_CONNECTIONS": str(CAP),
        "MODELHOST_HEADER_TIMEOUT_SECONDS": str(TIMEOUT),
        "MODELHOST_BODY_TIMEOUT_SECONDS": str(TIMEOUT),
    }
    log = tmp_path_factory.mktemp("logs") / "server.log"
    with ServerProcess(repository, log, env=env) as server:
        yield server


def descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def connect(server: ServerProcess, count: int) -> list[socket.socket]:
    return [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(count)]


def closed_by_server(sock: socket.socket, wait: float) -> bool:
    """Whether the server closed ``sock`` (EOF or reset) within ``wait`` seconds."""
    sock.settimeout(wait)
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def timed_health(server: ServerProcess) -> float:
    started = time.perf_counter()
    response = httpx.get(f"{server.url}/v2/health/ready", timeout=10)
    assert response.status_code == 200, response.text
    return time.perf_counter() - started


def test_idle_connections_past_the_cap_close_oldest_first(guarded: ServerProcess) -> None:
    baseline = descriptors(guarded.pid)
    # A request in flight on its own connection is never closed for room.
    busy: dict[str, int] = {}
    in_flight = threading.Thread(
        target=lambda: busy.update(
            status=httpx.post(
                f"{guarded.url}/v2/models/slow/infer", json=SLOW, timeout=30
            ).status_code
        )
    )
    in_flight.start()
    time.sleep(0.5)
    idle = connect(guarded, 5 * CAP)
    try:
        # The oldest idle connections make room for the newest; a new client is answered.
        assert closed_by_server(idle[0], 10), "the oldest idle connection was not closed"
        assert timed_health(guarded) < 2.0
        assert not closed_by_server(idle[-1], 0.2), "the newest idle connection was closed"
        assert descriptors(guarded.pid) <= baseline + CAP + 8
        in_flight.join(30)
        assert busy == {"status": 200}
    finally:
        for sock in idle:
            sock.close()


def test_slow_headers_and_silence_are_cut_off(guarded: ServerProcess) -> None:
    silent = connect(guarded, 10)
    slowloris = connect(guarded, 10)
    for sock in slowloris:
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    started = time.monotonic()
    try:
        for second in range(int(TIMEOUT * 3)):  # a header byte a second, for three timeouts
            for sock in slowloris:
                try:
                    sock.sendall(b"a")
                except OSError:
                    pass
            time.sleep(0.5 if second else 0.1)
            assert timed_health(guarded) < 2.0  # others are served meanwhile
        for sock in silent + slowloris:
            assert closed_by_server(sock, 0.5), "a connection outlived the header timeout"
        assert time.monotonic() - started < TIMEOUT * 3 + 5
    finally:
        for sock in silent + slowloris:
            sock.close()


def status_count(server: ServerProcess, status: int) -> float:
    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("modelhost_requests_total{")
        and 'endpoint="infer"' in line
        and f'status="{status}"' in line
    )


def partial_upload(server: ServerProcess, then_close: bool) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(
        b"POST /v2/models/slow/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000\r\n\r\n" + b'{"inputs": [' + b" " * 1000
    )
    if then_close:
        time.sleep(0.3)  # the route is reading the body by now
        sock.close()
    return sock


@pytest.mark.parametrize("how", ["client-leaves", "body-stalls"])
def test_unfinished_upload_is_499_without_a_traceback(guarded: ServerProcess, how: str) -> None:
    """A client that leaves mid-upload (or stops sending its body, and is cut off after the
    body timeout) is counted as 499, client closed request: not a 5xx that pages someone."""
    before = status_count(guarded, 499)
    sock = partial_upload(guarded, then_close=how == "client-leaves")
    try:
        if how == "body-stalls":
            assert closed_by_server(sock, TIMEOUT + 3), "a stalled body outlived its timeout"
        deadline = time.monotonic() + 10
        while status_count(guarded, 499) < before + 1:
            assert time.monotonic() < deadline, "no 499 was recorded"
            time.sleep(0.1)
    finally:
        sock.close()
    assert status_count(guarded, 500) == 0
    assert "Traceback" not in guarded.log()


def test_cap_stays_below_the_descriptor_limit(repository: Path, tmp_path: Path) -> None:
    """With ``ulimit -n 300`` (soft and hard: it cannot be raised) and no connection setting,
    the cap comes from the limit: 500 idle connections never exhaust the descriptors."""
    limit = 300

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    with ServerProcess(repository, tmp_path / "server.log", preexec_fn=low_limit) as server:
        assert "descriptor limit 300" in server.log()
        idle = connect(server, 500)
        try:
            assert closed_by_server(idle[0], 10)
            for _ in range(5):
                assert timed_health(server) < 2.0
            assert descriptors(server.pid) < limit
        finally:
            for sock in idle:
                sock.close()
