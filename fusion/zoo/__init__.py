"""The model zoo: reference single-task architectures, from-scratch multi-task baselines, their
trainer, and export to the ONNX signature fusebox expects from uploaded models."""

from fusion.zoo.export import export_onnx
from fusion.zoo.multi_task import MULTITASK_KINDS, build_multitask_model
from fusion.zoo.single_task import SINGLE_TASK_FAMILIES, build_single_task_model
from fusion.zoo.train import evaluate_model, frame_tensors, schema_source, train_model

__all__ = [
    "MULTITASK_KINDS",
    "SINGLE_TASK_FAMILIES",
    "build_multitask_model",
    "build_single_task_model",
    "evaluate_model",
    "export_onnx",
    "frame_tensors",
    "schema_source",
    "train_model",
]
