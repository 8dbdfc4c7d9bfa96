"""Safe model intake: turn an uploaded ONNX file (and its weights file) into a canonical model.

Runs in the API process, so it imports neither torch nor anything that unpickles. Every problem is a
ModelRejected whose message tells the user what is wrong and what to change. The steps, in order:

1. bounded sizes, protobuf parsing, opset, local functions inlined (node count checked first);
2. declared tensor sizes, external data checked against the uploaded companion file only, data sizes
   (large weights stay in that file until the end: fusion/intake/weights.py);
3. graph structure, the score output chosen, everything it does not need pruned, operators checked (and
   the ai.onnx.ml ones' attributes), a classic model's old opset lifted;
4. the budget: intermediate tensor sizes and FLOPs per row, inferred from shapes, within the limits;
5. the ONNX checker with strict shape inference, feature inputs, the score made canonical;
6. ONNX Runtime loads and runs the result on a 2-row batch.
"""

from __future__ import annotations

from fusion.intake.budget import check_budget
from fusion.intake.cardinality import find_cardinalities
from fusion.intake.graph import check_ops, check_structure, prune_to
from fusion.intake.ml_attributes import check_ml_attributes
from fusion.intake.parsing import check_upload_sizes, default_opset, inline_functions, lift_opset, parse_model
from fusion.intake.records import InputSpec, IntakeLimits, LoadedModel, ModelRejected, ModelSignature
from fusion.intake.runtime import check_and_infer_shapes, probe
from fusion.intake.signature import (
    canonicalize_output,
    choose_score,
    feature_dims,
    is_probability,
    two_class_classifier,
)
from fusion.intake.tensor_checks import check_declared_sizes, check_tensor_data, embed_external_data
from fusion.intake.weights import WeightsFile, deferred, embed_deferred, open_weights
from fusion.supported_ops import SUPPORTED_OPS

__all__ = ["InputSpec", "IntakeLimits", "LoadedModel", "ModelRejected", "ModelSignature", "load_model"]


def load_model(
    model_bytes: bytes,
    weights: WeightsFile | None = None,
    *,
    limits: IntakeLimits = IntakeLimits(),  # noqa: B008 - frozen, so a shared default is safe
    supported_ops: frozenset[str] | None = None,
    embed_weights: bool = True,
) -> LoadedModel:
    """Validate an uploaded model and return it canonical and self-contained, with its signature.

    `weights` is the companion file PyTorch's exporter writes beside the model (file name as uploaded,
    and its bytes, read whole or mapped, or its path). `supported_ops` defaults to the operators the
    fusion engine can run. With `embed_weights=False` the large weights are left in the weights file
    (which must then outlive the result) and LoadedModel.write streams them into the file it writes.
    """
    check_upload_sizes(model_bytes, weights, limits)
    model = parse_model(model_bytes)
    opset = default_opset(model)
    model = inline_functions(model, limits.max_nodes)
    model.ClearField("training_info")  # on-device training graphs: not part of the model we run
    check_declared_sizes(model.graph, limits)
    with open_weights(weights) as data:
        embed_external_data(model.graph, data)
    check_tensor_data(model)

    check_structure(model.graph)
    score = choose_score(model.graph)
    prune_to(model, score)
    check_ops(model.graph, SUPPORTED_OPS if supported_ops is None else supported_ops)
    check_ml_attributes(model.graph)
    model = lift_opset(model)
    features = {value.name: feature_dims(value) for value in model.graph.input}
    if not features:
        raise ModelRejected("The model's output does not depend on any input. Export the trained model itself.")

    check_budget(model, limits)  # before anything allocates or computes what the graph asks for
    shapes = check_and_infer_shapes(model)
    probability = is_probability(model.graph, score)
    two_classes = two_class_classifier(model.graph, score)
    output_width = canonicalize_output(model.graph, score, shapes.get(score), probability, two_classes)
    ids = [name for name, (kind, *_) in features.items() if kind == "categorical"]
    cardinalities = find_cardinalities(model.graph, ids, shapes)
    inputs = tuple(
        InputSpec(name, kind, dtype, width, cardinalities.get(name), rank=rank)
        for name, (kind, dtype, width, rank) in features.items()
    )
    probe(model, inputs, output_width, weights)
    signature = ModelSignature(
        inputs=inputs,
        output_name=score,
        output_width=output_width,
        output_is_probability=probability,
        opset=opset,
        producer=f"{model.producer_name} {model.producer_version}".strip(),
    )
    if not embed_weights and deferred(model):
        return LoadedModel(model=model, signature=signature, weights=weights)
    with open_weights(weights) as data:
        if data is not None:
            embed_deferred(model, data)
    return LoadedModel(model=model, signature=signature)
