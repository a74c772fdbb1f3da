"""``inference.GRPCInferenceService``: the V2 protocol's RPCs over the same services as REST.

Each RPC translates its message, calls the service REST calls, and translates the answer back;
:class:`~modelhost.grpc.calls.CallGuard` does what every call needs (key, draining, errors as
status codes, the log line). ModelInfer is also metered like REST's infer route, with the
endpoint label ``grpc``; its messages arrive and leave as bytes so the meter counts exactly what
was received and sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from google.protobuf.message import DecodeError
from grpc import aio

from modelhost.cache.entry import ModelState
from modelhost.catalog.model_catalog import ModelCatalog
from modelhost.errors import BadRequest, ModelhostError
from modelhost.grpc.calls import Call, CallGuard
from modelhost.grpc.codec import decode_request, encode_response, parameters_of
from modelhost.grpc.generated import grpc_predict_v2_pb2 as pb
from modelhost.grpc.model_config import model_config
from modelhost.grpc.status import CLIENT_CLOSED
from modelhost.inference.deadline import parameter_timeout
from modelhost.inference.metadata import (
    EXTENSIONS,
    SERVER_NAME,
    SERVER_VERSION,
    model_metadata,
)
from modelhost.inference.repository_extension import RepositoryService
from modelhost.inference.service import InferenceService
from modelhost.lifecycle import Lifecycle
from modelhost.observability.metering import Metering, RequestMeter

SERVICE = "inference.GRPCInferenceService"
ENDPOINT = "grpc"  # the metrics' endpoint label of gRPC inference
# Messages bigger than this are parsed and built in a worker thread, off the event loop.
_OFF_LOOP_BYTES = 1 << 20

Context = aio.ServicerContext[Any, Any]
_T = TypeVar("_T")


class InferenceServicer:
    """The RPCs of ``inference.GRPCInferenceService``; :meth:`handlers` registers them."""

    def __init__(
        self,
        *,
        inference: InferenceService,
        repository: RepositoryService,
        catalog: ModelCatalog,
        lifecycle: Lifecycle,
        guard: CallGuard,
        metering: Metering,
    ) -> None:
        self._inference = inference
        self._repository = repository
        self._catalog = catalog
        self._lifecycle = lifecycle
        self._guard = guard
        self._metering = metering

    def handlers(self) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
        def unary(behaviour: Callable[..., Any], request: Any, response: Any) -> Any:
            return grpc.unary_unary_rpc_method_handler(
                behaviour,
                request_deserializer=request.FromString,
                response_serializer=response.SerializeToString,
            )

        return {
            "ServerLive": unary(self.server_live, pb.ServerLiveRequest, pb.ServerLiveResponse),
            "ServerReady": unary(self.server_ready, pb.ServerReadyRequest, pb.ServerReadyResponse),
            "ModelReady": unary(self.model_ready, pb.ModelReadyRequest, pb.ModelReadyResponse),
            "ServerMetadata": unary(
                self.server_metadata, pb.ServerMetadataRequest, pb.ServerMetadataResponse
            ),
            "ModelMetadata": unary(
                self.model_metadata, pb.ModelMetadataRequest, pb.ModelMetadataResponse
            ),
            # Bytes in, bytes out: the handler parses and serializes (and meters both).
            "ModelInfer": grpc.unary_unary_rpc_method_handler(self.model_infer),
            "ModelConfig": unary(self.model_config, pb.ModelConfigRequest, pb.ModelConfigResponse),
            "RepositoryIndex": unary(
                self.repository_index, pb.RepositoryIndexRequest, pb.RepositoryIndexResponse
            ),
            "RepositoryModelLoad": unary(
                self.repository_load, pb.RepositoryModelLoadRequest, pb.RepositoryModelLoadResponse
            ),
            "RepositoryModelUnload": unary(
                self.repository_unload,
                pb.RepositoryModelUnloadRequest,
                pb.RepositoryModelUnloadResponse,
            ),
        }

    # -- health and metadata --------------------------------------------------------------------

    async def server_live(
        self, request: pb.ServerLiveRequest, context: Context
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)  # no key needed, as /v2/health/live

    async def server_ready(
        self, request: pb.ServerReadyRequest, context: Context
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self._lifecycle.ready)

    async def server_metadata(
        self, request: pb.ServerMetadataRequest, context: Context
    ) -> pb.ServerMetadataResponse:
        async with self._guard.call(context, "ServerMetadata"):
            return pb.ServerMetadataResponse(
                name=SERVER_NAME, version=SERVER_VERSION, extensions=EXTENSIONS
            )

    async def model_ready(
        self, request: pb.ModelReadyRequest, context: Context
    ) -> pb.ModelReadyResponse:
        async with self._guard.call(context, "ModelReady"):
            # An unknown model is NOT_FOUND; a known one not loaded is ready=false.
            state = self._repository.state(request.name, request.version or None)
            return pb.ModelReadyResponse(ready=state is ModelState.READY)

    async def model_metadata(
        self, request: pb.ModelMetadataRequest, context: Context
    ) -> pb.ModelMetadataResponse:
        async with self._guard.call(context, "ModelMetadata"):
            found = model_metadata(self._catalog, request.name, request.version or None)
            answer = pb.ModelMetadataResponse(
                name=found.name, versions=found.versions, platform=found.platform
            )
            for specs, tensors in ((found.inputs, answer.inputs), (found.outputs, answer.outputs)):
                for spec in specs:
                    tensors.add(name=spec.name, datatype=spec.datatype, shape=spec.shape)
            return answer

    async def model_config(
        self, request: pb.ModelConfigRequest, context: Context
    ) -> pb.ModelConfigResponse:
        async with self._guard.call(context, "ModelConfig"):
            ref = self._catalog.resolve(request.name, request.version or None)
            return pb.ModelConfigResponse(config=model_config(ref))

    # -- inference ------------------------------------------------------------------------------

    async def model_infer(self, data: bytes, context: Context) -> bytes:
        async with self._guard.call(context, "ModelInfer") as call:
            meter = self._metering.start(call.principal, ENDPOINT)
            status, answer = 500, b""
            try:
                answer = await self._infer(data, call, meter)
                status = 200
                return answer
            except ModelhostError as exc:
                status = exc.status
                raise
            except asyncio.CancelledError:
                status = 504 if call.deadline_passed() else CLIENT_CLOSED
                raise
            finally:
                meter.finish(status=status, bytes_in=len(data), bytes_out=len(answer))

    async def _infer(self, data: bytes, call: Call, meter: RequestMeter) -> bytes:
        message = await _off_loop_if_large(len(data), lambda: _parse(data))
        name = message.model_name
        meter.name_model(name)
        call.principal.require_model(name)
        # An unknown model is NOT_FOUND, and a full queue UNAVAILABLE, before any decoding.
        ref = self._inference.resolve(name, message.model_version or None)
        meter.version = ref.version
        self._inference.check_room(ref)
        request = await _off_loop_if_large(len(data), lambda: decode_request(message))
        outcome = await self._inference.infer(
            request,
            timeout=_timeout(call.context, request.parameters),
            principal=call.principal,
        )
        meter.version, meter.batch_size = outcome.ref.version, outcome.batch_size
        typed = not message.raw_input_contents  # answer in the form the client chose

        def serialize() -> bytes:
            answer = encode_response(outcome.response, typed=typed, batch_size=outcome.batch_size)
            return answer.SerializeToString()

        return await _off_loop_if_large(len(data), serialize)

    # -- the model repository extension ---------------------------------------------------------

    async def repository_index(
        self, request: pb.RepositoryIndexRequest, context: Context
    ) -> pb.RepositoryIndexResponse:
        async with self._guard.call(context, "RepositoryIndex"):
            entries = await self._repository.index(ready_only=request.ready)
            answer = pb.RepositoryIndexResponse()
            for entry in entries:
                answer.models.add(
                    name=entry.name, version=entry.version, state=entry.state, reason=entry.reason
                )
            return answer

    async def repository_load(
        self, request: pb.RepositoryModelLoadRequest, context: Context
    ) -> pb.RepositoryModelLoadResponse:
        async with self._guard.call(context, "RepositoryModelLoad") as call:
            call.principal.require_admin()
            name, version = _repository_target(request)
            await self._repository.load(name, version)
            return pb.RepositoryModelLoadResponse(model_name=name, isLoaded=True)

    async def repository_unload(
        self, request: pb.RepositoryModelUnloadRequest, context: Context
    ) -> pb.RepositoryModelUnloadResponse:
        async with self._guard.call(context, "RepositoryModelUnload") as call:
            call.principal.require_admin()
            name, version = _repository_target(request)
            await self._repository.unload(name, version)
            return pb.RepositoryModelUnloadResponse(model_name=name, isUnloaded=True)


def _parse(data: bytes) -> pb.ModelInferRequest:
    try:
        return pb.ModelInferRequest.FromString(data)
    except DecodeError:
        raise BadRequest("the request is not a valid ModelInferRequest message") from None


async def _off_loop_if_large(size: int, work: Callable[[], _T]) -> _T:
    """``work()`` here when the message is small; in a worker thread when it is big."""
    if size < _OFF_LOOP_BYTES:
        return work()
    return await asyncio.to_thread(work)


def _timeout(context: Context, parameters: dict[str, Any]) -> float | None:
    """The request's deadline in seconds: the call's gRPC deadline, or the ``timeout``
    parameter (microseconds, as over REST) when that is shorter."""
    given = (context.time_remaining(), parameter_timeout(parameters))
    timeouts = [max(0.0, timeout) for timeout in given if timeout is not None]
    return min(timeouts) if timeouts else None


def _repository_target(
    request: pb.RepositoryModelLoadRequest | pb.RepositoryModelUnloadRequest,
) -> tuple[str, str | None]:
    """The model (and version) a load or unload names.

    Triton's clients put the model in ``model_name`` (field 2); KServe's put it in field 1,
    which Triton calls ``repository_name``. modelhost has a single repository, so a request with
    only field 1 set is KServe's.
    """
    name = request.model_name or request.repository_name
    if not name:
        raise BadRequest("name the model to load or unload in model_name")
    version = parameters_of(request.parameters).get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, str | int)):
        raise BadRequest("parameter 'version' must be a string or an integer")
    return name, None if version is None else str(version)
