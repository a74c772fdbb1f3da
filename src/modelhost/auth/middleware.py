"""Authentication as plain ASGI middleware: every request but the public ones needs a key."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from modelhost.api.errors import error_response
from modelhost.auth.authenticator import Authenticator
from modelhost.auth.principal import ANONYMOUS_ADMIN
from modelhost.errors import ModelhostError

# Probes from the load balancer and kubelet carry no key.
PUBLIC_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})


class AuthMiddleware:
    """Puts the caller's Principal in ``request.state.principal`` or answers 401 itself."""

    def __init__(
        self,
        app: ASGIApp,
        authenticator: Authenticator | None,
        public_paths: frozenset[str],
        public_prefixes: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.authenticator = authenticator  # None: auth disabled, everyone is an anonymous admin
        self.public_paths = public_paths
        self.public_prefixes = public_prefixes  # static files that hold no data (the console)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] in self.public_paths
            or scope["path"].startswith(self.public_prefixes)
        ):
            await self.app(scope, receive, send)
            return
        authenticator = self.authenticator
        if authenticator is None:
            principal = ANONYMOUS_ADMIN
        else:
            header = None
            for name, value in scope["headers"]:
                if name == b"authorization":
                    header = value.decode("latin-1")
                    break
            try:
                cached = authenticator.authenticate_cached(header)
                principal = cached or await authenticator.authenticate(header)
            except ModelhostError as exc:
                response = error_response(exc.status, exc.message, exc.code, exc.retry_after)
                if exc.status == 401:
                    response.headers["www-authenticate"] = 'Bearer realm="modelhost"'
                await response(scope, receive, send)
                return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)
