"""Reading what a client sent, within the limits the server sets."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request

from modelhost.errors import BadRequest, ClientClosedRequest, PayloadTooLarge
from modelhost.inference.deadline import parameter_timeout
from modelhost.units import format_bytes

# A body declared bigger than this is read into one buffer of its size: joining chunks would
# hold it twice at the peak.
_PREALLOCATE_FROM = 1 << 20


def header(request: Request, name: bytes) -> str | None:
    """The value of the header ``name`` (lower case), read straight from the ASGI scope: the
    inference route reads three, and each lookup through Starlette's ``Headers`` mapping costs
    several times this loop over a request's few headers."""
    for key, value in request.scope["headers"]:
        if key == name:
            decoded: str = value.decode("latin-1")
            return decoded
    return None


async def read_body(request: Request, limit: int) -> bytes | bytearray:
    """The whole body, refusing (413) as soon as it is known to be over ``limit`` bytes."""
    declared = header(request, b"content-length")
    expected: int | None = None
    if declared is not None and declared.isascii() and declared.isdigit():
        if len(declared) > 19 or int(declared) > limit:
            said = f"{declared[:40]} bytes" if len(declared) > 19 else format_bytes(int(declared))
            raise PayloadTooLarge(f"the body is {said}; the limit is {format_bytes(limit)}")
        expected = int(declared)
    try:
        if expected is not None and expected >= _PREALLOCATE_FROM:
            return await _read_into(request, bytearray(expected))
        return await _read_messages(request, limit)
    except ClientDisconnect:
        raise ClientClosedRequest("the client left before sending the whole body") from None


async def _read_messages(request: Request, limit: int) -> bytes:
    """The body from the ASGI messages themselves (a small body is one message: no async
    generator, as ``Request.stream`` is, to step through)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] != "http.request":  # http.disconnect
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is over the limit of {format_bytes(limit)}")
        if not message.get("more_body", False):
            return chunk if not chunks else b"".join([*chunks, chunk])
        chunks.append(chunk)


async def _read_into(request: Request, buffer: bytearray) -> bytearray:
    view, size = memoryview(buffer), 0
    async for chunk in request.stream():
        if size + len(chunk) > len(buffer):  # the HTTP parser stops at Content-Length: never
            raise BadRequest(f"the body is longer than its Content-Length {len(buffer)}")
        view[size : size + len(chunk)] = chunk
        size += len(chunk)
    view.release()
    if size != len(buffer):
        raise BadRequest(f"the body has {size} bytes; its Content-Length said {len(buffer)}")
    return buffer


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    """An optional JSON object body (empty means ``{}``)."""
    body = await read_body(request, limit)
    if not body.strip():
        return {}
    return parse_json_object(body)


def parse_json_object(data: bytes | bytearray | memoryview) -> dict[str, Any]:
    """A request body (or a V2 body's JSON header) that must be one JSON object; 400 if not."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BadRequest("the request body must be a JSON object")
    return doc


def header_int(request: Request, name: str) -> int | None:
    value = header(request, name.encode("latin-1"))
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()):
        raise BadRequest(f"header {name} must be a non-negative integer, got {value[:40]!r}")
    if len(value) > 19:  # past int64 (and int() refuses 4,300 digits and more)
        raise BadRequest(f"header {name} is too large")
    return int(value)


TIMEOUT_HEADER = b"x-request-timeout-ms"


def request_timeout(request: Request, parameters: dict[str, Any]) -> float | None:
    """The request's own deadline in seconds: the ``timeout`` parameter (microseconds, as
    tritonclient sends it) or the X-Request-Timeout-Ms header; the shorter wins."""
    timeouts: list[float] = []
    given = header(request, TIMEOUT_HEADER)
    if given is not None:
        try:
            milliseconds = float(given)
        except ValueError:
            milliseconds = -1.0
        if not milliseconds > 0 or milliseconds == float("inf"):
            raise BadRequest(
                f"header X-Request-Timeout-Ms must be a positive number, got {given!r}"
            )
        timeouts.append(milliseconds / 1000)
    parameter = parameter_timeout(parameters)
    if parameter is not None:
        timeouts.append(parameter)
    return min(timeouts) if timeouts else None
