"""The values that model intake hands out: limits, the rejection error, and the loaded model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, Literal

import onnx

from fusion.intake.weights import WeightsFile, write_self_contained

FeatureKind = Literal["categorical", "dense"]
"""Integer inputs are categorical ids, float inputs dense values."""


class ModelRejected(ValueError):
    """An upload fusebox will not take. The message says what is wrong and what to change, for the user."""


@dataclass(frozen=True)
class IntakeLimits:
    """Bounds on what one upload may make the server parse, copy or allocate."""

    max_model_bytes: int = 256 * 2**20
    max_weights_bytes: int = 2 * 2**30
    max_nodes: int = 50_000
    max_tensor_elements: int = 2**28
    """Declared elements of any one initializer or constant (a sparse one counts its dense size)."""
    max_activation_bytes_per_row: int = 64 * 2**20
    """Bytes one more input row adds to the model's intermediate tensors, all of them together."""
    max_constant_tensor_bytes: int = 256 * 2**20
    """Bytes of intermediate tensors that do not depend on the rows, beyond the model's own weights."""
    max_flops_per_row: int = 10**10
    """Arithmetic for one row, the work that does not depend on the batch included."""


@dataclass(frozen=True)
class InputSpec:
    """One feature input of a model, as a dataset column must feed it."""

    name: str
    kind: FeatureKind
    dtype: str
    """numpy dtype name, e.g. "int64", "float32"."""
    width: int
    """1 for [N] or [N, 1] inputs, k for [N, k]."""
    cardinality: int | None
    """Rows of the embedding table this id input indexes, where the graph shows it; else None."""
    rank: int = 1
    """2 for [N, k] inputs (also [N, 1]): the fed array keeps its column axis."""


@dataclass(frozen=True)
class ModelSignature:
    """What a loaded model takes and gives."""

    inputs: tuple[InputSpec, ...]
    output_name: str
    output_width: int
    """1 (binary score or regression value, shape [N]) or C (multiclass, shape [N, C])."""
    output_is_probability: bool
    """The score comes out of a final Sigmoid or Softmax."""
    opset: int
    producer: str


@dataclass(frozen=True)
class LoadedModel:
    """An accepted model: canonical (one score output, only the nodes it needs) and self-contained."""

    model: onnx.ModelProto
    signature: ModelSignature
    weights: WeightsFile | None = None
    """Where the model's large initializers still lie (load_model(..., embed_weights=False)); else None."""

    def to_bytes(self) -> bytes:
        if self.weights is not None:
            raise ValueError("the model's weights are still in its weights file: write() it instead")
        return self.model.SerializeToString()

    def write(self, target: BinaryIO) -> None:
        """The self-contained model, written with its weights streamed in from the weights file."""
        write_self_contained(self.model, self.weights, target)
