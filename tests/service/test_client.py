"""The Python client against the live service (PostgreSQL, Redis, a Celery worker): uploads, listings,
errors as exceptions with the server's words, the job that `fusebox fuse --wait` ran, inference; and the
client's job spec held against the API's live OpenAPI schema."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import httpx
import numpy as np
import onnx
import pandas as pd
import pytest
from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from service.client import ApiError, FuseboxClient, InferenceInput, JobSpec, ServiceUnreachable
from service.client.sse import parse_events
from tests.helpers.cli_job import JOB_NAME, CliJob, fused_over_cli
from tests.helpers.stacks import Stack
from tests.helpers.uploads import DataFiles, SourceFile


@pytest.fixture(scope="module")
def stack(pg_stack: Stack) -> Stack:
    return pg_stack


@pytest.fixture
def client(stack: Stack) -> Iterator[FuseboxClient]:
    with FuseboxClient(stack.url, stack.api_key) as client:
        yield client


@pytest.fixture(scope="module")
def cli_job(stack: Stack, source_files: list[SourceFile], data_files: DataFiles) -> CliJob:
    return fused_over_cli(stack, source_files, data_files)


def test_upload_list_show_and_delete(
    client: FuseboxClient, source_files: list[SourceFile], data_files: DataFiles
) -> None:
    deepfm = next(source for source in source_files if source.weights is not None)
    model = client.upload_model(deepfm.path, "client_deepfm", deepfm.task, weights=deepfm.weights)
    assert model.task.name == deepfm.task and model.task.type == "binary"
    assert model.decomposition.body_components >= 1 and "stem" in model.decomposition.tree
    assert [found.id for found in client.list_models(name="client_deepfm")] == [model.id]
    assert client.get_model(model.id) == model

    dataset = client.upload_dataset(data_files.validation, name="client validation", label_columns=data_files.tasks)
    assert dataset.rows == 2000 and dataset.source_format == "csv"
    assert dataset.id in {listed.id for listed in client.list_datasets()}
    assert client.get_dataset(dataset.id).columns == dataset.columns

    client.delete_model(model.id)
    with pytest.raises(ApiError) as missing:
        client.get_model(model.id)
    assert missing.value.status_code == 404 and str(model.id) in missing.value.message


def test_errors_carry_the_servers_message(stack: Stack, client: FuseboxClient, source_files: list[SourceFile]) -> None:
    source = source_files[0]
    client.upload_model(source.path, "client_twice", source.task, weights=source.weights)
    with pytest.raises(ApiError) as taken:
        client.upload_model(source.path, "client_twice", source.task, weights=source.weights)
    assert taken.value.status_code == 409 and "client_twice" in taken.value.message

    spec = {"name": "nothing", "dataset_id": str(uuid.uuid4()), "validation_fraction": 0.1,
            "tasks": [{"name": "income", "models": [str(uuid.uuid4())]}]}  # fmt: skip
    with pytest.raises(ApiError) as refused:
        client.create_job(spec)
    assert refused.value.status_code in (404, 422) and refused.value.message
    assert refused.value.method == "POST" and refused.value.url.endswith("/v1/fusion-jobs")

    with pytest.raises(ApiError) as unknown:  # /v2 answers {"error": ...}
        client.model_metadata("no_such_model")
    assert unknown.value.status_code == 404 and "no_such_model" in unknown.value.message

    with FuseboxClient(stack.url, "fbx_not_a_key") as stranger, pytest.raises(ApiError) as unauthorized:
        stranger.list_models()
    assert unauthorized.value.status_code == 401 and "key" in unauthorized.value.message

    with FuseboxClient("http://127.0.0.1:9", stack.api_key) as nowhere, pytest.raises(ServiceUnreachable):
        nowhere.server_live()


def test_field_errors_become_problems(client: FuseboxClient) -> None:
    spec = {"name": "bad name!", "dataset_id": str(uuid.uuid4()), "validation_fraction": 0.1,
            "tasks": [{"name": "income", "models": [str(uuid.uuid4())]}]}  # fmt: skip
    with pytest.raises(ApiError) as invalid:
        client.create_job(spec)
    assert invalid.value.status_code == 422
    assert any(problem.startswith("name:") for problem in invalid.value.problems), invalid.value.problems
    assert "name:" in str(invalid.value)


def test_jobs_inference_and_download_through_the_client(
    client: FuseboxClient, cli_job: CliJob, data_files: DataFiles, tmp_path: Path
) -> None:
    job = next(job for job in client.list_jobs(status="succeeded") if job.name == JOB_NAME)
    assert client.get_job(job.id) == job and job.finished and job.report is not None
    assert client.wait_for_job(job.id, on_update=lambda seen: None) == job
    fused = onnx.load(str(client.download_model(job.id, tmp_path / "fused.onnx")))
    assert [output.name for output in fused.graph.output] == data_files.tasks

    assert client.server_live() and client.server_ready() and client.server_metadata().name == "fusebox"
    assert client.model_ready(JOB_NAME) and client.model_ready(JOB_NAME, version=1)
    metadata = client.model_metadata(JOB_NAME)
    rows = pd.read_csv(data_files.validation).head(5)
    inputs = [
        InferenceInput(name=spec.name, shape=[len(rows)], datatype=spec.datatype, data=rows[spec.name].tolist())
        for spec in metadata.inputs
    ]
    inferred = client.infer(JOB_NAME, inputs, outputs=["income"], version=1, request_id="r-7")
    assert inferred.id == "r-7" and [output.name for output in inferred.outputs] == ["income"]
    predicted = client.predict(JOB_NAME, rows.drop(columns=data_files.tasks).to_dict("records"))
    np.testing.assert_allclose(
        [row["income"] for row in predicted.predictions], inferred.output("income").data, rtol=1e-6
    )

    with pytest.raises(ApiError) as finished:
        client.cancel_job(job.id)
    assert finished.value.status_code == 409


def test_deployments_and_their_batching_through_the_client(client: FuseboxClient, cli_job: CliJob) -> None:
    deployed = client.list_deployments(name=JOB_NAME)
    newest = max(deployed, key=lambda deployment: deployment.version)
    assert newest.latest and newest.predict_url == f"/v1/predict/{JOB_NAME}"
    assert [task.answered_by for task in newest.tasks] and all(not d.latest for d in deployed if d is not newest)

    changed = client.set_deployment_batching(JOB_NAME, newest.version, max_batch_wait_ms=0)
    assert changed.max_batch_wait_ms == 0 and changed.effective_max_batch_wait_ms == 0
    assert client.deployment_batching(JOB_NAME, newest.version) == changed
    restored = client.set_deployment_batching(JOB_NAME, newest.version, max_batch_wait_ms=None)
    assert restored.max_batch_wait_ms is None and restored.effective_max_batch_wait_ms > 0


def test_job_events_replay_a_finished_job(client: FuseboxClient, cli_job: CliJob) -> None:
    job = next(job for job in client.list_jobs(status="succeeded") if job.name == JOB_NAME)
    events = list(client.job_events(job.id))  # a finished job: everything so far, then `done`, then the end
    assert events[-1].event == "done" and events[-1].data["status"] == "succeeded"
    assert [event.data["epoch"] for event in events if event.event == "epoch"] == list(range(1, job.epoch + 1))


def test_sse_parsing() -> None:
    lines = [": keep-alive", "event: progress", 'data: {"epoch": 1}', "id: 7", "", "data: plain", "data: text", ""]
    events = list(parse_events([*lines, "event: end", "data: {}"]))
    assert [(e.event, e.data, e.id) for e in events] == [
        ("progress", {"epoch": 1}, "7"),
        ("message", "plain\ntext", "7"),
        ("end", {}, "7"),
    ]


def test_the_clients_job_spec_matches_the_live_api(stack: Stack) -> None:
    """Field names, and defaults where both sides declare one, of the job spec and every model nested in it."""
    with httpx.Client(base_url=stack.url) as http:
        api = http.get("/openapi.json").raise_for_status().json()
    body = api["paths"]["/v1/fusion-jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert spec_differences(JobSpec, body, api["components"]["schemas"]) == []


def spec_differences(
    model: type[BaseModel], schema: dict[str, Any], components: dict[str, Any], at: str = ""
) -> list[str]:
    declared = _object_schema(schema, components)
    assert declared is not None, f"{at or 'the request body'}: the API declares no object here"
    fields, properties = model.model_fields, declared["properties"]
    differences = [f"{at}{name}: only the API has it" for name in properties.keys() - fields.keys()]
    differences += [f"{at}{name}: only the client has it" for name in fields.keys() - properties.keys()]
    for name in sorted(properties.keys() & fields.keys()):
        field, property_schema = fields[name], _resolved(properties[name], components)
        if "default" in property_schema and not field.is_required() and field.default_factory is None:
            api_default, client_default = property_schema["default"], to_jsonable_python(field.default)
            if client_default != api_default:
                differences.append(f"{at}{name}: default {api_default!r} in the API, {client_default!r} in the client")
        api_choices, client_choices = _choices(property_schema, components), _literal_values(field.annotation)
        if api_choices is not None and client_choices is not None and api_choices != client_choices:
            differences.append(
                f"{at}{name}: choices {sorted(api_choices)} in the API, {sorted(client_choices)} in the client"
            )
        nested_model, nested_schema = _model_in(field.annotation), _object_schema(property_schema, components)
        if nested_model is not None and nested_schema is not None:
            differences += spec_differences(nested_model, nested_schema, components, f"{at}{name}.")
    return differences


def _resolved(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """A $ref replaced by what it points at, keeping what sits beside it (a description, a default)."""
    if "$ref" not in schema:
        return schema
    beside = {key: value for key, value in schema.items() if key != "$ref"}
    return {**_resolved(components[schema["$ref"].rsplit("/", 1)[1]], components), **beside}


def _object_schema(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any] | None:
    """The object with properties that `schema` is, holds in a list, or offers among its alternatives."""
    schema = _resolved(schema, components)
    if "properties" in schema:
        return schema
    inner = [schema["items"]] if "items" in schema else schema.get("anyOf", []) + schema.get("allOf", [])
    return next((found for part in inner if (found := _object_schema(part, components)) is not None), None)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a field holds, itself, in a list or as one of a union's members."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((found for arg in get_args(annotation) if (found := _model_in(arg)) is not None), None)


def _choices(schema: dict[str, Any], components: dict[str, Any]) -> set[Any] | None:
    """The closed set of values a property (or the items of a list property) takes, when it has one."""
    schema = _resolved(schema, components)
    if "enum" in schema:
        return set(schema["enum"])
    return _choices(schema["items"], components) if "items" in schema else None


def _literal_values(annotation: Any) -> set[Any] | None:
    """The values of a Literal annotation, itself or in a list."""
    if get_origin(annotation) is Literal:
        return set(get_args(annotation))
    found = [values for arg in get_args(annotation) if (values := _literal_values(arg)) is not None]
    return found[0] if found else None
