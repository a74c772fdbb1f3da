"""``POST /v2/models/{name}[/versions/{version}]/infer``: the hot path."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelhost.api.codec import HEADER_LENGTH, decode_request, encode_response
from modelhost.api.deps import principal_of
from modelhost.api.metering import RequestMeter
from modelhost.api.requests import header_int, read_body, request_timeout, services_of
from modelhost.errors import ModelhostError

# How many requests ran in the same model call as this one (the console shows it).
BATCH_SIZE_HEADER = "x-batch-size"


async def infer(request: Request) -> Response:
    services = services_of(request)
    principal = principal_of(request)
    name, version = request.path_params["name"], request.path_params.get("version")
    meter = RequestMeter.start(services, principal, "infer", name)
    try:
        principal.require_model(name)
        # An unknown model is a 404, and a full queue a 503, whatever the body.
        ref = services.inference.resolve(name, version)
        meter.version = ref.version
        services.inference.check_room(ref, principal)
        body = await read_body(request, services.settings.max_request_bytes)
        meter.bytes_in = len(body)
        inference_request = decode_request(body, header_int(request, HEADER_LENGTH), name, version)
        outcome = await services.inference.infer(
            inference_request,
            timeout=request_timeout(request, inference_request.parameters),
            principal=principal,
        )
        meter.version, meter.batch_size = outcome.ref.version, outcome.batch_size
        binary_default = inference_request.parameters.get("binary_data_output") is True
        content, headers = encode_response(
            outcome.response, inference_request.outputs, binary_default
        )
        headers[BATCH_SIZE_HEADER] = str(outcome.batch_size)
        meter.status, meter.bytes_out = 200, len(content)
        return Response(content, headers=headers)
    except ModelhostError as exc:
        meter.status = exc.status
        raise
    finally:
        meter.finish()


routes = [
    Route("/v2/models/{name}/infer", infer, methods=["POST"]),
    Route("/v2/models/{name}/versions/{version}/infer", infer, methods=["POST"]),
]
