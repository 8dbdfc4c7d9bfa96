"""Datasets registered by reference: Parquet files read in place under the stack's data root, with their
statistics gathered row group by row group, refused when they lie outside the root or cannot be used, and
a job refused or failed when its files changed since registration."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from fusion.data.census import CensusData
from service.client import FuseboxClient
from tests.helpers import ROOT
from tests.helpers.jobs import CENSUS_HYPERPARAMETERS, wait_for_job
from tests.helpers.refusals import nothing_stored, refused
from tests.helpers.stacks import Stack
from tests.helpers.uploads import SourceFile, upload_model

ROW_GROUP = 500


@pytest.fixture(scope="module")
def stack(pg_stack: Stack) -> Stack:
    """PostgreSQL and Redis only: the job these tests run is the slow part, and the embedded stack reads
    references the same way."""
    return pg_stack


def write_parts(folder: Path, frame: pd.DataFrame, parts: int) -> list[Path]:
    """`frame` as `parts` Parquet files of several row groups each."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    size = -(-len(frame) // parts)
    for index in range(parts):
        path = folder / f"part-{index}.parquet"
        frame.iloc[index * size : (index + 1) * size].to_parquet(path, index=False, row_group_size=ROW_GROUP)
        paths.append(path)
    return paths


def register(client: httpx.Client, uri: str, **fields: str) -> httpx.Response:
    return client.post("/v1/datasets", json={"uri": uri, **fields})


@pytest.fixture
def folder(stack: Stack) -> str:
    """A fresh folder under the data root, by its name relative to the root."""
    name = f"refs-{uuid.uuid4().hex[:8]}"
    (stack.data_root / name).mkdir(parents=True)
    return name


def test_a_file_a_folder_and_a_glob_are_registered_with_their_statistics(stack: Stack, folder: str) -> None:
    frame = pd.DataFrame(
        {"x": np.arange(3000, dtype=np.float64) / 10, "label": np.tile([0.0, 1.0, np.nan], 1000), "k": 7}
    )
    write_parts(stack.data_root / folder, frame, parts=3)
    with stack.client() as client:
        for uri, rows in ((f"{folder}/part-1.parquet", 1000), (folder, 3000), (f"{folder}/part-[01].parquet", 2000)):
            response = register(client, uri, label_columns="label")
            assert response.status_code == 201, response.text
            dataset = response.json()
            assert dataset["source_kind"] == "reference" and dataset["uri"] == uri and dataset["name"] == uri
            assert dataset["rows"] == rows and dataset["sha256"] is None
            assert len(dataset["files"]) == rows // 1000
        columns = {column["name"]: column for column in dataset["columns"]}
        assert columns["x"] == {
            "name": "x", "dtype": "float64", "missing": 0, "min": 0.0, "max": 199.9,
            "integer_valued": False, "values": None,
        }  # fmt: skip
        assert columns["label"]["missing"] == 666 and columns["label"]["values"] == [0.0, 1.0]
        assert columns["k"] == {
            "name": "k", "dtype": "int64", "missing": 0, "min": 7.0, "max": 7.0, "integer_valued": True,
            "values": [7.0],
        }  # fmt: skip
        fields = {"uri": folder, "name": "by form", "label_columns": "label"}  # as curl -F sends them
        form = client.post("/v1/datasets", files={key: (None, value) for key, value in fields.items()})
        assert form.status_code == 201, form.text
        assert form.json()["name"] == "by form" and form.json()["rows"] == 3000


def test_the_client_and_the_cli_register_by_reference(stack: Stack, folder: str) -> None:
    write_parts(stack.data_root / folder, pd.DataFrame({"x": np.arange(1200) / 2, "y": np.tile([0, 1], 600)}), parts=2)
    with FuseboxClient(stack.url, stack.api_key) as client:
        dataset = client.add_dataset(folder, name=f"{folder}-client", label_columns=["y"])
    assert dataset.rows == 1200 and dataset.source_kind == "reference" and len(dataset.files or []) == 2
    env = {**stack.env, "FUSEBOX_URL": stack.url, "FUSEBOX_API_KEY": stack.api_key}
    for command in (["add", f"{folder}/*.parquet", "--name", f"{folder}-cli"], ["show", f"{folder}-cli"]):
        done = subprocess.run(
            [sys.executable, "-m", "service.cli", "datasets", *command],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    assert "1,200" in done.stdout or "1200" in done.stdout, done.stdout


def test_what_cannot_be_read_in_place_is_refused(stack: Stack, folder: str, tmp_path: Path) -> None:
    root = stack.data_root / folder
    outside = tmp_path / "outside.parquet"
    pd.DataFrame({"x": [1.0, 2.0]}).to_parquet(outside)
    (root / "escape.parquet").symlink_to(outside)
    (root / "empty").mkdir()
    pd.DataFrame({"x": [1.0], "city": ["Paris"]}).to_parquet(root / "text.parquet")
    pd.DataFrame({"x": [1.0, None]}).to_parquet(root / "gaps.parquet")
    cases = [
        (str(outside), "outside the data root"),
        (f"{folder}/../../outside.parquet", "outside the data root"),
        (f"{folder}/escape.parquet", "outside the data root"),
        (f"{folder}/missing.parquet", "does not exist"),
        (f"{folder}/empty", "has no .parquet files"),
        (f"{folder}/nothing-*.parquet", "no file matches"),
        (f"ftp://host/{folder}/a.parquet", "unknown uri scheme"),
        (f"s3://bucket/{folder}/a.parquet", "fusebox[cloud]"),  # the extra is not installed here
        (f"hdfs://host/{folder}/a.parquet", "mount"),
        (f"{folder}/text.parquet", "'city' are not numeric"),
        (f"{folder}/gaps.parquet", "column 'x' has 1 missing value"),
    ]
    with stack.client() as client, nothing_stored(stack, client):
        for uri, message in cases:
            refused(register(client, uri), 422, message)
        refused(register(client, f"{folder}/gaps.parquet", label_columns="y"), 422, "does not have")


def test_a_job_trains_on_referenced_files_and_fails_once_they_changed(
    stack: Stack, folder: str, source_files: list[SourceFile], census_small: CensusData
) -> None:
    paths = write_parts(stack.data_root / folder, census_small.train.head(6000), parts=3)
    labels = ",".join(task.name for task in census_small.tasks)
    with stack.client() as client:
        models = {}
        for source in source_files:
            response = upload_model(client, source, name=f"{folder}_{source.name}")
            assert response.status_code == 201, response.text
            models[source.task] = response.json()["id"]
        dataset = register(client, f"{folder}/*.parquet", label_columns=labels)
        assert dataset.status_code == 201, dataset.text
        spec = {
            "name": folder,
            "tasks": [{"name": task, "type": "binary", "models": [model]} for task, model in models.items()],
            "dataset_id": dataset.json()["id"],
            "validation_fraction": 0.2,
            "hyperparameters": CENSUS_HYPERPARAMETERS,
        }
        created = client.post("/v1/fusion-jobs", json=spec)
        assert created.status_code == 202, created.text
        job = wait_for_job(client, created.json()["id"], stack)
        assert job["status"] == "succeeded", f"{job['error']}\n{stack.logs()}"

        # Changed after the job was queued: the worker refuses to train on it.
        stack.kill_workers()
        try:
            queued = client.post("/v1/fusion-jobs", json={**spec, "name": f"{folder}-again"})
            assert queued.status_code == 202, queued.text
            census_small.train.head(10).to_parquet(paths[1], index=False)
        finally:
            stack.add_worker()
        failed = wait_for_job(client, queued.json()["id"], stack)
        assert failed["status"] == "failed"
        assert f"dataset '{folder}/*.parquet' changed since it was registered" in failed["error"]
        assert f"'{folder}/part-1.parquet' changed size" in failed["error"] and "register it again" in failed["error"]

        # Changed before the job is created: refused at once.
        os.remove(paths[2])
        refused(client.post("/v1/fusion-jobs", json=spec), 422, f"'{folder}/part-2.parquet' is gone")
