"""A job's life beyond the happy path, on PostgreSQL + Redis with a real worker: cancelling queued and
running jobs, refusing to delete a model a job needs, versions 1, 2, ... for re-runs under one name."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.helpers.jobs import wait_for_job
from tests.helpers.stacks import Stack
from tests.helpers.uploads import DataFiles, SourceFile, upload_dataset, upload_model


@pytest.fixture(scope="module")
def client(pg_stack: Stack) -> Iterator[httpx.Client]:
    with pg_stack.client() as client:
        yield client


@pytest.fixture(scope="module")
def spec(client: httpx.Client, source_files: list[SourceFile], data_files: DataFiles) -> dict:
    models = {}
    for source in source_files:
        response = upload_model(client, source, name=f"life_{source.name}")
        assert response.status_code == 201, response.text
        models[source.task] = response.json()["id"]
    train = upload_dataset(client, data_files.validation, name="small")
    assert train.status_code == 201, train.text
    return {
        "name": "lifecycle",
        "tasks": [{"name": task, "models": [model_id]} for task, model_id in models.items()],
        "dataset_id": train.json()["id"],
        "validation_fraction": 0.25,
        "hyperparameters": {"max_epochs": 1, "batch_size": 256},
    }


def wait_until(condition, stack: Stack, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out\n{stack.logs()}")
        time.sleep(0.2)


def test_cancel_queued_and_running_jobs(pg_stack: Stack, client: httpx.Client, spec: dict) -> None:
    slow = {**spec, "hyperparameters": {"max_epochs": 1000, "patience": 100, "batch_size": 8}}
    running = client.post("/v1/fusion-jobs", json=slow).json()
    queued = client.post("/v1/fusion-jobs", json=slow).json()  # waits: the one worker is busy
    job = lambda job_id: client.get(f"/v1/fusion-jobs/{job_id}").json()  # noqa: E731
    wait_until(lambda: job(running["id"])["progress"] > 0, pg_stack)

    cancelled = client.post(f"/v1/fusion-jobs/{queued['id']}/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"

    model_id = spec["tasks"][0]["models"][0]
    refused = client.delete(f"/v1/models/{model_id}")
    assert refused.status_code == 409 and running["id"] in refused.json()["detail"]

    flagged = client.post(f"/v1/fusion-jobs/{running['id']}/cancel").json()
    assert flagged["status"] == "running" and flagged["cancel_requested"]
    final = wait_for_job(client, running["id"], pg_stack)
    assert final["status"] == "cancelled" and final["error"] is None and final["deployment"] is None
    again = client.post(f"/v1/fusion-jobs/{running['id']}/cancel")
    assert again.status_code == 202
    # The worker takes the cancelled job off the queue without running it.
    # Whichever worker the shared stack has now (another module may have replaced its first one).
    took_off = f"job {queued['id']}: nothing to run"
    wait_until(lambda: any(took_off in log.read_text() for log in pg_stack.folder.glob("worker*.log")), pg_stack)
    assert job(queued["id"])["attempts"] == 0
    no_model = client.get(f"/v1/fusion-jobs/{running['id']}/model")
    assert no_model.status_code == 409


def test_reruns_deploy_new_versions(pg_stack: Stack, client: httpx.Client, spec: dict) -> None:
    first = wait_for_job(client, client.post("/v1/fusion-jobs", json=spec).json()["id"], pg_stack)
    second = wait_for_job(client, client.post("/v1/fusion-jobs", json=spec).json()["id"], pg_stack)
    assert first["status"] == second["status"] == "succeeded", (first["error"], second["error"])
    assert (first["deployment"]["version"], second["deployment"]["version"]) == (1, 2)
    assert client.get("/v2/models/lifecycle").json()["versions"] == ["1", "2"]
    assert client.get("/v2/models/lifecycle/versions/1").json()["versions"] == ["1"]
    assert client.get("/v2/models/lifecycle/versions/3/ready").status_code == 404
    refused = client.post(f"/v1/fusion-jobs/{first['id']}/cancel")
    assert refused.status_code == 409 and "succeeded already" in refused.json()["detail"]


def test_delete_a_model_once_no_job_needs_it(client: httpx.Client, spec: dict) -> None:
    model_id = spec["tasks"][0]["models"][0]
    assert client.delete(f"/v1/models/{model_id}").status_code == 204
    assert client.get(f"/v1/models/{model_id}").status_code == 404
    # The fused model carries the source graphs inside it: deployments keep working.
    assert client.get("/v2/models/lifecycle/ready").json()["ready"] is True
