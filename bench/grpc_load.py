"""gRPC load generation: one prepared ModelInferRequest, serialized once, sent over and over on a connection
of its own per client (grpc.aio), answers left as bytes, so that the client does as little as the HTTP one
in bench/http_load.py."""

from __future__ import annotations

import time

import grpc
import numpy as np

from bench.http_load import ClientRun
from service.inference.grpc_v2.messages import SERVICE, ModelInferRequest

METHOD = f"/{SERVICE}/ModelInfer"
OPTIONS = [
    # Without this, grpcio shares one connection between all channels to the same address: each client
    # gets its own, as each HTTP client does, so that several server processes each get some.
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
]


def infer_message(name: str, feeds: dict[str, np.ndarray]) -> bytes:
    """A serialized ModelInferRequest with every input in raw_input_contents (tritonclient's default form)."""
    request = ModelInferRequest(model_name=name)
    for key, values in feeds.items():
        datatype = "INT64" if values.dtype == np.int64 else "FP32"
        request.inputs.add(name=key, datatype=datatype, shape=list(values.shape))
        request.raw_input_contents.append(np.ascontiguousarray(values).tobytes())
    return bytes(request.SerializeToString())


async def run_grpc_client(
    target: str, message: bytes, api_key: str, deadline: float, measured_from: float
) -> ClientRun:
    """Sends `message` until `deadline`; latencies of the calls started after `measured_from`."""
    run = ClientRun()
    metadata = (("authorization", f"Bearer {api_key}"),)
    async with grpc.aio.insecure_channel(target, options=OPTIONS) as channel:
        call = channel.unary_unary(METHOD)
        while (started := time.perf_counter()) < deadline:
            try:
                await call(message, metadata=metadata)
            except grpc.aio.AioRpcError as error:
                run.errors.append(f"{error.code().name}: {error.details()}")
                break
            if started >= measured_from:
                run.latencies.append(time.perf_counter() - started)
    return run
