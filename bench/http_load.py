"""A minimal keep-alive HTTP/1.1 client on asyncio for load generation: one prepared request sent over
and over on one connection, so that the client takes little of the CPU it shares with the server."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import numpy as np
import orjson


@dataclass
class ClientRun:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def infer_request(
    host: str, port: int, name: str, headers: dict[str, str], feeds: dict[str, np.ndarray], binary: bool
) -> bytes:
    """A whole POST /v2/models/{name}/infer request, JSON or with binary tensors."""
    batch = len(next(iter(feeds.values())))

    def datatype(values: np.ndarray) -> str:
        return "INT64" if values.dtype == np.int64 else "FP32"

    if binary:
        header = {
            "inputs": [
                {"name": key, "shape": [batch], "datatype": datatype(v), "parameters": {"binary_data_size": v.nbytes}}
                for key, v in feeds.items()
            ],
            "parameters": {"binary_data_output": True},
        }
        encoded = orjson.dumps(header)
        body = encoded + b"".join(values.tobytes() for values in feeds.values())
        extra = {"Inference-Header-Content-Length": str(len(encoded)), "Content-Type": "application/octet-stream"}
    else:
        inputs = [{"name": key, "shape": [batch], "datatype": datatype(v), "data": v} for key, v in feeds.items()]
        body = orjson.dumps({"inputs": inputs}, option=orjson.OPT_SERIALIZE_NUMPY)
        extra = {"Content-Type": "application/json"}
    lines = [f"POST /v2/models/{name}/infer HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{key}: {value}" for key, value in {**headers, **extra}.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def run_client(host: str, port: int, request: bytes, deadline: float, measured_from: float) -> ClientRun:
    """Sends `request` until `deadline`; latencies of the answers sent after `measured_from`, and every
    answer that was not a 200 (or a broken connection) as an error."""
    run = ClientRun()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while (started := time.perf_counter()) < deadline:
            writer.write(request)
            try:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                body = await reader.readexactly(length)
            except (asyncio.IncompleteReadError, ConnectionError) as error:
                run.errors.append(f"connection: {error!r}")
                break
            if head[9:12] != b"200":
                run.errors.append(f"HTTP {head[9:12].decode()}: {body[:200]!r}")
            elif started >= measured_from:
                run.latencies.append(time.perf_counter() - started)
    finally:
        writer.close()
    return run
