"""``POST /v2/models/{name}[/versions/{version}]/infer``: the hot path."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelhost.api.body_decoder import BodyDecoder
from modelhost.api.codec import HEADER_LENGTH, encode_response
from modelhost.api.metered import MeteredEndpoint
from modelhost.api.requests import header_int, read_body, request_timeout
from modelhost.api.responses import PreparedResponse
from modelhost.inference.service import InferenceService
from modelhost.observability.metering import Metering, RequestMeter

# How many requests ran in the same model call as this one (the console shows it).
BATCH_SIZE_HEADER = b"x-batch-size"


def routes(
    inference: InferenceService, metering: Metering, decoder: BodyDecoder, max_request_bytes: int
) -> list[Route]:
    async def infer(request: Request, meter: RequestMeter) -> Response:
        principal = meter.principal
        name, version = request.path_params["name"], request.path_params.get("version")
        principal.require_model(name)
        # An unknown model is a 404, and a full queue a 503, whatever the body.
        ref = inference.resolve(name, version)
        meter.version = ref.version
        inference.check_room(ref, principal)
        body = await read_body(request, max_request_bytes)
        inference_request = await decoder.infer_request(
            body, header_int(request, HEADER_LENGTH), name, version, ref.manifest
        )
        outcome = await inference.infer(
            inference_request,
            timeout=request_timeout(request, inference_request.parameters),
            principal=principal,
            ref=ref,
        )
        meter.version, meter.batch_size = outcome.ref.version, outcome.batch_size
        binary_default = inference_request.parameters.get("binary_data_output") is True
        content, headers = encode_response(
            outcome.response, inference_request.outputs, binary_default
        )
        headers.append((BATCH_SIZE_HEADER, b"%d" % outcome.batch_size))
        return PreparedResponse(content, headers)

    endpoint = MeteredEndpoint("infer", infer, metering)
    return [
        Route("/v2/models/{name}/infer", endpoint, methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}/infer", endpoint, methods=["POST"]),
    ]
