"""``POST /v1/embeddings``: the OpenAI embeddings API, so OpenAI SDK users call modelhost as is.

It serves models whose model.yaml says ``task: embedding`` (one BYTES input of texts, the first
output the embeddings) through the same inference service as V2 requests: same cache, batcher,
deadlines and limits. Inputs beyond the model's max_batch_size are split into several requests.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelhost.api.body_decoder import BodyDecoder
from modelhost.api.metered import MeteredEndpoint
from modelhost.api.requests import read_body, request_timeout
from modelhost.api.responses import json_response
from modelhost.errors import BadRequest
from modelhost.inference.service import InferenceService
from modelhost.inference.types import InferenceRequest, RequestedOutput, Tensor
from modelhost.manifest import Manifest
from modelhost.observability.metering import Metering, RequestMeter

TOKEN_COUNT_OUTPUT = "token_count"


def routes(
    inference: InferenceService, metering: Metering, decoder: BodyDecoder, max_request_bytes: int
) -> list[Route]:
    async def embeddings(request: Request, meter: RequestMeter) -> Response:
        body = await decoder.json_object(await read_body(request, max_request_bytes))
        return await _embeddings(request, body, meter, inference)

    return [
        Route(
            "/v1/embeddings",
            MeteredEndpoint("embeddings", embeddings, metering),
            methods=["POST"],
        )
    ]


async def _embeddings(
    request: Request, body: dict[str, Any], meter: RequestMeter, inference: InferenceService
) -> Response:
    principal = meter.principal
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise BadRequest("'model' must name an embedding model")
    meter.name_model(name)
    principal.require_model(name)
    texts = _texts(body.get("input"))
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise BadRequest("'encoding_format' must be 'float' or 'base64'")
    if body.get("dimensions") is not None:
        raise BadRequest("'dimensions' is not supported: the model's size is fixed")
    ref = inference.resolve(name, None)
    meter.version = ref.version
    manifest = ref.manifest
    _check_embedding_model(name, manifest)

    step = manifest.max_batch_size or 1
    chunks = [texts[i : i + step] for i in range(0, len(texts), step)]
    timeout = request_timeout(request, {})
    # One request, served whole or refused whole: a refused chunk cancels the others.
    outcomes = await inference.infer_all(
        [_request(name, manifest, chunk) for chunk in chunks], timeout=timeout, principal=principal
    )
    meter.batch_size = max(outcome.batch_size for outcome in outcomes)
    vectors: list[np.ndarray] = []
    tokens = 0
    for outcome in outcomes:
        outputs = {tensor.name: tensor.data for tensor in outcome.response.outputs}
        vectors.extend(np.asarray(outputs[manifest.outputs[0].name], dtype=np.float32))
        if TOKEN_COUNT_OUTPUT in outputs:
            tokens += int(outputs[TOKEN_COUNT_OUTPUT].sum())
    data = [
        {"object": "embedding", "index": index, "embedding": _encode(vector, encoding)}
        for index, vector in enumerate(vectors)
    ]
    return json_response(
        {
            "object": "list",
            "data": data,
            "model": name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return value
    raise BadRequest("'input' must be a string or a non-empty list of strings")


def _check_embedding_model(name: str, manifest: Manifest) -> None:
    if manifest.task != "embedding":
        raise BadRequest(
            f"model {name!r} is not an embedding model (its task is {manifest.task!r})"
        )
    if len(manifest.inputs) != 1 or manifest.inputs[0].datatype != "BYTES":
        raise BadRequest(f"model {name!r} does not take one BYTES input of texts")


def _request(name: str, manifest: Manifest, texts: list[str]) -> InferenceRequest:
    array = np.empty(len(texts), dtype=object)
    array[:] = [text.encode("utf-8") for text in texts]
    wanted = [RequestedOutput(manifest.outputs[0].name)]
    if manifest.output(TOKEN_COUNT_OUTPUT) is not None:
        wanted.append(RequestedOutput(TOKEN_COUNT_OUTPUT))
    return InferenceRequest(
        model_name=name,
        model_version=None,
        inputs=[Tensor(manifest.inputs[0].name, "BYTES", array)],
        outputs=wanted,
    )


def _encode(vector: np.ndarray, encoding: str) -> Any:
    if encoding == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return vector
