"""JSON responses written with orjson (numpy-aware, and faster than the stdlib encoder), and
responses whose headers come ready for the wire."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


def json_response(content: Any, status_code: int = 200) -> Response:
    return Response(
        orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status_code,
        media_type="application/json",
    )


class PreparedResponse(Response):
    """A response whose headers are given as the server writes them (lower-case names, bytes):
    the inference route skips Starlette's header assembly, a few microseconds a request."""

    def __init__(
        self, body: bytes, raw_headers: list[tuple[bytes, bytes]], status_code: int = 200
    ) -> None:
        self.body = body
        self.status_code = status_code
        self.background = None
        self.raw_headers = [(b"content-length", b"%d" % len(body)), *raw_headers]
