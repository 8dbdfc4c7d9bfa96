"""The `fusebox` server commands as a user runs them, against the live service (PostgreSQL, Redis, a Celery
worker): models and datasets (by name or id), a job followed with `fuse --wait` and `jobs ...`, predictions,
the global options on either side of the command, every failure as one line, and all of it on an install
that has only httpx and pydantic."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import onnx
import pandas as pd
import pytest

from service.client import FuseboxClient
from tests.helpers import ROOT
from tests.helpers.cli_job import EPOCHS, JOB_NAME, TRAIN, VALIDATION, CliJob, fusebox, fused_over_cli
from tests.helpers.stacks import Stack
from tests.helpers.uploads import DataFiles, SourceFile

CLIENT_INSTALL_LACKS = (
    "torch", "numpy", "pandas", "pyarrow", "onnx", "onnxruntime", "onnxscript", "yaml",
    "fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "psycopg", "celery", "redis",
)  # fmt: skip
"""What `pip install fusebox` (httpx and pydantic) does not bring."""


@pytest.fixture(scope="module")
def stack(pg_stack: Stack) -> Stack:
    return pg_stack


@pytest.fixture(scope="module")
def cli_job(stack: Stack, source_files: list[SourceFile], data_files: DataFiles) -> CliJob:
    return fused_over_cli(stack, source_files, data_files)


@pytest.fixture(scope="module")
def job_id(stack: Stack, cli_job: CliJob) -> str:
    with FuseboxClient(stack.url, stack.api_key) as client:
        return str(next(job.id for job in client.list_jobs(status="succeeded") if job.name == JOB_NAME))


def failure(done: subprocess.CompletedProcess) -> str:
    """The one line a failed command printed last, `fusebox: <status>: <message>`."""
    assert done.returncode == 1, (done.stdout, done.stderr)
    last = done.stderr.splitlines()[-1]
    assert last.startswith("fusebox: "), done.stderr
    return last


def test_models_and_datasets(stack: Stack, source_files: list[SourceFile], data_files: DataFiles) -> None:
    mlp = next(source for source in source_files if source.weights is None)
    uploaded = fusebox(stack, "models", "upload", str(mlp.path), "--name", "cli_upload_mlp", "--task", mlp.task)
    assert uploaded.returncode == 0, uploaded.stderr
    assert uploaded.stdout.startswith("uploaded cli_upload_mlp: ") and "body components" in uploaded.stdout

    listed = fusebox(stack, "models", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0].split() == ["id", "name", "task", "type", "parameters", "created"]
    assert "cli_upload_mlp" in listed.stdout

    shown = fusebox(stack, "models", "show", "cli_upload_mlp")
    assert shown.returncode == 0, shown.stderr
    assert f"task {mlp.task} (binary)" in shown.stdout and "categorical" in shown.stdout and "stem" in shown.stdout

    upload = ["datasets", "upload", str(data_files.train), "--name", "census-rows"]
    dataset = fusebox(stack, *upload, "--label-columns", ",".join(data_files.tasks))
    assert dataset.returncode == 0, dataset.stderr
    assert "6,000 rows" in dataset.stdout
    datasets = fusebox(stack, "datasets", "list")
    assert datasets.returncode == 0 and "census-rows" in datasets.stdout
    by_name = fusebox(stack, "datasets", "show", "census-rows")
    assert by_name.returncode == 0, by_name.stderr
    assert "census-rows (" in by_name.stdout and "6,000 rows" in by_name.stdout
    assert any(line.split()[0] == data_files.tasks[0] for line in by_name.stdout.splitlines()[2:])
    dataset_id = dataset.stdout.split()[2]
    assert fusebox(stack, "datasets", "show", dataset_id).stdout == by_name.stdout

    missing = str(uuid.uuid4())
    assert failure(fusebox(stack, "models", "show", missing)).startswith("fusebox: 404: ")
    twice = fusebox(stack, *upload)
    assert twice.returncode == 0, twice.stderr
    assert failure(fusebox(stack, "datasets", "show", "census-rows")).startswith("fusebox: ambiguous: 2 datasets")


def test_global_options_go_before_or_after_the_command(stack: Stack) -> None:
    server = ["--url", stack.url, "--api-key", stack.api_key]
    before = fusebox(stack, *server, "models", "list", configured=False)
    after = fusebox(stack, "models", "list", *server, configured=False)
    assert before.returncode == after.returncode == 0, (before.stderr, after.stderr)
    assert before.stdout == after.stdout and before.stdout.startswith("id ")
    split = fusebox(stack, "--url", stack.url, "models", "list", "--api-key", stack.api_key, configured=False)
    assert split.stdout == before.stdout

    assert failure(fusebox(stack, "--url", stack.url, "models", "list", configured=False)).startswith("fusebox: 401: ")
    unreachable = failure(fusebox(stack, "models", "list", "--url", "http://127.0.0.1:9"))
    assert unreachable.startswith("fusebox: unreachable: GET http://127.0.0.1:9/v1/models")


def test_fuse_wait_shows_progress_then_the_report(cli_job: CliJob) -> None:
    err, out = cli_job.run.stderr, cli_job.run.stdout
    assert "queued" in err.splitlines()[0]
    assert f"epoch 1/{EPOCHS}: train loss" in err and "income" in err
    assert "[" in err and "%" in err and err.rstrip().endswith("succeeded")
    table = out.splitlines()
    assert table[0].split() == ["task", "model", "metric", "validation", "test", "train", "answered", "by"]
    assert sum("exported model" in line for line in table) == 2
    assert f"deployed as {JOB_NAME} version 1: /v2/models/{JOB_NAME}/versions/1/infer" in out


def test_jobs_list_show_follow_download_and_cancel(
    stack: Stack, cli_job: CliJob, job_id: str, data_files: DataFiles, tmp_path: Path
) -> None:
    listed = fusebox(stack, "jobs", "list", "--status", "succeeded")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0].split() == ["id", "name", "status", "progress", "epoch", "created"]
    assert [job_id, JOB_NAME, "succeeded", "100%"] in [line.split()[:4] for line in listed.stdout.splitlines()]

    shown = fusebox(stack, "jobs", "show", job_id)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"{JOB_NAME} ({job_id}): succeeded")
    assert ["epoch", "train", "loss", *data_files.tasks] in [line.split() for line in shown.stdout.splitlines()]
    assert cli_job.run.stdout.splitlines()[0] in shown.stdout  # the report table's header

    followed = fusebox(stack, "jobs", "follow", job_id)  # a finished job: its end, at once
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout == cli_job.run.stdout
    assert followed.stderr.rstrip().endswith("succeeded")

    downloaded = fusebox(stack, "jobs", "download", job_id, "--out", str(tmp_path / "fused.onnx"))
    assert downloaded.returncode == 0, downloaded.stderr
    assert downloaded.stdout.strip() == f"wrote {tmp_path / 'fused.onnx'}"
    fused = onnx.load(str(tmp_path / "fused.onnx"))
    assert [output.name for output in fused.graph.output] == data_files.tasks

    assert failure(fusebox(stack, "jobs", "cancel", job_id)).startswith("fusebox: 409: ")


def test_a_job_cancelled_then_followed_to_its_end(
    stack: Stack, cli_job: CliJob, source_files: list[SourceFile]
) -> None:
    source = source_files[0]
    started = fusebox(
        stack, "fuse", "--name", "cancelled", "--dataset", TRAIN, "--validation-dataset", VALIDATION,
        f"--task={source.task}=cli_{source.name}", "--set", "max_epochs=500",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    job_id = started.stdout.strip()

    cancelled = fusebox(stack, "jobs", "cancel", job_id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.startswith(f"job {job_id} ")
    followed = fusebox(stack, "jobs", "follow", job_id)
    assert failure(followed) == f"fusebox: cancelled: job {job_id}"


def test_every_failure_is_one_line(stack: Stack, cli_job: CliJob, source_files: list[SourceFile]) -> None:
    source = source_files[0]
    task = f"--task={source.task}=cli_{source.name}"
    job = ["fuse", "--dataset", TRAIN, "--validation-fraction", "0.1", task]

    unknown = failure(fusebox(stack, "fuse", "--dataset", "census-nowhere", "--validation-fraction", "0.1", task))
    assert unknown == (
        "fusebox: not found: there is no dataset named 'census-nowhere': `fusebox datasets list` shows them"
    )
    typo = failure(fusebox(stack, *job, "--set", "max_epoch=5"))
    assert typo == "fusebox: invalid: hyperparameters.max_epoch: Extra inputs are not permitted"
    not_a_number = failure(fusebox(stack, *job, "--set", "max_epochs=many"))
    assert not_a_number.startswith("fusebox: invalid: hyperparameters.max_epochs: Input should be a valid integer")
    refused = failure(fusebox(stack, *job, "--set", "batch_size=0", "--name", "bad name!"))
    assert refused.startswith("fusebox: 422: the request has 2 invalid field(s); ")
    assert "name: " in refused and "hyperparameters.batch_size: " in refused


def test_predict(stack: Stack, cli_job: CliJob, data_files: DataFiles, tmp_path: Path) -> None:
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
    both = failure(fusebox(stack, "fuse", "spec.yaml", "--wait"))
    assert both == "fusebox: usage: --wait: for a job on the server; a SPEC file fuses here. Give one or the other"
    neither = failure(fusebox(stack, "fuse"))
    assert neither.startswith("fusebox: usage: give a SPEC file")


def test_the_server_commands_need_only_httpx_and_pydantic(stack: Stack, job_id: str) -> None:
    """The entry point run with every module a client install lacks made unimportable."""
    bootstrap = (
        "import sys\n"
        f"sys.modules.update(dict.fromkeys({CLIENT_INSTALL_LACKS!r}))\n"
        "from service.cli.main import main\n"
        "sys.exit(main())\n"
    )
    env = {**stack.env, "FUSEBOX_URL": stack.url, "FUSEBOX_API_KEY": stack.api_key}
    for command in (["--help"], ["models", "list"], ["datasets", "show", TRAIN], ["jobs", "show", job_id]):
        done = subprocess.run(
            [sys.executable, "-c", bootstrap, *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, (command, done.stderr)
    assert "exported model" in done.stdout  # the report table, formatted without the engine
