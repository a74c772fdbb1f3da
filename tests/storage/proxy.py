"""A TCP proxy on loopback that slows responses down, so a test can act while a download is
under way (stop the S3 server behind it mid-transfer) and know it is under way."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from tests.support.server import free_port


class ThrottledProxy:
    """Forwards 127.0.0.1:port to an upstream port; server→client bytes at ``rate`` bytes/s."""

    def __init__(self, upstream_port: int, rate: float) -> None:
        self.upstream_port = upstream_port
        self.rate = rate
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.sent = 0  # bytes forwarded to clients
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

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
        threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
        self._pump(upstream, client, True)

    def _pump(self, source: socket.socket, sink: socket.socket, throttled: bool) -> None:
        try:
            while data := source.recv(64 << 10):
                sink.sendall(data)
                if throttled:
                    self.sent += len(data)
                    time.sleep(len(data) / self.rate)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
