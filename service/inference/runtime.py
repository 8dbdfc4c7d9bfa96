"""ONNX Runtime sessions for deployed fused models: loaded once per model file, kept while in use.

Sessions are keyed by the file's sha256, so every version and deployment of the same bytes shares one.
The least recently used session is dropped when more than `capacity` are loaded. Running a session is
thread-safe in ONNX Runtime; only loading takes the lock.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from functools import lru_cache

import numpy as np
import onnxruntime as ort

from service.core.config import get_settings
from service.core.storage import ArtifactStore, get_store
from service.inference.tensors import TensorSpec, datatype_of_ort, shape_of_ort


class LoadedModel:
    def __init__(self, session: ort.InferenceSession) -> None:
        self.session = session
        self.inputs = [TensorSpec(i.name, datatype_of_ort(i.type), shape_of_ort(i.shape)) for i in session.get_inputs()]
        self.outputs = [
            TensorSpec(o.name, datatype_of_ort(o.type), shape_of_ort(o.shape)) for o in session.get_outputs()
        ]

    def run(self, feeds: Mapping[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        return dict(zip(outputs, self.session.run(outputs, dict(feeds)), strict=True))


class RuntimeCache:
    def __init__(self, store: ArtifactStore, capacity: int, threads: int) -> None:
        self.store = store
        self.capacity = capacity
        self.threads = threads
        self._loaded: OrderedDict[str, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, sha256: str) -> LoadedModel:
        with self._lock:
            if sha256 in self._loaded:
                self._loaded.move_to_end(sha256)
                return self._loaded[sha256]
            loaded = LoadedModel(self._create_session(sha256))
            self._loaded[sha256] = loaded
            while len(self._loaded) > self.capacity:
                self._loaded.popitem(last=False)
            return loaded

    def _create_session(self, sha256: str) -> ort.InferenceSession:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = self.threads
        available = ort.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        return ort.InferenceSession(str(self.store.path(sha256)), options, providers=providers)


@lru_cache
def get_runtimes() -> RuntimeCache:
    settings = get_settings()
    return RuntimeCache(get_store(), settings.inference_sessions, settings.inference_threads)
