"""What every gRPC call goes through, as REST requests go through their middleware: the request
id, the count of calls in flight (a graceful shutdown waits for them), refusal while draining,
the caller's API key (``authorization: Bearer <key>`` metadata), one log line, and any error
turned into its gRPC status with the message REST would send.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

import grpc
from grpc import aio

from modelhost.auth.authenticator import Authenticator
from modelhost.auth.principal import ANONYMOUS_ADMIN, NOBODY, Principal
from modelhost.errors import ModelhostError, ServerShuttingDown
from modelhost.grpc.status import CLIENT_CLOSED, status_code, trailing_metadata
from modelhost.lifecycle import Lifecycle
from modelhost.observability import context as log_context
from modelhost.observability.ids import new_id

log = logging.getLogger("modelhost.access")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


@dataclass(slots=True)
class Call:
    """One call in progress: who makes it, and the HTTP-style status it ended with (what the
    metrics and usage records say of it, as they do of REST requests)."""

    principal: Principal
    context: aio.ServicerContext[Any, Any]
    status: int = 200

    def deadline_passed(self) -> bool:
        remaining = self.context.time_remaining()
        return remaining is not None and remaining <= 0


class CallGuard:
    """Makes the :class:`GuardedCall` each call of the servicers runs inside."""

    def __init__(
        self, service: str, lifecycle: Lifecycle, authenticator: Authenticator | None
    ) -> None:
        self.service = service  # the full name of the guarded service, for the log lines
        self.lifecycle = lifecycle
        self.authenticator = authenticator  # None: auth disabled, everyone is an admin

    def call(self, context: aio.ServicerContext[Any, Any], method: str) -> GuardedCall:
        return GuardedCall(self, context, method)


class GuardedCall:
    """``async with guard.call(context, "Method") as call:`` authenticates and yields the call;
    whatever happens inside, the call ends with the right status.

    Errors raised inside end the call with their status code: a ModelhostError's message as it
    is, anything else as INTERNAL (its traceback logged). ``__aexit__`` never swallows one.
    """

    def __init__(
        self, guard: CallGuard, context: aio.ServicerContext[Any, Any], method: str
    ) -> None:
        self._guard = guard
        self._context = context
        self._method = method
        self._request_id = _request_id(context)
        self._fields = log_context.begin(self._request_id)
        self._started = time.perf_counter()
        self._call = Call(NOBODY, context)  # until authenticated: no rights (fails closed)

    async def __aenter__(self) -> Call:
        lifecycle = self._guard.lifecycle
        lifecycle.request_started()
        try:
            if lifecycle.draining:
                raise ServerShuttingDown("the server is shutting down", retry_after=1.0)
            self._call.principal = await _authenticate(self._guard.authenticator, self._context)
        except BaseException as exc:
            await self.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return self._call

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, _tb: object
    ) -> None:
        context, call, request_id = self._context, self._call, self._request_id
        code = grpc.StatusCode.OK
        try:
            if exc is None:
                context.set_trailing_metadata((("x-request-id", request_id),))
            elif isinstance(exc, ModelhostError):
                call.status, code = exc.status, status_code(exc)
                if exc.status >= 500 and exc.status not in (503, 504):
                    log.error("gRPC %s failed: %s", self._method, exc.message)
                await context.abort(
                    code, exc.message, (("x-request-id", request_id), *trailing_metadata(exc))
                )
            elif isinstance(exc, asyncio.CancelledError | aio.AbortError):
                # The client went away or its deadline passed (gRPC cancels the handler), or
                # the call was already ended on purpose: nothing more can be sent.
                call.status = 504 if call.deadline_passed() else CLIENT_CLOSED
                code = grpc.StatusCode.CANCELLED
            elif isinstance(exc, Exception):
                # Our own bug: log the traceback, tell the client only that it happened.
                log.error("gRPC %s failed", self._method, exc_info=exc)
                call.status, code = 500, grpc.StatusCode.INTERNAL
                await context.abort(
                    code, f"internal error: {type(exc).__name__}", (("x-request-id", request_id),)
                )
        finally:
            self._guard.lifecycle.request_finished()
            self._log(code)

    def _log(self, code: grpc.StatusCode) -> None:
        if log.isEnabledFor(logging.INFO):
            log.info(
                "gRPC %s %s",
                self._method,
                code.name,
                extra={
                    "method": "gRPC",
                    "path": f"/{self._guard.service}/{self._method}",
                    "status": self._call.status,
                    "grpc_status": code.name,
                    "latency_ms": round((time.perf_counter() - self._started) * 1000, 3),
                    **self._fields,
                },
            )


async def _authenticate(
    authenticator: Authenticator | None, context: aio.ServicerContext[Any, Any]
) -> Principal:
    if authenticator is None:
        return ANONYMOUS_ADMIN
    header = next(
        (
            value
            for key, value in context.invocation_metadata() or ()
            if key == "authorization" and isinstance(value, str)
        ),
        None,
    )
    return await authenticator.authenticate(header)


def _request_id(context: aio.ServicerContext[Any, Any]) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "x-request-id":
            if isinstance(value, str) and _REQUEST_ID.match(value):
                return value
            break
    return new_id()
