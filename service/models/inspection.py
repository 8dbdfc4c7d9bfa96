"""Running an upload through the engine's intake and decomposition (both torch-free).

The weights file is passed by path, never read whole: intake checks every reference into it, probes the
model in a child process that maps it, and leaves the large weights there; the stored model is then
written with them streamed in (LoadedModel.write). The graph itself (at most max_model_bytes) is read, because
protobuf parses bytes only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fusion.decompose import Component, decompose, format_tree
from fusion.intake import IntakeLimits, LoadedModel, ModelRejected, load_model
from service.core.errors import Unprocessable
from service.models.schemas import ModelMetadata


@dataclass(frozen=True)
class InspectedModel:
    loaded: LoadedModel
    signature: dict[str, Any]
    decomposition: dict[str, Any]


def inspect_upload(
    model_file: Path, weights: tuple[str, Path] | None, metadata: ModelMetadata, limits: IntakeLimits
) -> InspectedModel:
    try:
        loaded = load_model(model_file.read_bytes(), weights, limits=limits, embed_weights=False)
    except ModelRejected as error:
        raise Unprocessable(str(error)) from None
    _check_task(loaded, metadata)
    try:
        decomposition = summary(loaded, title=metadata.name)
    except ValueError as error:
        raise Unprocessable(f"The model could not be decomposed into components: {error}") from None
    return InspectedModel(loaded=loaded, signature=asdict(loaded.signature), decomposition=decomposition)


def summary(loaded: LoadedModel, title: str = "model") -> dict[str, Any]:
    """The decomposition as stored with the model, for the API's pages and its job checks (service/jobs/budget.py)."""
    decomposition = decompose(loaded.model)
    return {
        "parameter_count": decomposition.parameter_count,
        "body_components": decomposition.body_leaf_count(),
        "components": [_component(c) for c in decomposition.components],
        "tree": format_tree(decomposition, title=title),
    }


def _check_task(loaded: LoadedModel, metadata: ModelMetadata) -> None:
    width = loaded.signature.output_width
    expected = metadata.classes if metadata.task_type == "multiclass" else 1
    if width != expected:
        raise Unprocessable(
            f"The model outputs {width} value(s) per row, but a {metadata.task_type} task needs {expected}"
            + (f" ({metadata.classes} classes)." if metadata.classes else ".")
            + " Upload the model with the task type it was trained for."
        )


def _component(component: Component) -> dict[str, Any]:
    return {
        "name": component.name,
        "role": component.role.value,
        "parameters": component.parameter_count,
        "parallel": component.parallel,
        "ops": dict(component.op_types),
        "outputs": [
            {"name": name, "shape": shape}
            for name, shape in zip(component.outputs, component.output_shapes, strict=True)
        ],
        "children": [_component(child) for child in component.children],
        "trees": component.trees,
    }
