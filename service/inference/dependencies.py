"""What inference routes (and the deployments' batching routes) get injected: the loaded ONNX Runtime models."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from service.inference.runtime import RuntimeCache, get_runtimes

Runtimes = Annotated[RuntimeCache, Depends(get_runtimes)]
