"""Fused models, their deployments, and inference (Open Inference Protocol v2 and /v1/predict).

Nothing on this path imports torch or the fusion engine: ONNX Runtime runs the exported file.
"""
