"""The REST side of the metering seam (:mod:`modelhost.observability.metering`).

A metered endpoint is a handler ``(request, meter) -> Response`` wrapped in a
:class:`MeteredEndpoint`. The wrapper starts the meter, turns an error the handler raises into
its JSON answer right here, inside the meter, and finishes the meter with the status and the body
bytes that actually went out and the body bytes actually read. No route records anything by
hand, so no route can get it wrong.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from modelhost.api.deps import principal_of
from modelhost.api.errors import response_for
from modelhost.observability.metering import Metering, RequestMeter

MeteredHandler = Callable[[Request, RequestMeter], Awaitable[Response]]


class MeteredEndpoint:
    """An ASGI endpoint (give it to a Starlette ``Route``) that meters ``handler``.

    ``endpoint`` is the metrics' endpoint label; the model is the path's ``{name}`` unless the
    handler names it (``meter.name_model``).
    """

    def __init__(self, endpoint: str, handler: MeteredHandler, metering: Metering) -> None:
        self._endpoint = endpoint
        self._handler = handler
        self._metering = metering

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        status, bytes_in, bytes_out = 500, 0, 0

        async def counted_receive() -> Message:
            nonlocal bytes_in
            message = await receive()
            if message["type"] == "http.request":
                bytes_in += len(message.get("body", b""))
            return message

        async def counted_send(message: Message) -> None:
            nonlocal status, bytes_out
            await send(message)
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                bytes_out += len(message.get("body", b""))

        request = Request(scope, counted_receive)
        meter = self._metering.start(
            principal_of(request), self._endpoint, scope.get("path_params", {}).get("name", "")
        )
        try:
            try:
                response = await self._handler(request, meter)
            except Exception as exc:
                response = await response_for(request, exc)
            body = getattr(response, "body", None)
            if isinstance(body, bytes):  # all of it in one message: no need to count the sends
                await response(scope, counted_receive, send)
                status, bytes_out = response.status_code, len(body)
            else:
                await response(scope, counted_receive, counted_send)
        finally:
            meter.finish(status=status, bytes_in=bytes_in, bytes_out=bytes_out)
