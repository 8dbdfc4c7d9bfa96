"""The fusebox service: REST API (FastAPI), job tracking (SQLAlchemy), inference (ONNX Runtime)."""

__version__ = "0.1.0"
