"""The AKF head written straight to ONNX, with as few and as cheap operations as its function allows.

Tracing the PyTorch network (model.py) gives one operator per step of training code: a Gemm per source
and level, an Unsqueeze and a Concat to stack them, masks and scales applied at run time, a gate
computed from constant task embeddings, and attention over [batch, tokens, channels] tensors whose last
axes hold a handful of values. At serving batch sizes that cost more than the four Census source models
it fuses (bench/inference.py). This builder reads the trained weights and writes the same function with:
  - the batch last: task states are [T, d, B] and component tokens [S, d, B], so every elementwise step,
    softmax and per-head sum runs over whole batch vectors instead of 2-to-16-value rows;
  - per level, the sources' projections side by side and transposed once into one token tensor, which
    the key/value map reads as one product;
  - the first level's gate folded: it depends only on the task embeddings, so it is a constant mixing
    matrix; later gates carry their mask in their bias;
  - LayerNorm scales and shifts, the attention scale, and the component key/value biases folded into the
    maps around them;
  - the towers of every task and the mixture of source outputs as one product.
Weights are folded in float64 and stored as float32. tests/test_head_graph.py compares the result with
the PyTorch network, and every export is checked against it again (pipeline.py).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper

from fusion.akf.model import _PROBABILITY_FLOOR, AKFLevel, AKFusion
from fusion.akf.sources import LevelPlan
from fusion.tasks import Task, TaskType


class _Builder:
    """Nodes and initializers of a graph under construction, with fresh tensor names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def const(self, value: np.ndarray | np.generic | list[int] | float, dtype: type = np.float32) -> str:
        array: np.ndarray = np.asarray(value, dtype=dtype)
        name = self._fresh("c")
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, inputs: list[str], output: str | None = None, **attributes: Any) -> str:
        name = output or self._fresh(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [name], name=name, **attributes))
        return name

    def split(self, tensor: str, sizes: list[int], axis: int) -> list[str]:
        names = [self._fresh("split") for _ in sizes]
        inputs = [tensor, self.const(sizes, np.int64)]
        self.nodes.append(helper.make_node("Split", inputs, names, name=names[0], axis=axis))
        return names

    def _fresh(self, stem: str) -> str:
        self._count += 1
        return f"{stem}_{self._count}"


def build_head(
    fusion: AKFusion,
    tasks: list[Task],
    plans: list[LevelPlan],
    input_names: list[str],
    output_names: list[str],
    opset: int,
) -> onnx.ModelProto:
    """The head as an ONNX model with the inputs and outputs export.py wires: per source and level a
    [batch, width] component output, then per source its own output; per task its answer, then the
    injections of the adaptive strategies (in export.py's order)."""
    with torch.no_grad():
        return _HeadWriter(fusion, tasks, plans, input_names, output_names, opset).model()


class _HeadWriter:
    def __init__(
        self,
        fusion: AKFusion,
        tasks: list[Task],
        plans: list[LevelPlan],
        input_names: list[str],
        output_names: list[str],
        opset: int,
    ) -> None:
        self.fusion = fusion
        self.tasks = tasks
        self.plans = plans
        self.input_names = input_names
        self.output_names = output_names
        self.opset = opset
        self.g = _Builder()
        self.layout = fusion.layout
        self.d = fusion.config.d_model
        self.heads = fusion.config.heads

    def model(self) -> onnx.ModelProto:
        sources, levels = len(self.layout.sources), self.fusion.config.levels
        components = [self.input_names[i * levels : (i + 1) * levels] for i in range(sources)]
        source_outputs = self.input_names[sources * levels :]
        injections: list[str] = []
        states = ""
        for level in range(levels):
            if level > 0 and self.fusion.adapters is not None:
                injections += self._injections(level, states)
            states = self._level(level, states, [c[level] for c in components])
        answers = self._answers(states, source_outputs)
        outputs = answers + injections
        names = self.output_names
        for tensor, name in zip(outputs, names, strict=True):
            self.g.op("Identity", [tensor], name)
        graph = helper.make_graph(
            self.g.nodes,
            "akf_head",
            [_float_info(name, shape) for name, shape in zip(self.input_names, self._input_shapes(), strict=True)],
            [_float_info(name, shape) for name, shape in zip(names, self._output_shapes(), strict=True)],
            self.g.initializers,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)], producer_name="fusebox")
        model.ir_version = 8
        return model

    def _input_shapes(self) -> list[list[str | int]]:
        levels = self.fusion.config.levels
        shapes: list[list[str | int]] = [
            ["batch", source.level_widths[level]] for source in self.layout.sources for level in range(levels)
        ]
        return shapes + [_answer_shape(self.layout.tasks[source.task_index]) for source in self.layout.sources]

    def _output_shapes(self) -> list[list[str | int]]:
        shapes = [_answer_shape(task) for task in self.tasks]
        if self.fusion.adapters is not None:
            shapes += [  # an injection adds to the component output of the level before
                ["batch", source.level_widths[level - 1]]
                for level in range(1, self.fusion.config.levels)
                for i, source in enumerate(self.layout.sources)
                if self.plans[i].injects_before(level)
            ]
        return shapes

    # --- one AKF level, batch last: task states [T, d, B], component tokens [S, d, B] ---

    def _level(self, level: int, states: str, inputs: list[str]) -> str:
        module = self.fusion.level(level)
        d, sources = self.d, len(self.layout.sources)
        # [B, S*d] -> [S*d, B]: Gemm runs faster on [B, width] as it comes than on a transposed read of it.
        side_by_side = self.g.op("Concat", [self._projection(module, i, x) for i, x in enumerate(inputs)], axis=1)
        packed = self.g.op("Transpose", [side_by_side], perm=[1, 0])
        tokens = self.g.op("Reshape", [packed, self.g.const([sources, d, -1], np.int64)])
        if level == 0:
            states = self._first_states(module, packed)
        else:
            states = self.g.op("Add", [states, self._gated_mix(module, states, tokens)])
        # The component keys and values go without their bias: the key bias adds the same score to every
        # component, which the softmax cannot tell from a shift of the task keys by minus that bias; the
        # value bias adds itself, weighted by the components' share of attention, which equals the bias
        # plus the task values shifted by minus it (weights sum to one), and the output map carries it.
        kv_weight, kv_bias = _weight(module.component_kv)
        product = self.g.op("MatMul", [self.g.const(kv_weight.T), tokens])
        component_keys, component_values = self.g.split(product, [d, d], axis=1)
        qkv_weight, qkv_bias = _after_norm(module.attention_norm, *_weight(module.task_qkv))
        qkv_weight[:, :d] *= module.scale  # the attention scale, applied to the queries ahead of time
        qkv_bias[:d] *= module.scale
        qkv_bias[d:] -= kv_bias
        queries, task_keys, task_values = self.g.split(
            self._apply(self._normalized(states, module.attention_norm.eps), qkv_weight, qkv_bias), [d, d, d], axis=1
        )
        keys = self.g.op("Concat", [task_keys, component_keys], axis=0)
        values = self.g.op("Concat", [task_values, component_values], axis=0)
        attended = self._attention(queries, keys, values)
        out_weight, out_bias = _weight(module.attention_out)
        states = self.g.op("Add", [states, self._apply(attended, out_weight, out_bias + kv_bias[d:] @ out_weight)])
        first = _after_norm(module.ffn_norm, *_weight(_linear(module.ffn[0])))
        hidden = self._gelu(self._apply(self._normalized(states, module.ffn_norm.eps), *first))
        return self.g.op("Add", [states, self._apply(hidden, *_weight(_linear(module.ffn[2])))])

    def _apply(self, tensor: str, weight: np.ndarray, bias: np.ndarray) -> str:
        """A linear map ([in, out] weight) over axis -2 of a batch-last [..., in, B] tensor."""
        product = self.g.op("MatMul", [self.g.const(weight.T), tensor])
        return self.g.op("Add", [product, self.g.const(bias[:, None])])

    def _projection(self, module: AKFLevel, source: int, tensor: str) -> str:
        """[B, width] -> [B, d]: the component's token."""
        weight, bias = _weight(module.components.map_of(source))
        return self.g.op("Gemm", [tensor, self.g.const(weight), self.g.const(bias)])

    def _first_states(self, module: AKFLevel, packed: str) -> str:
        """Task states after the first gate: embeddings plus a constant mixture of the tokens ([S*d, B])."""
        d, tasks = self.d, len(self.layout.tasks)
        embedding = self.fusion.task_embedding.double().numpy()
        gate_weight, gate_bias = _weight(module.gate)
        gate = _softmax(embedding @ gate_weight + gate_bias + module.gate_mask.double().numpy())
        mixing = np.kron(gate, np.eye(d))  # [T*d, S*d]: task t's channel c takes gate[t, s] of source s's
        flat = self.g.op("Gemm", [self.g.const(mixing), packed, self.g.const(embedding.reshape(-1, 1))])
        return self.g.op("Reshape", [flat, self.g.const([tasks, d, -1], np.int64)])

    def _gated_mix(self, module: AKFLevel, states: str, tokens: str) -> str:
        """Per task, its gate's mixture of its own sources' tokens (the mask rides in the bias)."""
        weight, bias = _weight(module.gate)
        logits = self.g.op("MatMul", [self.g.const(weight.T), states])  # [T, S, B]
        masked_bias = bias[None, :] + module.gate_mask.double().numpy()
        gate = self._softmax(self.g.op("Add", [logits, self.g.const(masked_bias[:, :, None])]), axis=1)
        weighted = self.g.op("Mul", [self._unsqueeze(gate, 2), tokens])  # [T, S, d, B]
        return self.g.op("ReduceSum", [weighted, self.g.const([1], np.int64)], keepdims=0)

    def _attention(self, queries: str, keys: str, values: str) -> str:
        """Multi-head attention of [T, d, B] queries over [N, d, B] keys and values. With a handful of tokens
        per row and the batch last, products by broadcasting over whole batch vectors, with the channels
        viewed as [heads, d/heads], cost a fraction of per-row matrix products (ONNX Runtime's fused
        MultiHeadAttention among them: measured slower at these sizes) or of batch-first broadcasting."""
        d, heads = self.d, self.heads
        tasks, tokens = len(self.layout.tasks), len(self.layout.tasks) + len(self.layout.sources)
        products = self.g.op("Mul", [self._unsqueeze(queries, 1), keys])  # [T, N, d, B]
        per_head = self.g.op("Reshape", [products, self.g.const([tasks, tokens, heads, d // heads, -1], np.int64)])
        scores = self.g.op("ReduceSum", [per_head, self.g.const([3], np.int64)], keepdims=1)  # [T, N, heads, 1, B]
        weights = self._softmax(scores, axis=1)
        head_values = self.g.op("Reshape", [values, self.g.const([tokens, heads, d // heads, -1], np.int64)])
        weighted = self.g.op("Mul", [weights, head_values])  # [T, N, heads, d/heads, B]
        attended = self.g.op("ReduceSum", [weighted, self.g.const([1], np.int64)], keepdims=0)
        return self.g.op("Reshape", [attended, self.g.const([tasks, d, -1], np.int64)])

    def _softmax(self, tensor: str, axis: int) -> str:
        """Softmax over a leading axis, written out: ONNX Runtime's Softmax transposes for any axis but the
        last, which costs more than these five passes over batch-last vectors."""
        shifted = self.g.op("Sub", [tensor, self._reduce("ReduceMax", tensor, axis)])
        exp = self.g.op("Exp", [shifted])
        return self.g.op("Div", [exp, self._reduce("ReduceSum", exp, axis)])

    def _reduce(self, op_type: str, tensor: str, axis: int) -> str:
        if op_type == "ReduceSum" or self.opset >= 18:
            return self.g.op(op_type, [tensor, self.g.const([axis], np.int64)], keepdims=1)
        return self.g.op(op_type, [tensor], axes=[axis], keepdims=1)

    def _normalized(self, tensor: str, eps: float) -> str:
        """LayerNorm over the channels of [T, d, B] without its affine part (folded into the next map):
        means as products with a constant row, which costs less than reductions over a middle axis."""
        average = self.g.const(np.full((1, self.d), 1.0 / self.d))
        centered = self.g.op("Sub", [tensor, self.g.op("MatMul", [average, tensor])])
        variance = self.g.op("MatMul", [average, self.g.op("Mul", [centered, centered])])
        spread = self.g.op("Sqrt", [self.g.op("Add", [variance, self.g.const(np.float32(eps))])])
        return self.g.op("Div", [centered, spread])

    def _unsqueeze(self, tensor: str, axis: int) -> str:
        return self.g.op("Unsqueeze", [tensor, self.g.const([axis], np.int64)])

    def _gelu(self, tensor: str) -> str:
        if self.opset >= 20:
            return self.g.op("Gelu", [tensor])
        scaled = self.g.op("Mul", [tensor, self.g.const(np.float32(1 / math.sqrt(2)))])
        one_plus = self.g.op("Add", [self.g.op("Erf", [scaled]), self.g.const(np.float32(1.0))])
        return self.g.op("Mul", [self.g.op("Mul", [tensor, one_plus]), self.g.const(np.float32(0.5))])

    # --- injections (adaptive strategies) ---

    def _injections(self, level: int, states: str) -> list[str]:
        names = []
        for i, source in enumerate(self.layout.sources):
            if not self.plans[i].injects_before(level):
                continue
            adapter = self.fusion.adapter(level - 1, i)
            weight, bias = _weight(adapter.linear)
            scale = adapter.scale.double().numpy()
            task_state = self.g.op("Gather", [states, self.g.const(np.int64(source.task_index), np.int64)], axis=0)
            gemm = [task_state, self.g.const(weight * scale), self.g.const(bias * scale)]
            names.append(self.g.op("Gemm", gemm, transA=1))  # [d, B] -> [B, width]
        return names

    # --- towers, mixture of source outputs, answers ---

    def _answers(self, states: str, source_outputs: list[str]) -> list[str]:
        """Towers and the mixture of source logits as one product, split per task and made predictions."""
        layout, d = self.layout, self.d
        tasks = list(layout.tasks)
        hidden_width = self.fusion.config.tower_hidden
        widths = [task.output_width for task in tasks]
        offsets = np.cumsum([0, *widths])
        first = np.zeros((len(tasks) * d, len(tasks) * hidden_width))
        first_bias = np.zeros(len(tasks) * hidden_width)
        second = np.zeros((len(tasks) * hidden_width, offsets[-1]))
        bias = np.zeros(offsets[-1])
        for t in range(len(tasks)):
            tower = self.fusion.towers[t]
            assert isinstance(tower, torch.nn.Sequential)
            w1, b1 = _weight(_linear(tower[0]))
            w2, b2 = _weight(_linear(tower[2]))
            first[t * d : (t + 1) * d, t * hidden_width : (t + 1) * hidden_width] = w1
            first_bias[t * hidden_width : (t + 1) * hidden_width] = b1
            second[t * hidden_width : (t + 1) * hidden_width, offsets[t] : offsets[t + 1]] = w2
            bias[offsets[t] : offsets[t + 1]] = b2
        flat = self.g.op("Reshape", [states, self.g.const([len(tasks) * d, -1], np.int64)])
        towers = self.g.op("Relu", [self._apply(flat, first, first_bias)])
        logits, mixture_rows = [], []
        for i, source in enumerate(layout.sources):
            t = source.task_index
            weight = float(self.fusion.source_mix[t][layout.sources_of(t).index(i)])
            logits.append(self._source_logits(tasks[t], source.output_is_probability, source_outputs[i]))
            block = np.zeros((widths[t], offsets[-1]))
            block[:, offsets[t] : offsets[t + 1]] = weight * np.eye(widths[t])
            mixture_rows.append(block)
        mixed = self.g.op("Concat", [towers, *logits], axis=0)
        raw = self._apply(mixed, np.concatenate([second, *mixture_rows], axis=0), bias)
        per_task = self.g.split(raw, widths, axis=0) if len(tasks) > 1 else [raw]
        by_name = {task.name: self._prediction(task, tensor) for task, tensor in zip(tasks, per_task, strict=True)}
        return [by_name[task.name] for task in self.tasks]

    def _source_logits(self, task: Task, is_probability: bool, tensor: str) -> str:
        """A source output as [width, B] in the space the head adds in (model.py's _as_logits)."""
        if task.output_width == 1:
            tensor = self.g.op("Reshape", [tensor, self.g.const([1, -1], np.int64)])
        else:
            tensor = self.g.op("Transpose", [tensor], perm=[1, 0])
        if task.type == TaskType.REGRESSION or not is_probability:
            return tensor
        floor = np.float32(_PROBABILITY_FLOOR)
        if task.type == TaskType.BINARY:
            p = self.g.op("Clip", [tensor, self.g.const(floor), self.g.const(np.float32(1 - _PROBABILITY_FLOOR))])
            complement = self.g.op("Sub", [self.g.const(np.float32(1.0)), p])
            return self.g.op("Sub", [self.g.op("Log", [p]), self.g.op("Log", [complement])])
        return self.g.op("Log", [self.g.op("Clip", [tensor, self.g.const(floor)])])

    def _prediction(self, task: Task, raw: str) -> str:
        """fusion.losses.to_prediction, from [width, B]: a probability (binary), a value, or class probabilities."""
        if task.type == TaskType.MULTICLASS:
            return self.g.op("Softmax", [self.g.op("Transpose", [raw], perm=[1, 0])], axis=-1)
        flat = self.g.op("Reshape", [raw, self.g.const([-1], np.int64)])
        return self.g.op("Sigmoid", [flat]) if task.type == TaskType.BINARY else flat


def _answer_shape(task: Task) -> list[str | int]:
    return ["batch"] if task.output_width == 1 else ["batch", task.output_width]


def _float_info(name: str, shape: list[str | int]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, shape)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _after_norm(norm: torch.nn.LayerNorm, weight: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A linear map ([in, out]) that reads a LayerNorm's output, with the norm's scale and shift folded in."""
    scale, shift = norm.weight.double().numpy(), norm.bias.double().numpy()
    return scale[:, None] * weight, shift @ weight + bias


def _linear(module: torch.nn.Module) -> torch.nn.Linear:
    assert isinstance(module, torch.nn.Linear)
    return module


def _weight(linear: torch.nn.Linear) -> tuple[np.ndarray, np.ndarray]:
    """A Linear's map as float64 (weight [in, out], bias [out]), for folding."""
    return linear.weight.detach().double().numpy().T.copy(), linear.bias.detach().double().numpy().copy()
