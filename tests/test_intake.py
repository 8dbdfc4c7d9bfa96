"""Model intake: real exports are accepted and made canonical; unsafe or unusable uploads are rejected
with a message that says what to change."""

from __future__ import annotations

import functools
import io
import os
import pickle
import subprocess
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from fusion.intake import InputSpec, IntakeLimits, LoadedModel, ModelRejected, load_model
from fusion.supported_ops import SUPPORTED_OPS

ALL_OPS = frozenset(schema.name for schema in onnx.defs.get_all_schemas() if schema.domain == "")
load = functools.partial(load_model, supported_ops=ALL_OPS)
REPO = Path(__file__).resolve().parents[1]
FLOAT, INT64 = TensorProto.FLOAT, TensorProto.INT64


# --- models ------------------------------------------------------------------------------------------------


class TabularNet(nn.Module):
    """Embeddings for two id columns, two dense columns, an MLP and a sigmoid: the usual tabular model."""

    def __init__(self) -> None:
        super().__init__()
        self.city = nn.Embedding(50, 8)
        self.job = nn.Embedding(30, 8)
        self.mlp = nn.Sequential(nn.Linear(18, 32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, city: torch.Tensor, job: torch.Tensor, age: torch.Tensor, wage: torch.Tensor) -> torch.Tensor:
        features = torch.cat([self.city(city), self.job(job), age.unsqueeze(1), wage.unsqueeze(1)], dim=1)
        return torch.sigmoid(self.mlp(features)).squeeze(1)


class StackedNet(nn.Module):
    """One shared table for three id fields, addressed through per-field offsets (DeepFM style)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("offsets", torch.tensor([0, 5, 14]))
        self.table = nn.Embedding(5 + 9 + 4, 3)
        self.head = nn.Linear(9, 1)

    def forward(self, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        ids = torch.stack([a, b, c], dim=1) + self.offsets
        return torch.sigmoid(self.head(self.table(ids).flatten(1))).squeeze(1)


TABULAR_INPUTS = ["city", "job", "age", "wage"]


def tabular_batch(rows: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "city": rng.integers(0, 50, rows),
        "job": rng.integers(0, 30, rows),
        "age": rng.normal(size=rows).astype(np.float32),
        "wage": rng.normal(size=rows).astype(np.float32),
    }


def legacy_export(module: nn.Module, names: list[str], args: tuple[torch.Tensor, ...]) -> bytes:
    buffer = io.BytesIO()
    torch.onnx.export(
        module.eval(),
        args,
        buffer,
        dynamo=False,
        opset_version=17,
        input_names=names,
        output_names=["score"],
        dynamic_axes={name: {0: "batch"} for name in [*names, "score"]},
    )
    return buffer.getvalue()


def tabular_args(rows: int = 3) -> tuple[torch.Tensor, ...]:
    return tuple(torch.from_numpy(column) for column in tabular_batch(rows).values())


@pytest.fixture(scope="module")
def dynamo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """model.onnx + model.onnx.data, as the dynamo exporter writes them."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("dynamo")
    batch = torch.export.Dim("batch")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "# The axis name: batch will not be used")  # the same Dim, on purpose
        torch.onnx.export(
            TabularNet().eval(),
            tabular_args(),
            str(folder / "model.onnx"),
            dynamo=True,
            input_names=TABULAR_INPUTS,
            dynamic_shapes={name: {0: batch} for name in TABULAR_INPUTS},
            verbose=False,
        )
    return folder


@pytest.fixture(scope="module")
def dynamo_upload(dynamo_dir: Path) -> tuple[bytes, tuple[str, bytes]]:
    return (dynamo_dir / "model.onnx").read_bytes(), ("model.onnx.data", (dynamo_dir / "model.onnx.data").read_bytes())


@pytest.fixture(scope="module")
def sklearn_models() -> tuple[object, np.ndarray, bytes, bytes]:
    """A binary MLPClassifier, its data, and its ONNX conversions without and with ZipMap."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4)).astype(np.float32)
    classifier = MLPClassifier(hidden_layer_sizes=(8,), max_iter=50, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a quick fit is all the test needs
        classifier.fit(x, x[:, 0] > 0)
    convert = functools.partial(to_onnx, classifier, initial_types=[("X", FloatTensorType([None, 4]))])
    plain = convert(options={"zipmap": False}, target_opset={"": 17, "ai.onnx.ml": 3})
    zipped = convert(target_opset={"": 17, "ai.onnx.ml": 3})
    return classifier, x, plain.SerializeToString(), zipped.SerializeToString()


def run(model: bytes | str, feeds: dict[str, np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


# --- tiny hand-built graphs ----------------------------------------------------------------------------------


def value(name: str, elem: int = FLOAT, shape: Sequence[int | str] = ("N",)) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, list(shape))


def tiny(
    nodes: Sequence[onnx.NodeProto],
    inputs: Sequence[onnx.ValueInfoProto],
    outputs: Sequence[onnx.ValueInfoProto],
    initializers: Sequence[onnx.TensorProto] = (),
    *,
    imports: Sequence[onnx.OperatorSetIdProto] = (),
    functions: Sequence[onnx.FunctionProto] = (),
) -> onnx.ModelProto:
    """A model from hand-written nodes, at opset 17 plus any extra `imports`."""
    graph = helper.make_graph(list(nodes), "tiny", list(inputs), list(outputs), list(initializers))
    opsets = [helper.make_opsetid("", 17), *imports]
    model = helper.make_model(graph, opset_imports=opsets, functions=list(functions))
    model.ir_version = 8
    return model


def weights(name: str = "w", rows: int = 4, cols: int = 1) -> onnx.TensorProto:
    data = np.arange(rows * cols, dtype=np.float32).reshape(rows, cols) / 10
    return numpy_helper.from_array(data, name)


def score_model(cols: int = 1, head: str = "Sigmoid", **head_attrs: int) -> onnx.ModelProto:
    """x [N, 4] -> MatMul -> head -> [N, cols]."""
    nodes = [helper.make_node("MatMul", ["x", "w"], ["logits"])]
    nodes += [helper.make_node(head, ["logits"], ["y"], **head_attrs)] if head else []
    out = "y" if head else "logits"
    return tiny(nodes, [value("x", shape=["N", 4])], [value(out, shape=["N", cols])], [weights(cols=cols)])


def rejected(model: onnx.ModelProto | bytes, *phrases: str, **kwargs: object) -> str:
    """Load, expect a rejection, and check its message names the problem and the fix."""
    data = model if isinstance(model, bytes) else model.SerializeToString()
    with pytest.raises(ModelRejected) as info:
        load(data, **kwargs)
    message = str(info.value)
    for phrase in phrases:
        assert phrase in message, f"{phrase!r} not in: {message}"
    return message


# --- real exports are accepted -------------------------------------------------------------------------------


def test_dynamo_export_with_its_weights_file_becomes_self_contained(dynamo_dir, dynamo_upload):
    model_bytes, companion = dynamo_upload
    original = onnx.load_from_string(model_bytes)
    assert any(t.data_location == TensorProto.EXTERNAL for t in original.graph.initializer)

    loaded = load(model_bytes, companion)

    assert isinstance(loaded, LoadedModel)
    signature = loaded.signature
    assert signature.inputs == (
        InputSpec("city", "categorical", "int64", 1, 50),
        InputSpec("job", "categorical", "int64", 1, 30),
        InputSpec("age", "dense", "float32", 1, None),
        InputSpec("wage", "dense", "float32", 1, None),
    )
    assert (signature.output_width, signature.output_is_probability) == (1, True)
    assert signature.opset >= 18 and signature.producer.startswith("pytorch")
    reloaded = onnx.load_from_string(loaded.to_bytes())
    assert all(t.data_location == TensorProto.DEFAULT and not t.external_data for t in reloaded.graph.initializer)
    batch = tabular_batch(64, seed=1)
    expected = run(str(dynamo_dir / "model.onnx"), batch)
    np.testing.assert_array_equal(run(loaded.to_bytes(), batch), expected)
    assert expected.shape == (64,)


def test_legacy_export_without_weights_file_is_accepted():
    torch.manual_seed(0)
    loaded = load(legacy_export(TabularNet(), TABULAR_INPUTS, tabular_args()))

    assert [(i.name, i.kind, i.cardinality) for i in loaded.signature.inputs] == [
        ("city", "categorical", 50),
        ("job", "categorical", 30),
        ("age", "dense", None),
        ("wage", "dense", None),
    ]
    assert (loaded.signature.opset, loaded.signature.output_name, loaded.signature.output_width) == (17, "score", 1)
    assert run(loaded.to_bytes(), tabular_batch(5)).shape == (5,)


def test_cardinality_of_fields_sharing_one_offset_table():
    args = tuple(torch.zeros(3, dtype=torch.int64) for _ in range(3))
    loaded = load(legacy_export(StackedNet(), ["a", "b", "c"], args))

    assert [i.cardinality for i in loaded.signature.inputs] == [5, 9, 4]


def test_cardinality_is_none_when_ids_are_not_looked_up_in_a_table():
    nodes = [
        helper.make_node("Cast", ["id"], ["as_float"], to=FLOAT),
        helper.make_node("Unsqueeze", ["as_float", "axis"], ["col"]),
        helper.make_node("MatMul", ["col", "w"], ["y"]),
    ]
    axis = numpy_helper.from_array(np.array([1], dtype=np.int64), "axis")
    model = tiny(nodes, [value("id", INT64)], [value("y", shape=["N", 1])], [weights(rows=1), axis])

    assert load(model.SerializeToString()).signature.inputs == (InputSpec("id", "categorical", "int64", 1, None),)


def test_sklearn_classifier_without_zipmap_scores_the_positive_class(sklearn_models):
    classifier, x, plain, _ = sklearn_models

    loaded = load(plain)

    signature = loaded.signature
    assert signature.inputs == (InputSpec("X", "dense", "float32", 4, None, rank=2),)
    assert (signature.output_name, signature.output_width, signature.output_is_probability) == (
        "probabilities",
        1,
        True,
    )
    assert {node.domain for node in loaded.model.graph.node} == {""}  # the label branch is pruned
    assert [o.domain for o in loaded.model.opset_import] == [""]
    scores = run(loaded.to_bytes(), {"X": x})
    np.testing.assert_allclose(scores, classifier.predict_proba(x)[:, 1], atol=1e-6)


def test_sklearn_classifier_with_zipmap_is_rejected_with_the_option_to_use(sklearn_models):
    rejected(sklearn_models[3], "ZipMap", "options={'zipmap': False}")


# --- output canonicalisation -------------------------------------------------------------------------------


def test_single_column_output_is_squeezed_to_one_score_per_row():
    loaded = load(score_model(cols=1).SerializeToString())

    x = np.ones((3, 4), dtype=np.float32)
    assert run(loaded.to_bytes(), {"x": x}).shape == (3,)
    assert (loaded.signature.output_name, loaded.signature.output_width) == ("y", 1)


def test_two_class_softmax_becomes_the_positive_class_probability():
    loaded = load(score_model(cols=2, head="Softmax", axis=-1).SerializeToString())

    x = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    logits = x @ numpy_helper.to_array(weights(cols=2))
    expected = np.exp(logits[:, 1]) / np.exp(logits).sum(axis=1)
    np.testing.assert_allclose(run(loaded.to_bytes(), {"x": x}), expected, rtol=1e-5)
    assert (loaded.signature.output_width, loaded.signature.output_is_probability) == (1, True)


def test_multiclass_output_keeps_its_classes():
    signature = load(score_model(cols=3, head="Softmax", axis=-1).SerializeToString()).signature
    assert (signature.output_width, signature.output_is_probability) == (3, True)


def test_two_logits_without_softmax_count_as_two_classes():
    signature = load(score_model(cols=2, head="").SerializeToString()).signature
    assert (signature.output_width, signature.output_is_probability) == (2, False)


def test_regression_output_is_not_a_probability():
    assert load(score_model(cols=1, head="Relu").SerializeToString()).signature.output_is_probability is False


def test_initializers_listed_as_inputs_are_not_features():
    model = score_model()
    model.graph.input.append(value("w", shape=[4, 1]))

    loaded = load(model.SerializeToString())

    assert [i.name for i in loaded.signature.inputs] == ["x"]
    assert [i.name for i in loaded.model.graph.input] == ["x"]


def test_local_functions_are_inlined():
    body = [helper.make_node("MatMul", ["a", "b"], ["m"]), helper.make_node("Sigmoid", ["m"], ["out"])]
    function = helper.make_function("local", "Score", ["a", "b"], ["out"], body, [helper.make_opsetid("", 17)])
    model = tiny(
        [helper.make_node("Score", ["x", "w"], ["y"], domain="local")],
        [value("x", shape=["N", 4])],
        [value("y", shape=["N", 1])],
        [weights()],
        imports=[helper.make_opsetid("local", 1)],
        functions=[function],
    )

    loaded = load(model.SerializeToString())

    assert not loaded.model.functions
    assert {node.domain for node in loaded.model.graph.node} == {""}


# --- external data -----------------------------------------------------------------------------------------


def with_external(model_bytes: bytes, **changes: str) -> bytes:
    """The model with every external-data entry's fields (location, offset, length) changed."""
    model = onnx.load_from_string(model_bytes)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            entry.value = changes.get(entry.key, entry.value)
    return model.SerializeToString()


@pytest.mark.parametrize("location", ["../model.onnx.data", "/etc/passwd", "sub/model.onnx.data", "C:x", "..\\x"])
def test_external_data_outside_the_upload_is_rejected(dynamo_upload, location):
    model_bytes, companion = dynamo_upload
    rejected(with_external(model_bytes, location=location), location, "only a plain file name", weights=companion)


def test_weights_file_with_another_name_is_rejected(dynamo_upload):
    model_bytes, (_, data) = dynamo_upload
    rejected(
        model_bytes,
        "'model.onnx.data'",
        "'weights.bin'",
        "Upload the file the model names",
        weights=("weights.bin", data),
    )


def test_missing_weights_file_is_rejected_with_both_fixes(dynamo_upload):
    rejected(
        dynamo_upload[0], "'model.onnx.data'", "not uploaded", "external_data=False", "save_as_external_data=False"
    )


def test_weights_file_that_the_model_does_not_use_is_rejected():
    rejected(score_model(), "does not reference it", weights=("model.onnx.data", b"\0" * 16))


@pytest.mark.parametrize(
    ("changes", "phrase"),
    [
        ({"offset": "1000000"}, "holds"),
        ({"offset": "-4"}, "holds"),
        ({"length": "4"}, "external data is 4 bytes long"),
        ({"offset": "zero"}, "non-numeric"),
    ],
)
def test_external_data_ranges_must_fit_the_weights_file_and_the_tensor(dynamo_upload, changes, phrase):
    model_bytes, companion = dynamo_upload
    rejected(with_external(model_bytes, **changes), phrase, weights=companion)


def test_external_constant_attribute_is_copied_in():
    constant = weights("c")
    data = constant.raw_data
    constant.ClearField("raw_data")
    constant.data_location = TensorProto.EXTERNAL
    for key, text in [("location", "w.bin"), ("offset", "8"), ("length", str(len(data)))]:
        constant.external_data.add(key=key, value=text)
    nodes = [helper.make_node("Constant", [], ["w"], value=constant), helper.make_node("MatMul", ["x", "w"], ["y"])]
    model = tiny(nodes, [value("x", shape=["N", 4])], [value("y", shape=["N", 1])])

    loaded = load(model.SerializeToString(), ("w.bin", b"\xff" * 8 + data))

    x = np.ones((2, 4), dtype=np.float32)
    np.testing.assert_allclose(run(loaded.to_bytes(), {"x": x}), x @ numpy_helper.to_array(weights())[:, 0])


# --- malformed, unsafe or unusable uploads ------------------------------------------------------------------


def torch_checkpoint() -> bytes:
    buffer = io.BytesIO()
    torch.save(nn.Linear(2, 1).state_dict(), buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "phrase"),
    [
        (os.urandom(4096), "not an ONNX model"),
        (pickle.dumps({"weights": np.zeros(3)}), "pickle"),
        (b"age,income\n1,2\n", "text file"),
        (torch_checkpoint(), "zip archive"),
    ],
)
def test_files_that_are_not_onnx_are_rejected(data, phrase):
    rejected(data, phrase, "torch.onnx.export")


def test_empty_graph_is_rejected():
    rejected(tiny([], [value("x")], [value("x")]), "graph is empty")


def test_output_that_is_not_computed_is_rejected():
    rejected(tiny([helper.make_node("Relu", ["x"], ["z"])], [value("x")], [value("x")]), "not computed by any node")


def test_output_that_ignores_every_input_is_rejected():
    node = helper.make_node("Relu", ["w"], ["y"])
    model = tiny([node], [value("x", shape=["N", 4])], [value("y", shape=[4, 1])], [weights()])
    rejected(model, "does not depend on any input")


@pytest.mark.parametrize(
    ("limits", "phrase"),
    [
        (IntakeLimits(max_model_bytes=100), "model file is"),
        (IntakeLimits(max_weights_bytes=10), "weights file"),
        (IntakeLimits(max_tensor_elements=3), "declares 4 elements"),
        (IntakeLimits(max_nodes=1), "more than 1 nodes"),
    ],
)
def test_size_limits(limits, phrase):
    rejected(score_model(), phrase, weights=("model.onnx.data", b"\0" * 16), limits=limits)


def test_nested_functions_cannot_multiply_the_node_count():
    opset = [helper.make_opsetid("", 17), helper.make_opsetid("local", 1)]
    functions = [helper.make_function("local", "f0", ["a"], ["b"], [helper.make_node("Relu", ["a"], ["b"])], opset)]
    for level in range(1, 40):
        calls = [
            helper.make_node(f"f{level - 1}", ["a"], ["m"], domain="local"),
            helper.make_node(f"f{level - 1}", ["m"], ["b"], domain="local"),
        ]
        functions.append(helper.make_function("local", f"f{level}", ["a"], ["b"], calls, opset))
    node = helper.make_node("f39", ["x"], ["y"], domain="local")
    model = tiny([node], [value("x")], [value("y")], imports=opset[1:], functions=functions)

    rejected(model, "more than 50,000 nodes")


def test_recursive_functions_are_rejected():
    opset = [helper.make_opsetid("", 17), helper.make_opsetid("local", 1)]
    loop = helper.make_function(
        "local", "f", ["a"], ["b"], [helper.make_node("f", ["a"], ["b"], domain="local")], opset
    )
    model = tiny(
        [helper.make_node("f", ["x"], ["y"], domain="local")],
        [value("x")],
        [value("y")],
        imports=opset[1:],
        functions=[loop],
    )
    rejected(model, "calls itself")


def test_declared_shape_must_match_the_data():
    model = score_model()
    model.graph.initializer[0].raw_data = model.graph.initializer[0].raw_data[:8]
    rejected(model, "needs 16 bytes", "holds 8")


@pytest.mark.parametrize("version", [12, onnx.defs.onnx_opset_version() + 1])
def test_opset_outside_the_supported_range_is_rejected(version):
    model = score_model()
    model.opset_import[0].version = version
    rejected(model, f"opset {version}", f"between 13 and {onnx.defs.onnx_opset_version()}", "opset_version=")


def test_fixed_batch_dimension_is_rejected():
    model = score_model()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 32
    rejected(model, "fixed batch size of 32", "dynamic_axes", "dynamic_shapes")


@pytest.mark.parametrize(
    ("elem", "shape", "phrase"),
    [
        (TensorProto.STRING, ["N"], "STRING"),
        (TensorProto.BOOL, ["N"], "BOOL"),
        (FLOAT, ["N", 2, 2], "[N, 2, 2]"),
        (FLOAT, ["N", "k"], "no fixed feature width"),
    ],
)
def test_inputs_must_be_id_or_value_batches(elem, shape, phrase):
    node = helper.make_node("Cast", ["x"], ["y"], to=FLOAT)
    rejected(tiny([node], [value("x", elem, shape)], [value("y", shape=shape)]), phrase, "Input 'x'")


def test_output_with_more_than_one_value_per_row_is_rejected():
    node = helper.make_node("Reshape", ["x", "shape"], ["y"])
    shape = numpy_helper.from_array(np.array([-1, 3, 2], dtype=np.int64), "shape")
    model = tiny([node], [value("x", shape=["N", 6])], [value("y", shape=["N", 3, 2])], [shape])
    rejected(model, "shape [N, 3, 2]", "one score per row")


def test_output_must_be_a_float_score():
    model = tiny(
        [helper.make_node("ArgMax", ["x"], ["label"], axis=1)], [value("x", shape=["N", 3])], [value("label", INT64)]
    )
    rejected(model, "No output of the model is a float tensor", "'label'")


def test_several_float_outputs_are_ambiguous():
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Sigmoid", ["x"], ["b"])]
    rejected(tiny(nodes, [value("x")], [value("a"), value("b")]), "several float outputs", "'a', 'b'")


def test_operator_outside_the_supported_set_is_named():
    rejected(score_model(), "Sigmoid (domain ai.onnx)", "MatMul", supported_ops=frozenset({"MatMul"}))


def test_custom_domain_operator_is_named():
    node = helper.make_node("Frobnicate", ["x"], ["y"], domain="com.example")
    model = tiny([node], [value("x")], [value("y")], imports=[helper.make_opsetid("com.example", 1)])
    rejected(model, "Frobnicate (domain com.example)", "Re-export")


def test_default_operator_set_is_exactly_what_the_engine_runs():
    from fusion.onnx_torch.ops import SUPPORTED_OPS as ENGINE_OPS

    assert ENGINE_OPS == SUPPORTED_OPS
    rejected(tiny([helper.make_node("Resize", ["x"], ["y"])], [value("x")], [value("y")]), "Resize")


@pytest.mark.parametrize(
    ("nodes", "phrase"),
    [
        ([helper.make_node("Relu", ["nowhere"], ["y"])], "which no node, input or initializer defines"),
        ([helper.make_node("Add", ["x", "b"], ["s"]), helper.make_node("Relu", ["s"], ["b"]),
          helper.make_node("Relu", ["s"], ["y"])], "cycle"),
        ([helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Sigmoid", ["x"], ["y"])], "more than once"),
        ([helper.make_node("Add", ["x", "k"], ["y"])], "not a valid ONNX graph"),
    ],
)  # fmt: skip
def test_malformed_graphs_are_rejected(nodes, phrase):
    k = numpy_helper.from_array(np.array([1], dtype=np.int64), "k")
    rejected(tiny(nodes, [value("x")], [value("y")], [k]), phrase)


def test_model_that_fails_in_onnx_runtime_is_rejected():
    shape = numpy_helper.from_array(np.array([3], dtype=np.int64), "shape")
    model = tiny([helper.make_node("Reshape", ["x", "shape"], ["y"])], [value("x")], [value("y", shape=["M"])], [shape])
    rejected(model, "ONNX Runtime could not run the model")


def test_output_that_ignores_the_batch_is_rejected():
    node = helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=0)
    axes = numpy_helper.from_array(np.array([0], dtype=np.int64), "axes")
    model = tiny([node], [value("x", shape=["N", 3])], [value("y", shape=["M"])], [axes])
    rejected(model, "returned shape [3] instead of [2]")


def test_intake_never_imports_torch(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(score_model().SerializeToString())
    code = (
        "import sys, pathlib\n"
        "from fusion.intake import load_model\n"
        f"load_model(pathlib.Path({str(path)!r}).read_bytes())\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True)
