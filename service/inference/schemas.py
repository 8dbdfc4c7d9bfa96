"""Open Inference Protocol v2 (REST, JSON) messages, and the records-in / predictions-out shapes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

PLATFORM = "onnx_onnxv1"


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class ServerLive(BaseModel):
    live: bool


class ServerReady(BaseModel):
    ready: bool


class ModelReady(BaseModel):
    name: str
    ready: bool


class TensorMetadata(BaseModel):
    name: str
    datatype: str = Field(examples=["FP32"])
    shape: list[int] = Field(description="-1 where any size is accepted (the batch).", examples=[[-1]])


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str = PLATFORM
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class RequestInput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any] | None = Field(
        default=None, description="Row-major values, flat or nested; absent when parameters.binary_data_size is set."
    )
    parameters: dict[str, Any] | None = Field(
        default=None,
        description="binary_data_size: the tensor's bytes follow the JSON header (binary tensor extension).",
    )


class RequestOutput(BaseModel):
    name: str
    parameters: dict[str, Any] | None = Field(default=None, description="binary_data: true for raw bytes.")


class InferenceRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "inputs": [
                        {"name": "age", "shape": [2], "datatype": "FP32", "data": [0.3, 0.5]},
                        {"name": "education", "shape": [2], "datatype": "INT64", "data": [3, 7]},
                    ],
                    "outputs": [{"name": "income"}],
                }
            ]
        }
    )

    id: str | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = Field(default=None, description="Default: every output.")
    parameters: dict[str, Any] | None = Field(default=None, description="binary_data_output: every output as bytes.")


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any] | None = None
    parameters: dict[str, Any] | None = Field(default=None, description="binary_data_size, for binary outputs.")


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[ResponseOutput]


class PredictRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"records": [{"age": 0.3, "education": 3, "sex": 1}]}]})

    records: list[dict[str, Any]] = Field(min_length=1, description="One object per row: column -> value.")


class PredictResponse(BaseModel):
    model_name: str
    model_version: str
    predictions: list[dict[str, float | list[float]]] = Field(
        description="Per row and task: a probability (binary), a value (regression), class probabilities."
    )


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema with its $defs written in place: OpenAPI resolves $ref from the document's root, so a
    schema handed to it by hand cannot keep pydantic's local references."""
    definitions = schema.get("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(definitions[node["$ref"].rsplit("/", 1)[-1]])
            return {key: resolve(value) for key, value in node.items() if key != "$defs"}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    return resolve(schema)
