"""A job's resources, on PostgreSQL + Redis with a real worker: a job too big for a worker is refused before
it is queued; a job that outgrows its worker's budget anyway fails with a clear error; a cancel stops a
heavy job at once; and after each, the same worker runs the next job.

The API checks jobs against a budget of 16 GiB; the worker holds them to 2 GiB, so that a job the API lets
through can still outgrow its worker (an estimate is an estimate: it is the worker that keeps its host safe).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest

from service.local_databases import fresh_postgres, fresh_redis
from tests.helpers.jobs import CENSUS_HYPERPARAMETERS, wait_for_job
from tests.helpers.stacks import Stack, start_stack
from tests.helpers.uploads import DataFiles, SourceFile, Uploaded, upload_sources_and_data

GiB = 2**30
API_BUDGET = 16 * GiB
WORKER_BUDGET = 2 * GiB
ISSUE_JOB = {"batch_size": 1_000_000, "d_model": 1024, "heads": 64, "levels": 16, "tower_hidden": 4096}
"""Issue 15's job: accepted once, it took a worker from 3.5 GB to 18.7 GB in 90 s."""
HEAVY = {"batch_size": 4096, "d_model": 256, "heads": 8, "levels": 4, "tower_hidden": 256}
"""About 1.1 GiB by the estimate, inside the worker's budget, with training steps of seconds."""
OUTGROWS_ITS_WORKER = {"batch_size": 20_000, "d_model": 256, "heads": 8, "levels": 6, "tower_hidden": 512}
"""About 3.9 GiB by the estimate: under the API's budget, over the worker's."""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("budget-stack")
    with (
        fresh_postgres() as database,
        fresh_redis() as redis_url,
        start_stack(folder, database, redis_url, {"FUSEBOX_WORKER_MEMORY_BYTES": str(API_BUDGET)}) as stack,
    ):
        stack.kill("worker")
        stack.env["FUSEBOX_WORKER_MEMORY_BYTES"] = str(WORKER_BUDGET)
        stack.add_worker()
        yield stack


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client() as client:
        yield client


@pytest.fixture(scope="module")
def uploaded(client: httpx.Client, source_files: list[SourceFile], data_files: DataFiles) -> Uploaded:
    return upload_sources_and_data(client, source_files, data_files, prefix="budget")


def the_worker(stack: Stack) -> str:
    [worker] = stack.live_workers()
    return worker


def runs_the_next_job(stack: Stack, client: httpx.Client, uploaded: Uploaded, name: str) -> None:
    worker = the_worker(stack)
    spec = uploaded.job_spec(name, CENSUS_HYPERPARAMETERS)
    created = client.post("/v1/fusion-jobs", json=spec)
    assert created.status_code == 202, created.text
    job = wait_for_job(client, created.json()["id"], stack)
    assert job["status"] == "succeeded", job["error"]
    assert the_worker(stack) == worker, "the job ran on the worker that ran the one before"


def test_a_job_too_big_for_a_worker_is_refused_before_it_is_queued(client: httpx.Client, uploaded: Uploaded) -> None:
    refused = client.post("/v1/fusion-jobs", json=uploaded.job_spec("issue15", ISSUE_JOB))
    assert refused.status_code == 422, refused.text
    [problem] = refused.json()["problems"]
    print(problem)
    assert "FUSEBOX_WORKER_MEMORY_BYTES" in problem and "16.0 GiB" in problem
    needed = float(re.search(r"need about ([\d.]+) GiB", problem).group(1))  # type: ignore[union-attr]
    assert needed > 16
    assert "Lower batch_size (now 1000000, batch_size" in problem and "would fit" in problem
    assert all(job["name"] != "issue15" for job in client.get("/v1/fusion-jobs").json()["items"])


def test_cancel_during_a_heavy_job_stops_it_quickly(stack: Stack, client: httpx.Client, uploaded: Uploaded) -> None:
    spec = uploaded.job_spec("heavy", {**HEAVY, "max_epochs": 1000, "patience": 100})
    created = client.post("/v1/fusion-jobs", json=spec)
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]

    def job() -> dict:
        return client.get(f"/v1/fusion-jobs/{job_id}").json()

    deadline = time.monotonic() + 600
    while job()["stage"] != "training the fusion":
        assert time.monotonic() < deadline and job()["status"] in ("queued", "running"), (job(), stack.logs())
        time.sleep(0.1)
    time.sleep(1)  # inside a training step
    asked = time.monotonic()
    assert client.post(f"/v1/fusion-jobs/{job_id}/cancel").status_code == 202
    while job()["status"] == "running":
        assert time.monotonic() - asked < 120, stack.logs()
        time.sleep(0.05)
    took = time.monotonic() - asked
    final = job()
    assert final["status"] == "cancelled" and final["error"] is None and final["deployment"] is None
    log_path = stack.log_path(the_worker(stack))
    pattern = rf"job {job_id}: cancel seen; the job process ([^\"]+ s later)"
    # The job process records the cancel itself; the worker logs its line once that process is gone.
    while not (stopped := re.findall(pattern, log_path.read_text())):
        assert time.monotonic() - asked < 120, stack.logs()
        time.sleep(0.05)
    print(f"cancel to cancelled, seen by the client: {took:.2f} s; the worker: {stopped}")
    runs_the_next_job(stack, client, uploaded, "after-cancel")


def test_a_job_over_the_workers_budget_fails_and_the_worker_runs_the_next(
    stack: Stack, client: httpx.Client, uploaded: Uploaded
) -> None:
    spec = uploaded.job_spec("outgrows", {**OUTGROWS_ITS_WORKER, "max_epochs": 1})
    created = client.post("/v1/fusion-jobs", json=spec)
    assert created.status_code == 202, created.text
    failed = wait_for_job(client, created.json()["id"], stack)
    assert failed["status"] == "failed", failed
    print(failed["error"])
    assert "worker's budget of 2.0 GiB (FUSEBOX_WORKER_MEMORY_BYTES" in failed["error"]
    assert "lower batch_size" in failed["error"]
    runs_the_next_job(stack, client, uploaded, "after-failure")
