"""Decoding request bodies without stalling the event loop or multiplying memory.

A small body is decoded where it is, on the event loop: that is faster than handing it anywhere.
A big JSON body is not: orjson parses a document in one C call that holds the GIL throughout
(a worker thread would stall the loop just the same), and the Python objects it builds take
~15 times the body's size. So JSON bigger than :data:`INLINE_LIMIT` is decoded in a worker
*process*, one body at a time: the loop goes on serving, the decoding's memory is the worker's
(which is replaced after a very big body, so the system gets it back), and what comes back is
the request's numpy arrays. The body goes down a pipe as it is, without being pickled (which
would copy it twice more). Binary tensor data needs no parsing and never goes there.

Each tensor's declared shape is checked against the model before its data is decoded
(:func:`modelhost.inference.validation.check_declared`): a batch over ``max_batch_size`` is
refused once the JSON is parsed, before any array is built.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from multiprocessing.connection import Connection
from typing import Any

from modelhost.api.codec import decode_request
from modelhost.api.requests import parse_json_object
from modelhost.errors import ModelhostError, Unavailable
from modelhost.inference.types import InferenceRequest
from modelhost.inference.validation import check_declared
from modelhost.manifest import Manifest

log = logging.getLogger(__name__)

# JSON up to this size is decoded on the loop (~1 ms); bigger goes to the worker process.
INLINE_LIMIT = 256 << 10
# After a body this big the worker is replaced, so the memory its decoding took is returned.
RECYCLE_AFTER = 16 << 20

Body = bytes | bytearray


class BodyDecoder:
    """Decodes V2 infer bodies and JSON objects, big ones in a worker process."""

    def __init__(self, inline_limit: int = INLINE_LIMIT) -> None:
        self._inline_limit = inline_limit
        self._worker: _Worker | None = None
        self._one_at_a_time = asyncio.Lock()

    async def infer_request(
        self,
        body: Body,
        header_length: int | None,
        name: str,
        version: str | None,
        manifest: Manifest,
    ) -> InferenceRequest:
        """A V2 infer body for ``manifest``'s model; every problem is a 400."""
        json_size = len(body) if header_length is None else min(header_length, len(body))
        task = ("infer", header_length, name, version, manifest)
        if json_size <= self._inline_limit:
            decoded: InferenceRequest = _decode(task, body)
        else:
            decoded = await self._in_worker(task, body)
        return decoded

    async def json_object(self, body: Body) -> dict[str, Any]:
        """A body that must be one JSON object (empty means ``{}``)."""
        if not body.strip():
            return {}
        if len(body) <= self._inline_limit:
            return parse_json_object(body)
        parsed: dict[str, Any] = await self._in_worker(("object",), body)
        return parsed

    async def _in_worker(self, task: tuple[Any, ...], body: Body) -> Any:
        async with self._one_at_a_time:
            worker = self._worker
            if worker is None:
                worker = self._worker = _Worker()
            try:
                return await asyncio.to_thread(worker.call, task, body)
            except (EOFError, OSError) as exc:
                # The worker died under it (killed for memory, most likely): a fresh one next.
                self._discard(worker)
                log.warning("the body decoding process failed: %r", exc)
                raise Unavailable(
                    "decoding the request body failed; try again", retry_after=1
                ) from None
            except asyncio.CancelledError:
                self._discard(worker)  # its pipe is mid-conversation: never reuse it
                raise
            finally:
                if len(body) > RECYCLE_AFTER:
                    self._discard(worker)

    def _discard(self, worker: _Worker) -> None:
        if self._worker is worker:
            self._worker = None
        worker.close()

    def close(self) -> None:
        if self._worker is not None:
            self._discard(self._worker)


class _Worker:
    """One decoding process and the pipe to it; :meth:`call` blocks (run it in a thread)."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child,), name="modelhost-body-decoder", daemon=True
        )
        self._process.start()
        child.close()

    def call(self, task: tuple[Any, ...], body: Body) -> Any:
        self._pipe.send(task)
        self._pipe.send_bytes(body)  # written from the buffer itself: no copy
        ok, value = self._pipe.recv()
        if not ok:
            raise value
        return value

    def close(self) -> None:
        self._pipe.close()
        self._process.terminate()


def _serve(pipe: Connection) -> None:
    """The worker process: decode bodies until the pipe closes."""
    while True:
        try:
            task = pipe.recv()
            body = pipe.recv_bytes()
        except EOFError:
            return
        try:
            reply: tuple[bool, Any] = (True, _decode(task, body))
        except ModelhostError as exc:
            reply = (False, exc)
        except Exception as exc:  # a bug: say what, as an error the server can unpickle
            reply = (False, ModelhostError(f"decoding failed: {type(exc).__name__}: {exc}"))
        del body
        pipe.send(reply)


def _decode(task: tuple[Any, ...], body: Body) -> Any:
    if task[0] == "object":
        return parse_json_object(body)
    _, header_length, name, version, manifest = task
    return decode_request(
        body,
        header_length,
        name,
        version,
        lambda tensor, datatype, shape: check_declared(tensor, datatype, shape, manifest),
    )
