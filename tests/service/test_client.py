"""The Python client and the `fusebox` remote commands against the live service (PostgreSQL, Redis, a
Celery worker): uploads, listings, errors as exceptions with the server's words, a fusion job followed
with `fusebox fuse --wait`, inference and `fusebox predict`."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest

from service.client import ApiError, FuseboxClient, InferenceInput, ServiceUnreachable
from service.client.sse import parse_events
from tests.helpers import ROOT
from tests.helpers.stacks import Stack
from tests.helpers.uploads import DataFiles, SourceFile
from tests.service.cli_job import EPOCHS, JOB_NAME, CliJob, fusebox, fused_over_cli


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


def test_cli_models_and_datasets(stack: Stack, source_files: list[SourceFile], data_files: DataFiles) -> None:
    mlp = next(source for source in source_files if source.weights is None)
    uploaded = fusebox(stack, "models", "upload", str(mlp.path), "--name", "cli_upload_mlp", "--task", mlp.task)
    assert uploaded.returncode == 0, uploaded.stderr
    assert uploaded.stdout.startswith("uploaded cli_upload_mlp: ") and "body components" in uploaded.stdout

    listed = fusebox(stack, "models", "list", "--url", stack.url, "--api-key", stack.api_key)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0].split() == ["id", "name", "task", "type", "parameters", "created"]
    assert "cli_upload_mlp" in listed.stdout

    shown = fusebox(stack, "models", "show", "cli_upload_mlp")
    assert shown.returncode == 0, shown.stderr
    assert f"task {mlp.task} (binary)" in shown.stdout and "categorical" in shown.stdout and "stem" in shown.stdout

    dataset = fusebox(stack, "datasets", "upload", str(data_files.train), "--label-columns", ",".join(data_files.tasks))
    assert dataset.returncode == 0, dataset.stderr
    assert "6,000 rows" in dataset.stdout
    datasets = fusebox(stack, "datasets", "list")
    assert datasets.returncode == 0 and data_files.train.name in datasets.stdout

    refused = fusebox(stack, "models", "show", str(uuid.uuid4()), "--api-key", stack.api_key)
    assert refused.returncode == 1 and refused.stderr.startswith("fusebox: 404: ")


def test_fuse_wait_shows_progress_then_the_report(cli_job: CliJob) -> None:
    err, out = cli_job.run.stderr, cli_job.run.stdout
    assert "queued" in err.splitlines()[0]
    assert f"epoch 1/{EPOCHS}: train loss" in err and "income" in err
    assert "[" in err and "%" in err and err.rstrip().endswith("succeeded")
    table = out.splitlines()
    assert table[0].split() == ["task", "model", "metric", "validation", "test"]
    assert sum("exported model" in line for line in table) == 2
    assert f"deployed as {JOB_NAME} version 1: /v2/models/{JOB_NAME}/versions/1/infer" in out


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


def test_cli_predict(stack: Stack, cli_job: CliJob, data_files: DataFiles, tmp_path: Path) -> None:
    rows = pd.read_csv(data_files.validation).head(3).drop(columns=data_files.tasks)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    printed = fusebox(stack, "predict", JOB_NAME, "--records", str(tmp_path / "rows.csv"))
    assert printed.returncode == 0, printed.stderr
    lines = printed.stdout.splitlines()
    assert lines[0] == f"{JOB_NAME} version 1" and lines[1].split() == ["row", *data_files.tasks]
    assert [line.split()[0] for line in lines[3:]] == ["0", "1", "2"]

    record = json.dumps(rows.iloc[0].to_dict())
    answered = fusebox(stack, "predict", JOB_NAME, "--record", record, "--json")
    assert answered.returncode == 0, answered.stderr
    prediction = json.loads(answered.stdout)["predictions"][0]
    assert f"{prediction['income']:.4f}" == lines[3].split()[1]


def test_fuse_chooses_local_or_server_by_its_arguments(stack: Stack) -> None:
    both = fusebox(stack, "fuse", "spec.yaml", "--wait")
    assert both.returncode == 2 and "--wait: for a job on the server" in both.stderr
    neither = fusebox(stack, "fuse")
    assert neither.returncode == 2 and "give a SPEC file" in neither.stderr


def test_the_client_imports_neither_torch_nor_the_server() -> None:
    script = "import json, sys, service.client, service.client.cli; print(json.dumps(list(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    modules = set(json.loads(loaded))
    assert not modules & {"torch", "fastapi", "sqlalchemy", "onnx", "numpy", "celery"}
    assert not {module for module in modules if module.startswith(("service.core", "service.jobs", "worker"))}
