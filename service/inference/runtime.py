"""ONNX Runtime sessions for deployed fused models: loaded once per model file, kept while in use.

Sessions are keyed by the file's sha256, so every version and deployment of the same bytes shares one.
The least recently used session is dropped when more than `capacity` are loaded. Running a session is
thread-safe in ONNX Runtime; only loading takes the lock.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import onnx
import onnxruntime as ort

from fusion.cpus import usable_cpus
from fusion.intake.cardinality import find_cardinalities
from fusion.intake.runtime import known_shapes
from service.core.config import Settings, get_settings
from service.core.errors import BadRequest
from service.core.storage import ArtifactStore, get_store
from service.inference.oip_tensors import TensorSpec, ValueCheck, datatype_of_ort, shape_of_ort

if TYPE_CHECKING:
    from service.inference.batching import Batcher

_OPTIMIZATION = {
    "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
_EXECUTION = {"sequential": ort.ExecutionMode.ORT_SEQUENTIAL, "parallel": ort.ExecutionMode.ORT_PARALLEL}
_ORT_NOISE = re.compile(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ")


class RuntimeModel:
    def __init__(self, session: ort.InferenceSession, cardinalities: Mapping[str, int]) -> None:
        self.session = session
        self.inputs = [TensorSpec(i.name, datatype_of_ort(i.type), shape_of_ort(i.shape)) for i in session.get_inputs()]
        self.outputs = [
            TensorSpec(o.name, datatype_of_ort(o.type), shape_of_ort(o.shape)) for o in session.get_outputs()
        ]
        self.input_specs = {spec.name: spec for spec in self.inputs}
        self.output_names = [spec.name for spec in self.outputs]
        self.check_values = ValueCheck(self.inputs, cardinalities)
        """Finite floats, and ids within the embedding table they index (`cardinalities`: its rows, where the
        graph says so for sure)."""
        self.batchable = all(spec.shape and spec.shape[0] == -1 for spec in self.inputs + self.outputs)
        """Rows of several requests can be stacked: every input and output has a free first dimension."""
        self.batchers: dict[tuple[int, float], Batcher] = {}
        """One per batching setting in use; kept here so that they go when the session is dropped."""

    def run(self, feeds: Mapping[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        """Inputs were checked against the model; what ONNX Runtime still refuses is the request's fault."""
        try:
            return dict(zip(outputs, self.session.run(outputs, dict(feeds)), strict=True))
        except Exception as error:  # onnxruntime raises pybind classes with no common base besides Exception
            message = _ORT_NOISE.sub("", " ".join(str(error).split()))[:400]
            raise BadRequest(f"the model could not run on these inputs: {message}") from None


class RuntimeCache:
    def __init__(self, store: ArtifactStore, capacity: int, settings: Settings) -> None:
        self.store = store
        self.capacity = capacity
        self.settings = settings
        self._loaded: OrderedDict[str, RuntimeModel] = OrderedDict()
        self._lock = threading.Lock()

    def peek(self, sha256: str) -> RuntimeModel | None:
        """The loaded model, without loading: safe to call on the event loop."""
        loaded = self._loaded.get(sha256)
        # Never wait for the lock here: another thread may hold it for a whole model load. A missed
        # touch only makes this model look a little less recently used.
        if loaded is not None and self._lock.acquire(blocking=False):
            try:
                if sha256 in self._loaded:
                    self._loaded.move_to_end(sha256)
            finally:
                self._lock.release()
        return loaded

    def get(self, sha256: str) -> RuntimeModel:
        with self._lock:
            if sha256 in self._loaded:
                self._loaded.move_to_end(sha256)
                return self._loaded[sha256]
            data = self.store.path(sha256).read_bytes()  # read once, for ONNX Runtime and the graph analysis
            loaded = RuntimeModel(create_session(data, self.settings), _cardinalities(onnx.load_from_string(data)))
            self._loaded[sha256] = loaded
            while len(self._loaded) > self.capacity:
                self._loaded.popitem(last=False)
            return loaded


def session_options(settings: Settings) -> ort.SessionOptions:
    """Threads at most the CPUs this process may use (fusion/cpus.py: affinity and cgroup quota): left at 0,
    ONNX Runtime would start one per core of the host, however few of them a container gets."""
    budget = usable_cpus(settings.inference_threads)
    options = ort.SessionOptions()
    options.graph_optimization_level = _OPTIMIZATION[settings.inference_graph_optimization]
    options.intra_op_num_threads = budget
    options.inter_op_num_threads = usable_cpus(settings.inference_inter_op_threads, budget)
    options.execution_mode = _EXECUTION[settings.inference_execution]
    spinning = "1" if settings.inference_spinning else "0"
    options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
    options.add_session_config_entry("session.inter_op.allow_spinning", spinning)
    options.log_severity_level = 3
    return options


def providers(device: str | None) -> list[str | tuple[str, dict[str, str]]]:
    """CUDA (on the named device) when asked for or, by default, when ONNX Runtime has it; the CPU otherwise."""
    available = ort.get_available_providers()
    if device == "cpu" or "CUDAExecutionProvider" not in available:
        return ["CPUExecutionProvider"]
    device_id = device.partition(":")[2] if device else ""
    return [("CUDAExecutionProvider", {"device_id": device_id or "0"}), "CPUExecutionProvider"]


def create_session(model: str | bytes, settings: Settings) -> ort.InferenceSession:
    """A session for a model file (path) or serialized model, as the service runs it."""
    return ort.InferenceSession(model, session_options(settings), providers=providers(settings.inference_device))


def _cardinalities(model: onnx.ModelProto) -> dict[str, int]:
    """The id inputs' embedding table sizes, from the graph, by the same analysis that checks uploads."""
    graph = onnx.shape_inference.infer_shapes(model).graph
    shapes = known_shapes(graph)
    integer = {onnx.TensorProto.INT32, onnx.TensorProto.INT64}
    ids = [value.name for value in graph.input if value.type.tensor_type.elem_type in integer]
    found = find_cardinalities(graph, ids, shapes)
    return {name: rows for name, rows in found.items() if rows is not None}


@lru_cache
def get_runtimes() -> RuntimeCache:
    settings = get_settings()
    return RuntimeCache(get_store(), settings.inference_sessions, settings)
