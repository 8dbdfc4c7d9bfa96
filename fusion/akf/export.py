"""Export of the fused model to one ONNX file.

The exported graph is assembled rather than traced: each source model's own graph is copied in
unchanged (so its components compute exactly what they computed alone), the AKF network is written
from its trained weights as a separate graph reading those graphs' component outputs (head_graph.py),
and the pieces are wired together. Under the adaptive strategies the AKF graph also emits the
injections that are added to component outputs before the next component reads them; the fine-tune
strategy writes the trained source weights in. A task that falls back under the no-regression rule is
answered by an untouched copy of its best source model. Work that the copied graphs repeat is then merged (simplify.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from fusion.akf.head_graph import build_head
from fusion.akf.model import AKFusion
from fusion.akf.simplify import share_common_work
from fusion.akf.sources import FusionSource, LevelPlan
from fusion.intake import ModelSignature
from fusion.intake.runtime import known_shapes
from fusion.spec import Strategy
from fusion.supported_ops import ML_DOMAIN
from fusion.tasks import Task, TaskType

HEAD_OPSET = 17
"""Least opset of the AKF graph (LayerNormalization); the assembled model uses the newest opset among it
and the sources, converting the others up."""


@dataclass(frozen=True)
class ExportPlan:
    tasks: list[Task]
    sources: list[FusionSource]
    plans: list[LevelPlan]
    strategy: Strategy
    fallbacks: dict[str, int]
    """Task name -> index of the source model that answers it (no-regression rule)."""
    finetuned_weights: dict[int, dict[str, np.ndarray]]
    """Source index -> trained initializer values (fine-tune strategy)."""


def export_fused(fusion: AKFusion, plan: ExportPlan) -> onnx.ModelProto:
    opset = max(HEAD_OPSET, *(_default_opset(source.model) for source in plan.sources))
    head = _export_head(fusion, plan, opset)
    graph = _Assembly(opset, _ml_opset(plan.sources))
    for i, source in enumerate(plan.sources):
        graph.add_source(_at_opset(source.model, opset), f"s{i}/", plan.finetuned_weights.get(i))
    head_inputs = {}
    for i, (source, level_plan) in enumerate(zip(plan.sources, plan.plans, strict=True)):
        flat = _two_dimensional(source.model)
        for level, tensor in enumerate(level_plan.tensors):
            name = f"s{i}/{tensor}"
            head_inputs[_head_level_input(i, level)] = name if tensor in flat else graph.flattened(name)
        head_inputs[_head_output_input(i)] = f"s{i}/{source.signature.output_name}"
    graph.add_head(head, head_inputs)
    if plan.strategy != Strategy.FROZEN:
        for i, level_plan in enumerate(plan.plans):
            for level in range(1, len(level_plan.tensors)):
                if level_plan.injects_before(level):
                    graph.inject(f"s{i}/{level_plan.tensors[level - 1]}", f"akf/{_injection_output(i, level)}")
    outputs = []
    for task in plan.tasks:
        if task.name in plan.fallbacks:
            index = plan.fallbacks[task.name]
            source = plan.sources[index]
            prefix = f"s{index}/" if plan.strategy == Strategy.FROZEN else f"original{index}/"
            if prefix.startswith("original"):
                graph.add_source(_at_opset(source.model, opset), prefix, None)
            answer = graph.as_prediction(task, f"{prefix}{source.signature.output_name}", source.signature)
        else:
            answer = f"akf/{_task_output(task)}"
        outputs.append(graph.rename_output(answer, task))
    inputs = _union_inputs(plan.sources)
    model = share_common_work(
        graph.build(inputs, outputs, plan, ir_version=max(head.ir_version, *(s.model.ir_version for s in plan.sources)))
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def _export_head(fusion: AKFusion, plan: ExportPlan, opset: int) -> onnx.ModelProto:
    levels = fusion.config.levels
    input_names = [_head_level_input(i, level) for i in range(len(plan.sources)) for level in range(levels)]
    input_names += [_head_output_input(i) for i in range(len(plan.sources))]
    output_names = [_task_output(task) for task in plan.tasks]
    if fusion.adapters is not None:
        output_names += [
            _injection_output(i, level)
            for level in range(1, levels)
            for i in range(len(plan.sources))
            if plan.plans[i].injects_before(level)
        ]
    return build_head(fusion, plan.tasks, plan.plans, input_names, output_names, opset)


def _head_level_input(source: int, level: int) -> str:
    return f"source{source}_level{level}"


def _head_output_input(source: int) -> str:
    return f"source{source}_output"


def _task_output(task: Task) -> str:
    return f"task_{task.name}"


def _injection_output(source: int, level: int) -> str:
    return f"inject_source{source}_level{level}"


def _default_opset(model: onnx.ModelProto) -> int:
    return next(entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx"))


def _ml_opset(sources: list[FusionSource]) -> int | None:
    """The classic-model (ai.onnx.ml) opset the sources import, kept in the fused model with their graphs."""
    versions = [entry.version for s in sources for entry in s.model.opset_import if entry.domain == ML_DOMAIN]
    return max(versions, default=None)


def _at_opset(model: onnx.ModelProto, opset: int) -> onnx.ModelProto:
    if _default_opset(model) == opset:
        return model
    return onnx.version_converter.convert_version(model, opset)


def _two_dimensional(model: onnx.ModelProto) -> set[str]:
    """Tensors that shape inference declares [batch, width]: the AKF graph reads them as they are. A Flatten
    of them would copy them (ONNX Runtime cannot alias a tensor that the source's next layer reads too)."""
    shapes = known_shapes(onnx.shape_inference.infer_shapes(model).graph)
    return {name for name, dims in shapes.items() if len(dims) == 2}


def _union_inputs(sources: list[FusionSource]) -> list[onnx.ValueInfoProto]:
    inputs: dict[str, onnx.ValueInfoProto] = {}
    for source in sources:
        for value in source.model.graph.input:
            inputs.setdefault(value.name, value)
    return list(inputs.values())


class _Assembly:
    """Nodes and initializers of the fused graph as it is put together."""

    def __init__(self, opset: int, ml_opset: int | None = None) -> None:
        self.opset = opset
        self.ml_opset = ml_opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.feature_inputs: set[str] = set()
        self._flattened: dict[str, str] = {}
        self._fed_to_head: set[str] = set()

    def add_source(self, model: onnx.ModelProto, prefix: str, weights: dict[str, np.ndarray] | None) -> None:
        graph = model.graph
        inputs = {value.name for value in graph.input}
        self.feature_inputs |= inputs

        def rename(name: str) -> str:
            return name if not name or name in inputs else prefix + name

        for tensor in graph.initializer:
            renamed = onnx.TensorProto()
            if weights is not None and tensor.name in weights:
                renamed.CopyFrom(numpy_helper.from_array(weights[tensor.name].astype(_np_dtype(tensor))))
            else:
                renamed.CopyFrom(tensor)
            renamed.name = prefix + tensor.name
            self.initializers.append(renamed)
        for node in graph.node:
            self.nodes.append(_renamed_node(node, rename, prefix))

    def flattened(self, tensor: str) -> str:
        """A [batch, width] view of a component output, made once per tensor."""
        if tensor not in self._flattened:
            name = f"{tensor}/flat"
            self.nodes.append(helper.make_node("Flatten", [tensor], [name], name=name, axis=1))
            self._flattened[tensor] = name
        return self._flattened[tensor]

    def add_head(self, head: onnx.ModelProto, inputs: dict[str, str]) -> None:
        def rename(name: str) -> str:
            return inputs.get(name, f"akf/{name}" if name else name)

        for tensor in head.graph.initializer:
            renamed = onnx.TensorProto()
            renamed.CopyFrom(tensor)
            renamed.name = f"akf/{tensor.name}"
            self.initializers.append(renamed)
        for node in head.graph.node:
            self.nodes.append(_renamed_node(node, rename, "akf/"))

    def inject(self, tensor: str, injection: str) -> None:
        """Make every reader of `tensor`, except the AKF graph itself, read tensor + injection."""
        shape, reshaped, injected = f"{tensor}/shape", f"{injection}/reshaped", f"{tensor}/injected"
        readers = [
            node
            for node in self.nodes
            if tensor in node.input and not node.name.startswith("akf/") and node.name != f"{tensor}/flat"
        ]
        for node in readers:
            node.input[:] = [injected if name == tensor else name for name in node.input]
        self.nodes += [
            helper.make_node("Shape", [tensor], [shape], name=shape),
            helper.make_node("Reshape", [injection, shape], [reshaped], name=reshaped),
            helper.make_node("Add", [tensor, reshaped], [injected], name=injected),
        ]

    def as_prediction(self, task: Task, tensor: str, signature: ModelSignature) -> str:
        """A source output as the task answers it: a probability for binary tasks, class probabilities."""
        if signature.output_is_probability or task.type == TaskType.REGRESSION:
            return tensor
        op = "Sigmoid" if task.type == TaskType.BINARY else "Softmax"
        name = f"{tensor}/{op.lower()}"
        self.nodes.append(helper.make_node(op, [tensor], [name], name=name))
        return name

    def rename_output(self, tensor: str, task: Task) -> onnx.ValueInfoProto:
        self.nodes.append(helper.make_node("Identity", [tensor], [task.name], name=f"output/{task.name}"))
        shape: list[str | int] = ["batch"] if task.output_width == 1 else ["batch", task.output_width]
        return helper.make_tensor_value_info(task.name, onnx.TensorProto.FLOAT, shape)

    def build(
        self,
        inputs: list[onnx.ValueInfoProto],
        outputs: list[onnx.ValueInfoProto],
        plan: ExportPlan,
        ir_version: int,
    ) -> onnx.ModelProto:
        wanted = {output.name for output in outputs}
        nodes = _topological(_live(self.nodes, wanted))
        read = {name for node in nodes for name in node.input}
        graph = helper.make_graph(
            nodes,
            "fused",
            [value for value in inputs if value.name in read],
            outputs,
            [tensor for tensor in self.initializers if tensor.name in read],
        )
        imports = [helper.make_opsetid("", self.opset)]
        if self.ml_opset is not None:
            imports.append(helper.make_opsetid(ML_DOMAIN, self.ml_opset))
        model = helper.make_model(graph, opset_imports=imports, producer_name="fusebox")
        model.ir_version = ir_version
        metadata = {
            "fusebox.tasks": json.dumps(
                [{"name": t.name, "type": t.type.value, "classes": t.num_classes} for t in plan.tasks]
            ),
            "fusebox.strategy": plan.strategy.value,
            "fusebox.answered_by": json.dumps(
                {
                    t.name: plan.sources[plan.fallbacks[t.name]].name if t.name in plan.fallbacks else "fused"
                    for t in plan.tasks
                }
            ),
            "fusebox.input_columns": json.dumps(_input_columns(plan.sources)),
        }
        for key, value in metadata.items():
            model.metadata_props.add(key=key, value=value)
        return model


def _input_columns(sources: list[FusionSource]) -> dict[str, list[str]]:
    return {spec.name: list(source.columns_of(spec.name)) for source in sources for spec in source.signature.inputs}


def _np_dtype(tensor: onnx.TensorProto) -> np.dtype:
    return np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type))


def _renamed_node(node: onnx.NodeProto, rename: Callable[[str], str], prefix: str) -> onnx.NodeProto:
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    copy.input[:] = [rename(name) for name in node.input]
    copy.output[:] = [rename(name) for name in node.output]
    copy.name = prefix + (node.name or f"{node.op_type}_{node.output[0]}")
    return copy


def _live(nodes: list[onnx.NodeProto], wanted: set[str]) -> list[onnx.NodeProto]:
    """Nodes that the wanted outputs depend on."""
    producer = {name: node for node in nodes for name in node.output}
    needed: set[int] = set()
    stack = [producer[name] for name in wanted if name in producer]
    while stack:
        node = stack.pop()
        if id(node) in needed:
            continue
        needed.add(id(node))
        stack.extend(producer[name] for name in node.input if name in producer)
    return [node for node in nodes if id(node) in needed]


def _topological(nodes: Iterable[onnx.NodeProto]) -> list[onnx.NodeProto]:
    """Kahn's order: the AKF graph and the source graphs interleave under the adaptive strategies."""
    nodes = list(nodes)
    producer = {name: position for position, node in enumerate(nodes) for name in node.output}
    waiting = [sum(1 for name in set(node.input) if name in producer) for node in nodes]
    readers: dict[int, list[int]] = {}
    for position, node in enumerate(nodes):
        for name in set(node.input):
            if name in producer:
                readers.setdefault(producer[name], []).append(position)
    ready = [position for position, count in enumerate(waiting) if count == 0]
    order = []
    while ready:
        position = ready.pop(0)
        order.append(nodes[position])
        for reader in readers.get(position, []):
            waiting[reader] -= 1
            if waiting[reader] == 0:
                ready.append(reader)
    if len(order) != len(nodes):
        raise RuntimeError("the assembled fused graph has a cycle")
    return order
