"""A response's head and its first body bytes leave in one write.

uvicorn's request cycle writes the status line and headers as soon as the app sends
``http.response.start``, and the body on ``http.response.body``: two sends (two loopback TCP
segments, two wake-ups of the client) for every small answer, where one would do. The head's
send alone was 8 % of a small batched request's CPU here (``bench/overhead_vs_mlserver.py
--profile``).

:class:`HeadHoldingTransport` stands between one request cycle and the connection's transport:
it keeps the head the cycle writes and sends it with the next write (the first body chunk), or
on ``close``. What the cycle writes before its response starts (``100 Continue``) goes out at
once: the client waits for it before it sends the body. An answer with no body write at all
(to ``HEAD``) sends its head when the cycle reports the response complete. A streamed answer's
head leaves with its first chunk, which is how Starlette's streaming responses send anyway
(start, then the first chunk straight after).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

# Past this, the head and the body go to the kernel as two buffers of one writev() instead of
# one joined copy: a copy of a big body costs more than the second buffer.
_JOIN_BELOW = 64 * 1024


class _Cycle(Protocol):
    response_started: bool
    on_response: Callable[..., None]


class HeadHoldingTransport:
    """The three transport calls a uvicorn request cycle makes, with the head held back."""

    __slots__ = ("_transport", "_cycle", "_head", "_head_sent", "_on_response")

    def __init__(self, transport: asyncio.Transport, cycle: _Cycle) -> None:
        self._transport = transport
        self._cycle: _Cycle | None = cycle  # until the response completes: see there
        self._head: bytes | None = None
        self._head_sent = False
        self._on_response = cycle.on_response
        cycle.on_response = self._response_complete

    def write(self, data: bytes) -> None:
        cycle = self._cycle
        if self._head_sent or cycle is None or not cycle.response_started:
            self._transport.write(data)  # the body after the first write, or a 100 Continue
        elif self._head is None:
            self._head = data  # the cycle's one write of the status line and headers
        else:
            self._head_sent = True
            head, self._head = self._head, None
            if len(data) < _JOIN_BELOW:
                self._transport.write(head + data)
            else:
                self._transport.writelines((head, data))

    def close(self) -> None:
        self._flush()  # a head with no body after it (the app failed mid-answer) still goes
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def _response_complete(self) -> None:
        self._flush()
        # Without the cycle, every later write goes straight through. And the cycle and this
        # holder refer to each other: left so, every request would leave a reference cycle for
        # the garbage collector (measured: 7-9 % more CPU a request).
        self._cycle = None
        self._on_response()

    def _flush(self) -> None:
        if self._head is not None:  # held: not sent yet
            self._head_sent = True
            head, self._head = self._head, None
            if not self._transport.is_closing():
                self._transport.write(head)
