"""The outermost middleware answers what nothing inside it did: the hot routes run outside
Starlette's own error middleware (see ``modelhost.app.ModelhostApp``)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from modelhost.api.middleware import RequestContextMiddleware
from modelhost.lifecycle import Lifecycle


async def broken_before_answering(scope: Scope, receive: Receive, send: Send) -> None:
    raise LookupError("a bug of ours")


async def broken_while_answering(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    raise LookupError("a bug of ours, after the status went out")


def _post(app: RequestContextMiddleware) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://modelhost") as client:
            return await client.post("/v2/models/m/infer", headers={"x-request-id": "req-1"})

    return asyncio.run(call())


def test_an_error_nothing_answered_is_a_json_500_with_the_request_id() -> None:
    lifecycle = Lifecycle()
    response = _post(RequestContextMiddleware(broken_before_answering, lifecycle))
    assert response.status_code == 500
    assert response.json() == {"error": "internal error: LookupError", "code": "internal"}
    assert response.headers["x-request-id"] == "req-1"
    assert lifecycle.in_flight == 0


def test_an_error_after_the_answer_began_is_not_answered_twice() -> None:
    lifecycle = Lifecycle()
    with pytest.raises(LookupError):
        _post(RequestContextMiddleware(broken_while_answering, lifecycle))
    assert lifecycle.in_flight == 0
