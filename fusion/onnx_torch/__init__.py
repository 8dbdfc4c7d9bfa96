"""ONNX graphs as differentiable PyTorch modules, with fusebox's own op table.

`OnnxGraphModule(model)` runs a whole model (`forward`), any topologically ordered subset of its
nodes (`run_nodes`), or a component between named tensors (`component`); all share the model's
parameters. `SUPPORTED_OPS` lists the default-domain op types it can run.
"""

from fusion.onnx_torch.module import MIN_OPSET, GraphComponent, OnnxGraphModule, UnsupportedModelError
from fusion.onnx_torch.ops import SUPPORTED_OPS

__all__ = ["MIN_OPSET", "SUPPORTED_OPS", "GraphComponent", "OnnxGraphModule", "UnsupportedModelError"]
