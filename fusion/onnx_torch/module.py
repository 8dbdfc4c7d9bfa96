"""Run an ONNX graph as a differentiable torch.nn.Module, node by node, with the op table of `ops`.

Fusion cuts a source model's graph into components and runs each one as a torch module; an
interpreter (rather than generated code) lets any subset of nodes between two cut tensors run on
its own (`run_nodes`, `component`) while all of them share one set of parameters. Float
initializers that are weights (see `_weights`) become parameters, frozen until `set_trainable(True)`;
scalar float constants, integer and bool initializers and the values of Constant nodes become buffers,
so that `.to(device)` moves everything.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
import torch
from torch import nn

from fusion.onnx_torch import ops

Tensor = torch.Tensor

MIN_OPSET = 11
"""Oldest default-domain opset accepted: from 11 on, ops that take shapes and pads read them from inputs."""

_DEFAULT_DOMAINS = ("", "ai.onnx")

_WEIGHT_INPUTS = {
    "Gemm": (1, 2),
    "MatMul": (0, 1),
    "Conv": (1, 2),
    "ConvTranspose": (1, 2),
    "Gather": (0,),
    "LayerNormalization": (1, 2),
    "BatchNormalization": (1, 2),
}
"""Inputs that hold a layer's weights, even when a weight has one value (the bias of a one-unit layer)."""


class UnsupportedModelError(ValueError):
    """The model holds something the interpreter cannot run; the message says what."""


@dataclass(frozen=True)
class _Step:
    """One node, ready to run."""

    function: ops.OpFunction
    node: ops.Node
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


class OnnxGraphModule(nn.Module):
    """An ONNX model as a torch module: `forward` maps input tensors by name to output tensors by name.

    The model must be self-contained (no external data) and use only ops in `SUPPORTED_OPS`;
    anything else is refused here, before anything runs.
    """

    def __init__(self, model: onnx.ModelProto) -> None:
        super().__init__()
        graph = model.graph
        opset = _default_opset(model)
        _check_ops(graph)
        if graph.sparse_initializer:
            raise UnsupportedModelError("the model has sparse initializers; store them as dense initializers")
        initializer_names = {initializer.name for initializer in graph.initializer}
        self.input_names: list[str] = [i.name for i in graph.input if i.name not in initializer_names]
        self.output_names: list[str] = [output.name for output in graph.output]
        self.initializer_names: dict[str, str] = {}
        """ONNX initializer name -> name of the parameter or buffer that holds it on this module."""
        self._static: dict[str, str] = {}  # every initializer and Constant output -> its attribute name here
        weights = _weights(graph)
        for initializer in graph.initializer:
            self.initializer_names[initializer.name] = self._add_static(
                initializer.name, ops.tensor_from_proto(initializer), constant=initializer.name not in weights
            )
        self._steps: list[_Step] = []
        for proto in graph.node:
            step = _Step(
                function=ops.op_function(proto.op_type),
                node=ops.Node(proto.op_type, opset, len(proto.output), ops.node_attributes(proto)),
                inputs=tuple(proto.input),
                outputs=tuple(proto.output),
            )
            self._steps.append(step)
            if proto.op_type == "Constant":
                self._add_static(proto.output[0], ops.constant(step.node), constant=True)

    def forward(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        missing = [name for name in self.input_names if name not in inputs]
        if missing:
            raise KeyError(f"missing model inputs {missing}; the model takes {self.input_names}")
        env = self.run_nodes(range(len(self._steps)), inputs)
        return {name: self._read(name, env) for name in self.output_names}

    def run_nodes(self, node_indices: Sequence[int], env: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Run the given nodes (indices into the graph's node list, in topological order).

        Inputs are read from `env`, else from the initializers and constants. Returns a new dict:
        `env` plus every tensor the nodes produced.
        """
        env = dict(env)
        for index in node_indices:
            step = self._steps[index]
            if step.node.op_type == "Constant":  # evaluated once, at construction
                env[step.outputs[0]] = getattr(self, self._static[step.outputs[0]])
                continue
            args = [None if name == "" else self._read(name, env) for name in step.inputs]
            try:
                result = step.function(step.node, *args)
            except Exception as error:
                error.add_note(f"while running node {index} ({step.node.op_type} -> {list(step.outputs)})")
                raise
            values = (result,) if isinstance(result, Tensor) else result
            env.update((name, value) for name, value in zip(step.outputs, values, strict=False) if name)
        return env

    def component(
        self, node_indices: Sequence[int], input_names: Sequence[str], output_names: Sequence[str]
    ) -> GraphComponent:
        """A module running only the given nodes, from the named input tensors to the named outputs."""
        return GraphComponent(self, node_indices, input_names, output_names)

    def set_trainable(self, trainable: bool) -> None:
        """Unfreeze (or freeze again) the weights."""
        for parameter in self.parameters():
            parameter.requires_grad_(trainable)

    def initializer(self, onnx_name: str) -> Tensor:
        """The parameter or buffer that holds an ONNX initializer."""
        return getattr(self, self.initializer_names[onnx_name])

    def initializer_arrays(self) -> dict[str, np.ndarray]:
        """Current initializer values by ONNX name, to write fine-tuned weights back into the model."""
        return {name: ops.tensor_to_array(self.initializer(name)) for name in self.initializer_names}

    def _add_static(self, onnx_name: str, value: Tensor, constant: bool = False) -> str:
        """Hold a tensor known before the model runs under a valid, unique attribute name; return that name."""
        base = re.sub(r"[^0-9A-Za-z_]", "_", onnx_name).strip("_") or "tensor"
        base = f"t_{base}" if base[0].isdigit() else base
        name, suffix = base, 1
        while hasattr(self, name):
            suffix += 1
            name = f"{base}_{suffix}"
        if value.is_floating_point() and not constant:
            self.register_parameter(name, nn.Parameter(value, requires_grad=False))
        else:
            self.register_buffer(name, value)
        self._static[onnx_name] = name
        return name

    def _read(self, name: str, env: Mapping[str, Tensor]) -> Tensor:
        if name in env:
            return env[name]
        if name not in self._static:
            raise KeyError(
                f"tensor {name!r} was neither given nor produced by an earlier node, an initializer or a Constant"
            )
        return getattr(self, self._static[name])


class GraphComponent(nn.Module):
    """A subset of a graph's nodes between named tensors, as a module: forward(*inputs) -> tuple of outputs.

    It holds its graph module as a child, so it shares (and trains) the graph's parameters; its
    `parameters()` are therefore all of the graph's, not only those its own nodes read.
    """

    def __init__(
        self,
        graph: OnnxGraphModule,
        node_indices: Sequence[int],
        input_names: Sequence[str],
        output_names: Sequence[str],
    ) -> None:
        super().__init__()
        self.graph = graph
        self.node_indices = list(node_indices)
        self.input_names = list(input_names)
        self.output_names = list(output_names)
        available = set(self.input_names) | set(graph._static)
        for index in self.node_indices:
            step = graph._steps[index]
            unknown = [name for name in step.inputs if name and name not in available]
            if unknown:
                raise ValueError(
                    f"node {index} ({step.node.op_type}) reads {unknown}: neither a component input, "
                    "an initializer, a Constant, nor an output of an earlier node of the component"
                )
            available.update(step.outputs)
        unknown = [name for name in self.output_names if name not in available]
        if unknown:
            raise ValueError(f"component outputs {unknown} are neither its inputs nor produced by its nodes")

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        env = self.graph.run_nodes(self.node_indices, dict(zip(self.input_names, inputs, strict=True)))
        return tuple(self.graph._read(name, env) for name in self.output_names)


def _default_opset(model: onnx.ModelProto) -> int:
    versions = [entry.version for entry in model.opset_import if entry.domain in _DEFAULT_DOMAINS]
    if not versions:
        raise UnsupportedModelError("the model imports no default-domain (ai.onnx) opset")
    if versions[0] < MIN_OPSET:
        raise UnsupportedModelError(
            f"the model uses opset {versions[0]}; opset {MIN_OPSET} or newer is needed (re-export it)"
        )
    return versions[0]


def _check_ops(graph: onnx.GraphProto) -> None:
    unsupported = sorted(
        {
            node.op_type if node.domain in _DEFAULT_DOMAINS else f"{node.domain}.{node.op_type}"
            for node in graph.node
            if node.domain not in _DEFAULT_DOMAINS or node.op_type not in ops.SUPPORTED_OPS
        }
    )
    if unsupported:
        raise UnsupportedModelError(
            f"the model uses ONNX operators that fusebox cannot run: {', '.join(unsupported)} "
            "(see fusion.onnx_torch.SUPPORTED_OPS)"
        )


def _weights(graph: onnx.GraphProto) -> set[str]:
    """Initializers that are weights: those with more than one value, and those a layer reads as its weights.
    The rest are scalar constants of the computation (a Pow's exponent, a Div's divisor): training them would
    change what the graph computes, and an exponent nudged off 2 turns negative bases into NaN. (Of these,
    only float ones become parameters.)"""
    sizes = {initializer.name: int(np.prod(initializer.dims)) for initializer in graph.initializer}
    weights = {name for name, size in sizes.items() if size > 1}
    for node in graph.node:
        for position in _WEIGHT_INPUTS.get(node.op_type, ()):
            if position < len(node.input) and node.input[position] in sizes:
                weights.add(node.input[position])
    return weights
