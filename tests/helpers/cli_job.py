"""The `fusebox` CLI run against a live stack, and one fusion job started with `fusebox fuse --wait`,
run once per stack and shared by the client and observability tests (it is the slow part of both)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

from service.client import FuseboxClient
from tests.helpers import ROOT
from tests.helpers.stacks import Stack
from tests.helpers.uploads import DataFiles, SourceFile

JOB_NAME = "clientjob"
EPOCHS = 2


TRAIN = "cli-train"
VALIDATION = "cli-validation"
"""The datasets' names: the job names them, not their ids."""


def fusebox(stack: Stack, *args: str, timeout: float = 300, configured: bool = True) -> subprocess.CompletedProcess:
    """The console script's entry point, told where the service is through the environment unless not
    `configured`."""
    server = {"FUSEBOX_URL": stack.url, "FUSEBOX_API_KEY": stack.api_key} if configured else {}
    env = {name: value for name, value in stack.env.items() if not name.startswith("FUSEBOX_")} | server
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


@dataclass(frozen=True)
class CliJob:
    run: subprocess.CompletedProcess
    """`fusebox fuse --wait`, finished."""


_jobs: dict[str, CliJob] = {}


def fused_over_cli(stack: Stack, source_files: list[SourceFile], data_files: DataFiles) -> CliJob:
    """Models and data uploaded with the client, then `fusebox fuse --wait` naming models and datasets by name."""
    if stack.url not in _jobs:
        with FuseboxClient(stack.url, stack.api_key) as client:
            models = [
                client.upload_model(s.path, f"cli_{s.name}", s.task, weights=s.weights).name for s in source_files
            ]
            client.upload_dataset(data_files.train, name=TRAIN, label_columns=data_files.tasks)
            client.upload_dataset(data_files.validation, name=VALIDATION)
        tasks = [f"--task={source.task}={model}" for source, model in zip(source_files, models, strict=True)]
        run = fusebox(
            stack, "fuse", "--wait", "--name", JOB_NAME, "--dataset", TRAIN, "--validation-dataset", VALIDATION, *tasks,
            "--set", f"max_epochs={EPOCHS}", "--set", "batch_size=512", "--set", "patience=1",
        )  # fmt: skip
        assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\n{stack.logs()}"
        _jobs[stack.url] = CliJob(run)
    return _jobs[stack.url]
