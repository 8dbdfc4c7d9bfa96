"""The gRPC inference service: KServe's GRPCInferenceService on FUSEBOX_GRPC_PORT, served by the API
process on its own event loop (service/main.py starts it with the app), so that gRPC and HTTP requests for
one model meet in the same dynamic batches and share the loaded ONNX Runtime sessions.

Each method is a thin shell over service/inference/service.py, as each HTTP route is: the same API keys
(`authorization: Bearer <key>` metadata), tenancy, checks, batching and inference metrics. Service errors
become gRPC status codes with the same messages the HTTP answers carry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial, wraps
from typing import Any

import grpc
from fastapi import status
from google.protobuf.message import DecodeError
from starlette.concurrency import run_in_threadpool

from service import __version__
from service.core.config import Settings
from service.core.database import get_session_factory
from service.core.errors import BadRequest, ServiceError
from service.core.metrics import record_grpc_request
from service.core.request_guard import bearer_token
from service.inference import service
from service.inference.grpc_v2 import messages as m
from service.inference.grpc_v2.wire import decode_infer, encode_infer, read_view
from service.inference.protocol import BINARY_EXTENSION
from service.inference.runtime import RuntimeCache
from service.tenants.dependencies import authenticated_tenant

log = logging.getLogger("fusebox.grpc")

MISSING_KEY = "this method needs an API key: send the metadata 'authorization: Bearer <key>'"
_CODES = {
    status.HTTP_400_BAD_REQUEST: grpc.StatusCode.INVALID_ARGUMENT,
    status.HTTP_401_UNAUTHORIZED: grpc.StatusCode.UNAUTHENTICATED,
    status.HTTP_404_NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    status.HTTP_409_CONFLICT: grpc.StatusCode.FAILED_PRECONDITION,
    status.HTTP_413_CONTENT_TOO_LARGE: grpc.StatusCode.RESOURCE_EXHAUSTED,
    status.HTTP_422_UNPROCESSABLE_CONTENT: grpc.StatusCode.INVALID_ARGUMENT,
    status.HTTP_503_SERVICE_UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
}
Method = Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[Any]]


class Unauthenticated(ServiceError):
    status_code = status.HTTP_401_UNAUTHORIZED


class _Malformed:
    """What the deserializer hands on for bytes that are no message of the method's type: grpcio would
    answer a deserializer's exception with INTERNAL, as if the server had failed."""

    def __init__(self, expected: str) -> None:
        self.expected = expected


def _parse(message_type: Any, data: bytes) -> Any:
    try:
        return message_type.FromString(data)
    except DecodeError:
        return _Malformed(message_type.DESCRIPTOR.name)


def _rpc(method: Method) -> Method:
    """Service errors as status codes, and every call counted by method and code."""

    @wraps(method)
    async def answer(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            if isinstance(request, _Malformed):
                raise BadRequest(f"the request is not a valid {request.expected} message (protocol buffers)")
            return await method(self, request, context)
        except ServiceError as error:
            code = _CODES.get(error.status_code, grpc.StatusCode.INVALID_ARGUMENT)
            await context.abort(code, error.message)
        except Exception:
            code = grpc.StatusCode.INTERNAL
            log.exception("gRPC %s failed", method.__name__)
            await context.abort(code, "internal error: the server's log has the details")
        finally:
            record_grpc_request(method.__name__, code.name, time.perf_counter() - started)

    return answer


class InferenceServicer:
    def __init__(self, settings: Settings, runtimes: RuntimeCache) -> None:
        self.settings = settings
        self.runtimes = runtimes

    @_rpc
    async def ServerLive(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return m.ServerLiveResponse(live=True)

    @_rpc
    async def ServerReady(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await run_in_threadpool(_with_session, service.check_database)
        return m.ServerReadyResponse(ready=True)

    @_rpc
    async def ServerMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return m.ServerMetadataResponse(name="fusebox", version=__version__, extensions=[BINARY_EXTENSION])

    @_rpc
    async def ModelMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        tenant_id = await _tenant(context)
        found = await run_in_threadpool(
            _with_session, service.metadata, self.runtimes, tenant_id, request.name, request.version or None
        )
        answer = m.ModelMetadataResponse(name=found.name, versions=found.versions, platform="onnxruntime_onnx")
        for tensors, into in ((found.inputs, answer.inputs), (found.outputs, answer.outputs)):
            for tensor in tensors:
                into.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
        return answer

    @_rpc
    async def ModelReady(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        tenant_id = await _tenant(context)
        ready = await run_in_threadpool(
            _with_session, service.ready, self.runtimes, tenant_id, request.name, request.version or None
        )
        return m.ModelReadyResponse(ready=ready)

    @_rpc
    async def ModelInfer(self, request: bytes, context: grpc.aio.ServicerContext) -> Any:
        """`request` comes as bytes (wire.py reads it)."""
        tenant_id = await _tenant(context)
        view = read_view(request)
        if not view.model_name:
            raise BadRequest("the request needs a 'model_name'")
        decode = partial(decode_infer, view)
        return await service.serve(
            self.runtimes,
            self.settings,
            tenant_id,
            view.model_name,
            view.model_version or None,
            decode,
            len(request),
            encode_infer,
        )


_METHODS = {
    "ServerLive": (m.ServerLiveRequest, m.ServerLiveResponse),
    "ServerReady": (m.ServerReadyRequest, m.ServerReadyResponse),
    "ServerMetadata": (m.ServerMetadataRequest, m.ServerMetadataResponse),
    "ModelMetadata": (m.ModelMetadataRequest, m.ModelMetadataResponse),
    "ModelReady": (m.ModelReadyRequest, m.ModelReadyResponse),
    "ModelInfer": (None, m.ModelInferResponse),
}
"""Request and response types; None: the request is handed over as bytes."""


def handler(servicer: InferenceServicer) -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        m.SERVICE,
        {
            name: grpc.unary_unary_rpc_method_handler(
                getattr(servicer, name),
                request_deserializer=partial(_parse, request_type) if request_type else None,
                response_serializer=response_type.SerializeToString,
            )
            for name, (request_type, response_type) in _METHODS.items()
        },
    )


async def start_server(settings: Settings, runtimes: RuntimeCache) -> grpc.aio.Server:
    """Listening when this returns. With several API processes, each binds the port (SO_REUSEPORT, grpcio's
    default on Linux) and the kernel spreads the connections among them."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", settings.inference_max_body_bytes),
            ("grpc.max_send_message_length", -1),
            ("grpc.so_reuseport", 1),
        ]
    )
    server.add_generic_rpc_handlers((handler(InferenceServicer(settings, runtimes)),))
    address = f"{settings.grpc_host}:{settings.grpc_port}"
    if server.add_insecure_port(address) == 0:
        raise RuntimeError(f"gRPC could not listen on {address}: FUSEBOX_GRPC_PORT names a port in use")
    await server.start()
    log.info("gRPC inference on %s", address)
    return server


async def _tenant(context: grpc.aio.ServicerContext) -> str:
    key = None
    for name, value in context.invocation_metadata() or ():
        if name == "authorization" and isinstance(value, str):
            key = bearer_token(value)
    return await authenticated_tenant(key, missing=MISSING_KEY, refuse=Unauthenticated)


def _with_session(action: Callable[..., Any], *arguments: Any) -> Any:
    with get_session_factory()() as session:
        return action(session, *arguments)
