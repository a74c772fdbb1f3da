"""The inference routes, served ahead of Starlette's own middleware and router.

Starlette sends every request through ``ServerErrorMiddleware`` and ``ExceptionMiddleware``
(each wrapping ``send`` in a coroutine of its own) and then its router, which tries the routes'
patterns in turn: about a tenth of a small batched inference request's CPU (252 -> 225 us
with this module, measured side by side with ``bench/ab_commits.py``). The hot routes are
metered endpoints (:mod:`modelhost.api.metered`), which turn every error into its JSON answer
themselves, so they need neither middleware. A request whose method and path match one goes
straight to its endpoint; every other request, a GET on the same path included (its 405 comes
from the router), goes on to the app.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send


class HotRoutes:
    """ASGI middleware: ``routes`` answered first, with the path parameters Starlette would
    give them (the routes' own compiled patterns and convertors)."""

    def __init__(self, app: ASGIApp, routes: Sequence[Route]) -> None:
        self.app = app
        self._routes = [
            (route.path_regex, route.param_convertors, frozenset(route.methods or ()), route.app)
            for route in routes
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path, method = scope["path"], scope["method"]
            for pattern, convertors, methods, endpoint in self._routes:
                match = pattern.match(path)
                if match is not None and method in methods:
                    scope["path_params"] = {
                        name: convertors[name].convert(value)
                        for name, value in match.groupdict().items()
                    }
                    await endpoint(scope, receive, send)
                    return
        await self.app(scope, receive, send)
