"""What inference routes get injected: the loaded ONNX Runtime models."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from service.inference.runtime import RuntimeCache, get_runtimes


async def _runtimes() -> RuntimeCache:
    """Async, so that FastAPI calls it on the event loop rather than on a worker thread."""
    return get_runtimes()


Runtimes = Annotated[RuntimeCache, Depends(_runtimes)]
