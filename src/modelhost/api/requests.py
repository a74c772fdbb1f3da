"""Reading what a client sent, within the limits the server sets."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from modelhost.errors import BadRequest, PayloadTooLarge
from modelhost.inference.deadline import parameter_timeout
from modelhost.units import format_bytes


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing (413) as soon as it is known to be over ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"the body is {format_bytes(int(declared))}; the limit is {format_bytes(limit)}"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is over the limit of {format_bytes(limit)}")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    """An optional JSON object body (empty means ``{}``)."""
    body = await read_body(request, limit)
    if not body.strip():
        return {}
    return parse_json_object(body)


def parse_json_object(data: bytes | memoryview) -> dict[str, Any]:
    """A request body (or a V2 body's JSON header) that must be one JSON object; 400 if not."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BadRequest("the request body must be a JSON object")
    return doc


def header_int(request: Request, name: str) -> int | None:
    value = request.headers.get(name)
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()):
        raise BadRequest(f"header {name} must be a non-negative integer, got {value!r}")
    return int(value)


TIMEOUT_HEADER = "x-request-timeout-ms"


def request_timeout(request: Request, parameters: dict[str, Any]) -> float | None:
    """The request's own deadline in seconds: the ``timeout`` parameter (microseconds, as
    tritonclient sends it) or the X-Request-Timeout-Ms header; the shorter wins."""
    timeouts: list[float] = []
    header = request.headers.get(TIMEOUT_HEADER)
    if header is not None:
        try:
            milliseconds = float(header)
        except ValueError:
            milliseconds = -1.0
        if not milliseconds > 0 or milliseconds == float("inf"):
            raise BadRequest(
                f"header X-Request-Timeout-Ms must be a positive number, got {header!r}"
            )
        timeouts.append(milliseconds / 1000)
    parameter = parameter_timeout(parameters)
    if parameter is not None:
        timeouts.append(parameter)
    return min(timeouts) if timeouts else None
