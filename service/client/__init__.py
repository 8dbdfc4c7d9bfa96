"""A typed Python client for the fusebox API (service/cli/ builds the `fusebox` server commands on it).

Needs only httpx and pydantic: no torch, no server code, so it installs and imports fast anywhere.

    from service.client import FuseboxClient
    with FuseboxClient("http://127.0.0.1:8000", api_key="fbx_...") as fusebox:
        model = fusebox.upload_model("income_mlp.onnx", name="income_mlp", task="income")
"""

from service.client.client import FuseboxClient
from service.client.errors import ApiError, FuseboxError, ServiceUnreachable
from service.client.schemas import (
    Dataset,
    DeployedModel,
    DeploymentBatching,
    Hyperparameters,
    InferenceInput,
    InferenceResult,
    Job,
    JobSpec,
    JobTaskSpec,
    ModelMetadata,
    Prediction,
    ServerEvent,
    SourceModel,
)

__all__ = [
    "ApiError",
    "Dataset",
    "DeployedModel",
    "DeploymentBatching",
    "FuseboxClient",
    "FuseboxError",
    "Hyperparameters",
    "InferenceInput",
    "InferenceResult",
    "Job",
    "JobSpec",
    "JobTaskSpec",
    "ModelMetadata",
    "Prediction",
    "ServerEvent",
    "ServiceUnreachable",
    "SourceModel",
]
