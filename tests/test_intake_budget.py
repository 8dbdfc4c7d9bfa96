"""The intake budget: tiny graphs that ask for huge tensors or huge arithmetic are refused from their shapes
alone, with the node, the size and the limit named; ordinary graphs are costed exactly and accepted. And
weights files: checked, probed and written out without a copy of them in memory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from fusion.intake import IntakeLimits, ModelRejected, load_model
from fusion.intake.budget import check_budget, estimate_cost
from tests.helpers.amplifiers import (
    chained_matmuls,
    constant_of_shape_bomb,
    external_mlp,
    filled,
    model_of,
    plus_total,
)

REPO = Path(__file__).resolve().parents[1]
FLOAT = TensorProto.FLOAT


def refused(model: onnx.ModelProto, *words: str, limits: IntakeLimits = IntakeLimits()) -> str:  # noqa: B008
    with pytest.raises(ModelRejected) as caught:
        load_model(model.SerializeToString(), limits=limits)
    message = str(caught.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    return message


def test_a_constant_of_shape_bomb_is_refused_with_the_node_and_size():
    model = constant_of_shape_bomb()
    assert len(model.SerializeToString()) < 400
    refused(model, "'bomb'", "ConstantOfShape", "[20000, 20000]", "1,525.9 MiB", "max_constant_tensor_bytes")


def test_chained_matmuls_are_refused_for_their_flops():
    model = chained_matmuls()
    assert len(model.SerializeToString()) < 1500
    refused(model, "2,160,0", "max_flops_per_row", "FUSEBOX_MAX_FLOPS_PER_ROW", "'link0' (MatMul, 54,000,000,000)")


def test_the_bomb_is_refused_before_onnx_runtime_allocates_it(tmp_path):
    """With the address space capped far below the 1.6 GB tensor, the answer is still the budget's: ONNX
    Runtime never got to allocate it (it would have failed with its own error, or the process died)."""
    path = tmp_path / "bomb.onnx"
    path.write_bytes(constant_of_shape_bomb().SerializeToString())
    code = (
        "import pathlib, resource\n"
        "from fusion.intake import ModelRejected, load_model\n"
        "import onnxruntime\n"
        "used = int(open('/proc/self/statm').read().split()[0]) * resource.getpagesize()\n"
        "resource.setrlimit(resource.RLIMIT_AS, (used + 1024 * 2**20, resource.RLIM_INFINITY))\n"
        "try:\n"
        f"    load_model(pathlib.Path({str(path)!r}).read_bytes())\n"
        "except ModelRejected as error:\n"
        "    print(error)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert "max_constant_tensor_bytes" in result.stdout


def test_the_limits_are_the_settings():
    """A 200 x 200 float constant (160,000 bytes) passes the default and is refused under a 100,000-byte
    limit; the same for bytes per row (300 + 1 floats) and FLOPs per row (300 for Relu, 2 * 300 for MatMul)."""
    small = constant_of_shape_bomb(side=200)
    load_model(small.SerializeToString())
    refused(small, "160,000 bytes", limits=IntakeLimits(max_constant_tensor_bytes=100_000))
    nodes = [helper.make_node("Relu", ["x"], ["active"]), helper.make_node("MatMul", ["active", "w"], ["y"])]
    wide = model_of(nodes, width=300, initializers=[weights("w", 300, 1)])
    load_model(wide.SerializeToString())
    refused(wide, "1,204 bytes per input row", "max_activation_bytes_per_row", limits=limits(activation=1203))
    refused(wide, "about 900 floating-point", "max_flops_per_row", limits=limits(flops=899))


def limits(activation: int = 2**30, flops: int = 10**12) -> IntakeLimits:
    return IntakeLimits(max_activation_bytes_per_row=activation, max_flops_per_row=flops)


def weights(name: str, rows: int, columns: int) -> onnx.TensorProto:
    return numpy_helper.from_array(np.full((rows, columns), 0.01, np.float32), name)


def test_an_mlp_is_costed_exactly():
    """x [N, 4] @ W [4, 3], Relu, @ V [3, 1]: 2*4*3 + 3 + 2*3*1 FLOPs and 12 + 12 + 4 bytes per row."""
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["hidden"]),
        helper.make_node("Relu", ["hidden"], ["active"]),
        helper.make_node("MatMul", ["active", "v"], ["y"]),
    ]
    estimate = estimate_cost(model_of(nodes, width=4, initializers=[weights("w", 4, 3), weights("v", 3, 1)]))
    assert estimate.flops_per_row == 24 + 3 + 6
    assert estimate.batch_independent_flops == 0
    assert estimate.bytes_per_row == 12 + 12 + 4
    assert estimate.constant_tensors == ()
    assert estimate.weight_bytes == (12 + 3) * 4
    assert estimate.unsized == ()


def test_a_batch_dependent_shape_is_sized_per_row():
    """Expand to [N, 1000] through Shape -> Gather -> Concat: data propagation sizes it at 1 and 2 rows."""
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["rows"]),
        helper.make_node("Concat", ["rows", "thousand"], ["target"], axis=0),
        helper.make_node("Expand", ["x", "target"], ["wide"], name="widen"),
        helper.make_node("ReduceSum", ["wide", "one"], ["y"], keepdims=1),
    ]
    consts = [
        numpy_helper.from_array(np.array([0], np.int64), "zero"),
        numpy_helper.from_array(np.array([1000], np.int64), "thousand"),
        numpy_helper.from_array(np.array([1], np.int64), "one"),
    ]
    model = model_of(nodes, initializers=consts)
    estimate = estimate_cost(model)
    assert estimate.row_tensors[0].tensor == "wide"
    assert estimate.row_tensors[0].nbytes == 4000
    refused(model, "'wide' of node 'widen' (Expand, shape [1, 1000]", limits=limits(activation=4000))


def test_weights_may_be_transformed_but_not_multiplied():
    """A transposed weight matrix is as large as the weights themselves and passes a zero allowance; a
    constant built from nothing does not."""
    nodes = [helper.make_node("Transpose", ["w"], ["wt"]), helper.make_node("MatMul", ["x", "wt"], ["y"])]
    transposed = model_of(nodes, width=50, initializers=[weights("w", 1, 50)])
    no_allowance = IntakeLimits(max_constant_tensor_bytes=0)
    load_model(transposed.SerializeToString(), limits=no_allowance)
    refused(constant_of_shape_bomb(side=2), "16 bytes", "more than its own weights (16 bytes)", limits=no_allowance)


def test_operators_shape_inference_does_not_know_are_listed_not_refused():
    """An operator of another domain (as ai.onnx.ml trees, or a custom one) with no inferable output: it is
    costed as unsized and the budget passes it on to the operator check and the probe."""
    nodes = [helper.make_node("Forest", ["x"], ["score"], domain="example.trees", name="trees")]
    nodes.append(helper.make_node("Identity", ["score"], ["y"]))
    model = model_of(nodes)
    model.opset_import.append(helper.make_opsetid("example.trees", 1))
    estimate = check_budget(model, IntakeLimits())
    assert estimate.unsized == ("trees", "Identity")


def test_a_generator_of_unknown_size_is_refused():
    """ConstantOfShape fed by something whose values cannot be inferred: nothing bounds what it would build."""
    nodes = [
        helper.make_node("Forest", ["x"], ["sizes"], domain="example.trees"),
        helper.make_node("Cast", ["sizes"], ["shape"], to=TensorProto.INT64),
        filled("shape", "built", name="blind"),
        *plus_total("built"),
    ]
    model = model_of(nodes)
    model.opset_import.append(helper.make_opsetid("example.trees", 1))
    with pytest.raises(ModelRejected, match=r"node 'blind' \(ConstantOfShape\) builds cannot be worked out"):
        check_budget(model, IntakeLimits())


# --- weights files ------------------------------------------------------------------------------------------


def test_large_weights_stay_in_their_file_and_are_streamed_into_the_stored_model(tmp_path):
    content, path, matrix = external_mlp(tmp_path, 256)
    loaded = load_model(content, ("model.onnx.data", path), embed_weights=False)
    (weight,) = [t for t in loaded.model.graph.initializer if t.name == "w"]
    assert weight.data_location == TensorProto.EXTERNAL and not weight.raw_data
    assert loaded.model.ByteSize() < 4096
    with pytest.raises(ValueError, match="write"):
        loaded.to_bytes()
    written = tmp_path / "stored.onnx"
    with written.open("wb") as handle:
        loaded.write(handle)
    stored = onnx.load(str(written), load_external_data=False)
    onnx.checker.check_model(stored, full_check=True)
    assert all(t.data_location == TensorProto.DEFAULT for t in stored.graph.initializer)
    x = np.random.default_rng(1).standard_normal((3, 256)).astype(np.float32)
    (scores,) = ort.InferenceSession(written.read_bytes(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    np.testing.assert_allclose(scores, (x @ matrix).sum(axis=1), rtol=1e-4, atol=1e-5)
    in_memory = load_model(content, ("model.onnx.data", path))
    assert in_memory.weights is None
    embedded = onnx.load_from_string(in_memory.to_bytes())
    assert embedded.graph.node == stored.graph.node
    by_name = {t.name: t for t in stored.graph.initializer}  # the streamed ones come last
    assert {t.name: t for t in embedded.graph.initializer} == by_name


def test_a_large_weights_file_is_never_copied_onto_the_heap(tmp_path):
    """256 MiB of weights checked, probed and written out while a thread samples the process's anonymous
    memory (RssAnon: the heap, not the mapped file): it never grows by half the weights, which one copy of
    them would."""
    content, _, _ = external_mlp(tmp_path, 8192)
    (tmp_path / "model.onnx").write_bytes(content)
    code = (
        "import pathlib, threading\n"
        "import onnxruntime\n"
        "from fusion.intake import load_model\n"
        "def anon():\n"
        "    status = open('/proc/self/status').read().splitlines()\n"
        "    return next(int(line.split()[1]) * 1024 for line in status if line.startswith('RssAnon:'))\n"
        "start, peak, done = anon(), [0], threading.Event()\n"
        "def sample():\n"
        "    while not done.is_set():\n"
        "        peak[0] = max(peak[0], anon())\n"
        "        done.wait(0.002)\n"
        "sampler = threading.Thread(target=sample)\n"
        "sampler.start()\n"
        f"folder = pathlib.Path({str(tmp_path)!r})\n"
        "weights = ('model.onnx.data', folder / 'model.onnx.data')\n"
        "loaded = load_model((folder / 'model.onnx').read_bytes(), weights, embed_weights=False)\n"
        "with (folder / 'stored.onnx').open('wb') as handle:\n"
        "    loaded.write(handle)\n"
        "done.set()\n"
        "sampler.join()\n"
        "print(peak[0] - start)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    growth = int(result.stdout.split()[-1])
    assert growth < 128 * 2**20, f"anonymous memory grew by {growth / 2**20:.0f} MiB"
    assert (tmp_path / "stored.onnx").stat().st_size > 256 * 2**20


def test_a_model_with_its_weights_in_a_file_that_fails_in_onnx_runtime_is_rejected(tmp_path):
    """Such a model is probed in a child process; what ONNX Runtime says there comes back as the rejection."""
    content, path, _ = external_mlp(tmp_path, 256)
    model = onnx.load_from_string(content)
    shape = numpy_helper.from_array(np.array([3], np.int64), "three")
    model.graph.node[-1].CopyFrom(helper.make_node("Reshape", ["h", "three"], ["y"]))
    model.graph.initializer.append(shape)
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", FLOAT, ["M"]))
    with pytest.raises(ModelRejected, match=r"ONNX Runtime could not run the model: .*(?i:reshape)"):
        load_model(model.SerializeToString(), ("model.onnx.data", path), embed_weights=False)
