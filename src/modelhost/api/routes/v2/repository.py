"""``/v2/repository/...``: the KServe/Triton model repository extension over REST (index, load,
unload); the work is :mod:`modelhost.inference.repository_extension`'s."""

from __future__ import annotations

from dataclasses import asdict

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelhost.api.deps import principal_of
from modelhost.api.requests import read_json_object
from modelhost.api.responses import json_response
from modelhost.errors import BadRequest
from modelhost.inference.repository_extension import RepositoryService

_CONTROL_BODY_LIMIT = 1 << 20


def routes(repository: RepositoryService) -> list[Route]:
    async def index(request: Request) -> Response:
        body = await read_json_object(request, _CONTROL_BODY_LIMIT)
        ready_only = body.get("ready", False)
        if not isinstance(ready_only, bool):
            raise BadRequest("'ready' must be true or false")
        principal = principal_of(request)
        entries = await repository.index(ready_only=ready_only)
        # A key limited to some models sees only those.
        return json_response([asdict(e) for e in entries if principal.may_use(e.name)])

    async def load(request: Request) -> Response:
        principal_of(request).require_admin()
        version = await _version_parameter(request)
        await repository.load(request.path_params["name"], version)
        return json_response({})

    async def unload(request: Request) -> Response:
        principal_of(request).require_admin()
        version = await _version_parameter(request)
        await repository.unload(request.path_params["name"], version)
        return json_response({})

    return [
        Route("/v2/repository/index", index, methods=["POST"]),
        Route("/v2/repository/models/{name}/load", load, methods=["POST"]),
        Route("/v2/repository/models/{name}/unload", unload, methods=["POST"]),
    ]


async def _version_parameter(request: Request) -> str | None:
    """``{"parameters": {"version": "2"}}`` picks a version; none means the highest (load) or
    all loaded versions (unload)."""
    body = await read_json_object(request, _CONTROL_BODY_LIMIT)
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise BadRequest("'parameters' must be an object")
    version = parameters.get("version")
    if version is not None and not isinstance(version, str | int):
        raise BadRequest("parameters.version must be a string or an integer")
    return None if version is None else str(version)
