"""A TCP proxy on loopback that slows responses down, so a test can act while a download is
under way (stop the S3 server behind it mid-transfer) and know it is under way; and, as real S3
behaves, caps each connection's rate (not the total: parallel ranged GETs add up), or cuts
connections mid-response to fail one ranged GET among many. The cold-load benchmark uses it
too (bench/cold_load.py)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from tests.support.server import free_port


class ThrottledProxy:
    """Forwards 127.0.0.1:port to an upstream port; server→client bytes at most ``rate``
    bytes/s on each connection. ``cut(n, after)``: the next ``n`` responses to ranged GETs
    (206) longer than ``after`` bytes are cut there (their connection closed), whichever
    connections carry them."""

    def __init__(self, upstream_port: int, rate: float, read_bytes: int = 64 << 10) -> None:
        self.upstream_port = upstream_port
        self.rate = rate
        self.read_bytes = read_bytes
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.sent = 0  # bytes forwarded to clients
        self.connections = 0
        self.cuts = 0  # connections cut so far
        self._to_cut = 0
        self._cut_after = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self, connections: int, after: int) -> None:
        with self._lock:
            self._to_cut, self._cut_after = connections, after

    def close(self) -> None:
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        except OSError:
            client.close()  # the S3 server is away: the client sees the connection drop
            return
        with self._lock:
            self.connections += 1
        # Bytes of the response under way (a new request starts a new one), and whether it is
        # a ranged GET's.
        response = [0, 0]
        threading.Thread(
            target=self._pump, args=(client, upstream, False, response), daemon=True
        ).start()
        self._pump(upstream, client, True, response)

    def _pump(
        self, source: socket.socket, sink: socket.socket, throttled: bool, response: list[int]
    ) -> None:
        due = time.monotonic()  # when the bytes sent so far may have been sent, at `rate`
        try:
            while data := source.recv(self.read_bytes):
                if not throttled:
                    response[0] = 0  # the client sent (part of) a request
                    sink.sendall(data)
                    continue
                if response[0] == 0:
                    response[1] = data.startswith(b"HTTP/1.1 206")
                if self._to_cut > 0 and response[1] and response[0] + len(data) > self._cut_after:
                    with self._lock:
                        cut, self._to_cut = self._to_cut > 0, self._to_cut - 1
                    if cut:
                        self.cuts += 1
                        sink.sendall(data[: max(0, self._cut_after - response[0])])
                        return  # the finally below drops both sides mid-response
                response[0] += len(data)
                sink.sendall(data)
                if throttled:
                    self.sent += len(data)
                    # Paced on the connection's own clock, with no credit saved up while it
                    # was idle (between the requests of a kept-alive connection).
                    now = time.monotonic()
                    due = max(due, now) + len(data) / self.rate
                    if due > now:
                        time.sleep(due - now)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
