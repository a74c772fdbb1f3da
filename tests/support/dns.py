"""A tiny DNS server on loopback that answers A queries from a table the test changes: what a
Kubernetes headless Service's DNS does as pods come and go."""

from __future__ import annotations

import socket
import struct
import threading

_A, _IN = 1, 1


class DnsServer:
    """Answers ``name`` (A, class IN) with the addresses in :attr:`records`; anything else is
    an empty answer. Runs in a daemon thread until :meth:`stop`."""

    def __init__(self) -> None:
        self.records: dict[str, list[str]] = {}
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.settimeout(0.2)
        self.address = f"127.0.0.1:{self._socket.getsockname()[1]}"
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> DnsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(5)
        self._socket.close()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                query, client = self._socket.recvfrom(2048)
            except TimeoutError:
                continue
            try:
                self._socket.sendto(self._answer(query), client)
            except (ValueError, IndexError, struct.error, OSError):
                continue  # a malformed query gets no answer

    def _answer(self, query: bytes) -> bytes:
        (ident,) = struct.unpack("!H", query[:2])
        labels, offset = [], 12
        while query[offset]:
            length = query[offset]
            labels.append(query[offset + 1 : offset + 1 + length].decode())
            offset += 1 + length
        qtype, qclass = struct.unpack("!HH", query[offset + 1 : offset + 5])
        question = query[12 : offset + 5]
        name = ".".join(labels).lower()
        addresses = self.records.get(name, []) if (qtype, qclass) == (_A, _IN) else []
        known = name in self.records
        flags = 0x8180 if known else 0x8183  # a response, recursion available; NXDOMAIN if unknown
        header = struct.pack("!HHHHHH", ident, flags, 1, len(addresses), 0, 0)
        answers = b"".join(
            struct.pack("!HHHIH", 0xC00C, _A, _IN, 1, 4) + socket.inet_aton(address)
            for address in addresses
        )
        return header + question + answers
