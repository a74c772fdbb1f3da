"""Model metadata, readiness and configuration, with and without ``/versions/{version}``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelhost.api.deps import principal_of
from modelhost.api.errors import error_response
from modelhost.api.responses import json_response
from modelhost.cache.entry import ModelState
from modelhost.catalog.model_catalog import ModelCatalog
from modelhost.inference.metadata import model_metadata as metadata_of
from modelhost.inference.repository_extension import RepositoryService
from modelhost.manifest import TensorSpec


def _tensor(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "datatype": spec.datatype, "shape": list(spec.shape)}


def routes(catalog: ModelCatalog, repository: RepositoryService) -> list[Route]:
    async def model_metadata(request: Request) -> Response:
        name, version = request.path_params["name"], request.path_params.get("version")
        principal_of(request).require_model(name)
        found = metadata_of(catalog, name, version)
        return json_response(
            {
                "name": found.name,
                "versions": found.versions,
                "platform": found.platform,
                "inputs": [_tensor(spec) for spec in found.inputs],
                "outputs": [_tensor(spec) for spec in found.outputs],
            }
        )

    async def model_ready(request: Request) -> Response:
        name, version = request.path_params["name"], request.path_params.get("version")
        principal_of(request).require_model(name)
        state = repository.state(name, version)
        if state is not ModelState.READY:
            # The protocol: 200 means ready, a 4xx means not ready.
            return error_response(400, f"model {name!r} is not ready ({state.value})", "not_ready")
        return json_response({"name": name, "ready": True})

    async def model_config(request: Request) -> Response:
        name = request.path_params["name"]
        principal_of(request).require_model(name)
        ref = catalog.resolve(name, request.path_params.get("version"))
        config = ref.manifest.model_dump(mode="json", exclude_none=True)
        return json_response({"name": ref.name, "version": str(ref.version), **config})

    return [
        Route("/v2/models/{name}", model_metadata, methods=["GET"]),
        Route("/v2/models/{name}/versions/{version}", model_metadata, methods=["GET"]),
        Route("/v2/models/{name}/ready", model_ready, methods=["GET"]),
        Route("/v2/models/{name}/versions/{version}/ready", model_ready, methods=["GET"]),
        Route("/v2/models/{name}/config", model_config, methods=["GET"]),
        Route("/v2/models/{name}/versions/{version}/config", model_config, methods=["GET"]),
    ]
