"""``POST /v2/models/{name}[/versions/{version}]/infer``: the hot path."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelhost.api.requests import header_int, read_body, request_timeout, services_of
from modelhost.inference.codec import HEADER_LENGTH, decode_request, encode_response


async def infer(request: Request) -> Response:
    services = services_of(request)
    name, version = request.path_params["name"], request.path_params.get("version")
    services.inference.resolve(name, version)  # an unknown model is a 404 whatever the body
    body = await read_body(request, services.settings.max_request_bytes)
    inference_request = decode_request(body, header_int(request, HEADER_LENGTH), name, version)
    outcome = await services.inference.infer(
        inference_request, timeout=request_timeout(request, inference_request.parameters)
    )
    binary_default = inference_request.parameters.get("binary_data_output") is True
    content, headers = encode_response(outcome.response, inference_request.outputs, binary_default)
    return Response(content, headers=headers)


routes = [
    Route("/v2/models/{name}/infer", infer, methods=["POST"]),
    Route("/v2/models/{name}/versions/{version}/infer", infer, methods=["POST"]),
]
