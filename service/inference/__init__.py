"""Inference of deployed fused models (Open Inference Protocol v2 and /v1/predict).

Nothing on this path imports torch or the fusion engine: ONNX Runtime runs the exported file.
"""
