"""Jobs that survive faults, on PostgreSQL + Redis with real worker processes killed for real: a worker
killed mid-epoch (the job resumes from its epoch checkpoint, with the API restarted meanwhile), a worker
that vanished (its job requeued, then failed once out of attempts), a deterministic failure (failed once),
cancelling (checkpoints removed, nothing else), a queue message lost by the broker (sent again), and
idempotent job creation. The kill-and-resume test
runs once more on the embedded defaults (SQLite, the filesystem broker).

The stacks are this module's own: a short heartbeat timeout, and their own databases and Redis database,
so that killing their workers touches no other test's jobs.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pandas as pd
import pytest
import redis
import sqlalchemy

from fusion.training import checkpoint_epoch
from service.jobs.queue import FUSION_QUEUE
from tests.service.conftest import (
    DataFiles,
    SourceFile,
    Stack,
    fresh_postgres,
    fresh_redis,
    start_stack,
    upload_dataset,
    upload_model,
    wait_for_job,
)

HEARTBEAT_TIMEOUT_S = 5
MAX_ATTEMPTS = 2
RESEND_AFTER_S = 3
RECOVERY_S = 60
"""Ample time for a lost job to be noticed (the heartbeat timeout plus a sweep) and for a worker to start."""


@contextmanager
def fast_recovery_environment() -> Iterator[None]:
    """start_stack passes os.environ on; each stack keeps its own copy for the processes it restarts."""
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("FUSEBOX_HEARTBEAT_TIMEOUT_S", str(HEARTBEAT_TIMEOUT_S))
        environment.setenv("FUSEBOX_JOB_MAX_ATTEMPTS", str(MAX_ATTEMPTS))
        environment.setenv("FUSEBOX_JOB_RESEND_AFTER_S", str(RESEND_AFTER_S))
        # Steps on 16 rows gain nothing from threads, and lose a lot to them when other tests share the cores.
        environment.setenv("OMP_NUM_THREADS", "1")
        yield


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """PostgreSQL + Redis."""
    with fresh_postgres() as database, fresh_redis() as queue:
        with fast_recovery_environment():
            stack = start_stack(tmp_path_factory.mktemp("reliability"), database, queue)
        try:
            yield stack
        finally:
            stack.stop()


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """SQLite and kombu's filesystem broker, which forgets a message once delivered."""
    folder = tmp_path_factory.mktemp("reliability-embedded")
    with fast_recovery_environment():
        stack = start_stack(folder, f"sqlite:///{folder / 'var' / 'fusebox.db'}", "filesystem://")
    yield stack
    stack.stop()


def upload_sources(stack: Stack, source_files: list[SourceFile], data_files: DataFiles) -> dict:
    """The census models and 2000 rows uploaded: a quick job spec on them."""
    with stack.client() as client:
        models = {}
        for source in source_files:
            response = upload_model(client, source)
            assert response.status_code == 201, response.text
            models[source.task] = response.json()["id"]
        rows = upload_dataset(client, data_files.validation)
        assert rows.status_code == 201, rows.text
    return {
        "name": "reliable",
        "tasks": [{"name": task, "models": [model_id]} for task, model_id in models.items()],
        "dataset_id": rows.json()["id"],
        "validation_fraction": 0.25,
        "hyperparameters": {"max_epochs": 1, "batch_size": 256},
    }


@pytest.fixture(scope="module")
def spec(stack: Stack, source_files: list[SourceFile], data_files: DataFiles) -> dict:
    return upload_sources(stack, source_files, data_files)


def slow(spec: dict, name: str, epochs: int) -> dict:
    """1500 training rows in batches of 16: about a second an epoch, so that a kill lands in the middle of
    one; patience keeps every epoch."""
    return {**spec, "name": name, "hyperparameters": {"max_epochs": epochs, "patience": 100, "batch_size": 16}}


def job_of(client: httpx.Client, job_id: str) -> dict:
    return client.get(f"/v1/fusion-jobs/{job_id}").json()


def wait_until(condition: Callable[[], bool], stack: Stack, timeout: float = RECOVERY_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s\n{stack.logs()}")
        time.sleep(0.2)


def job_folder(stack: Stack, job_id: str) -> Path:
    return stack.artifacts / "jobs" / job_id


def checkpointed(stack: Stack, job_id: str) -> Callable[[], bool]:
    """True once the first epoch checkpoint exists: the job is in its next epoch, which a kill interrupts."""
    return (job_folder(stack, job_id) / "checkpoint.pt").exists


def live_workers(stack: Stack) -> list[str]:
    return [name for name, process in stack.processes.items() if name.startswith("worker") and process.poll() is None]


def kill_workers(stack: Stack) -> None:
    """SIGKILL to each worker's process group: no warm shutdown, no acknowledgement, no last word."""
    for name in live_workers(stack):
        os.killpg(stack.processes[name].pid, signal.SIGKILL)
        stack.processes[name].wait()


def start_worker(stack: Stack) -> None:
    """One more worker, named after the processes so far (killed ones keep their names and logs)."""
    stack.start_worker(f"worker-{len(stack.processes)}")


def restart_api(stack: Stack) -> None:
    """SIGKILL to the API, then a new one on the same port."""
    os.killpg(stack.processes["api"].pid, signal.SIGKILL)
    stack.processes["api"].wait()
    stack.start_api()


def count_rows(stack: Stack, query: str, **parameters: object) -> int:
    url = stack.env["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://")
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(sqlalchemy.text(query), parameters).scalar_one()
    finally:
        engine.dispose()


def start_and_kill_mid_epoch(stack: Stack, spec: dict, name: str) -> tuple[str, int]:
    """A 4-epoch job, its worker killed once the first checkpoint exists; the job id and checkpointed epoch."""
    with stack.client() as client:
        job_id = client.post("/v1/fusion-jobs", json=slow(spec, name, epochs=4)).json()["id"]
        wait_until(checkpointed(stack, job_id), stack, timeout=120)
        kill_workers(stack)
        last_epoch = checkpoint_epoch(job_folder(stack, job_id) / "checkpoint.pt")
        assert last_epoch >= 1 and job_of(client, job_id)["status"] == "running"
    return job_id, last_epoch


def assert_resumed_once(stack: Stack, job_id: str, name: str, last_epoch: int) -> None:
    """Succeeded on the second attempt from the checkpoint, with one fused model and one deployment."""
    with stack.client() as client:
        final = wait_for_job(client, job_id, stack, timeout=120)
        assert final["status"] == "succeeded", f"{final['error']}\n{stack.logs()}"
        assert final["attempts"] == 2 and final["resumed_from_epoch"] == last_epoch
        assert [entry["epoch"] for entry in final["metrics"]] == [1, 2, 3, 4]
        assert final["deployment"]["version"] == 1
        assert client.get(f"/v2/models/{name}").json()["versions"] == ["1"]
    fused = (
        "SELECT count(*) FROM fused_models JOIN fusion_jobs ON fusion_jobs.id = job_id WHERE fusion_jobs.name = :name"
    )
    assert count_rows(stack, fused, name=name) == 1
    assert count_rows(stack, "SELECT count(*) FROM deployments WHERE name = :name", name=name) == 1
    assert not job_folder(stack, job_id).exists()
    log = "\n".join(path.read_text() for path in stack.folder.glob("worker*.log"))
    assert f"job {job_id}: resuming from the checkpoint of epoch {last_epoch}" in log


def test_idempotency_key_returns_the_first_job(stack: Stack, spec: dict) -> None:
    key = str(uuid.uuid4())
    with stack.client() as client:
        first = client.post("/v1/fusion-jobs", json=spec, headers={"Idempotency-Key": key})
        assert first.status_code == 202, first.text
        retried = client.post("/v1/fusion-jobs", json=spec, headers={"Idempotency-Key": key})
        assert retried.status_code == 200 and retried.headers["Idempotent-Replayed"] == "true"
        assert retried.json()["id"] == first.json()["id"] and retried.json()["idempotency_key"] == key

        changed = client.post("/v1/fusion-jobs", json={**spec, "name": "other"}, headers={"Idempotency-Key": key})
        assert changed.status_code == 409
        assert key in changed.json()["detail"] and first.json()["id"] in changed.json()["detail"]

        # Retries racing each other: the unique (tenant, key) constraint lets one in, the others get that job.
        racing_key = str(uuid.uuid4())
        with ThreadPoolExecutor(4) as pool:
            answers = list(
                pool.map(
                    lambda _: client.post("/v1/fusion-jobs", json=spec, headers={"Idempotency-Key": racing_key}),
                    range(4),
                )
            )
        assert sorted(answer.status_code for answer in answers) == [200, 200, 200, 202]
        assert len({answer.json()["id"] for answer in answers}) == 1
        assert count_rows(stack, "SELECT count(*) FROM fusion_jobs WHERE name = :name", name=spec["name"]) == 2
        for job_id in (first.json()["id"], answers[0].json()["id"]):
            assert wait_for_job(client, job_id, stack)["status"] == "succeeded"


def test_bad_data_fails_once_without_retries(stack: Stack, spec: dict, data_files: DataFiles, tmp_path: Path) -> None:
    # One never_married label in all the rows: the API's checks of the whole upload pass, but whichever split
    # does not get that row has no labels at all, which the worker finds in the data.
    rows = pd.read_csv(data_files.validation)
    rows.loc[rows.index[1:], "never_married"] = float("nan")
    rows.to_csv(tmp_path / "one_label.csv", index=False)
    with stack.client() as client:
        dataset = upload_dataset(client, tmp_path / "one_label.csv", label_columns="income,never_married")
        assert dataset.status_code == 201, dataset.text
        created = client.post("/v1/fusion-jobs", json={**spec, "name": "bad-data", "dataset_id": dataset.json()["id"]})
        assert created.status_code == 202, created.text
        failed = wait_for_job(client, created.json()["id"], stack)
        assert failed["status"] == "failed" and "'never_married'" in failed["error"] and "no labels" in failed["error"]
        time.sleep(HEARTBEAT_TIMEOUT_S + 2)  # several sweeps later: still one attempt, still failed
        again = job_of(client, created.json()["id"])
        assert (again["status"], again["attempts"], again["error"]) == ("failed", 1, failed["error"])


def test_cancel_stops_jobs_and_removes_only_their_checkpoints(stack: Stack, spec: dict) -> None:
    with stack.client() as client:
        running = client.post("/v1/fusion-jobs", json=slow(spec, "cancelled", epochs=50)).json()
        queued = client.post("/v1/fusion-jobs", json=slow(spec, "cancelled", epochs=50)).json()
        wait_until(checkpointed(stack, running["id"]), stack, timeout=120)
        before = stack.stored_files()

        started = time.monotonic()
        answer = client.post(f"/v1/fusion-jobs/{queued['id']}/cancel")
        assert answer.status_code == 202 and answer.json()["status"] == "cancelled"
        flagged = client.post(f"/v1/fusion-jobs/{running['id']}/cancel").json()
        assert flagged["status"] == "running" and flagged["cancel_requested"]
        final = wait_for_job(client, running["id"], stack, timeout=10)
        assert final["status"] == "cancelled" and time.monotonic() - started < 5, final

        assert not job_folder(stack, running["id"]).exists() and not job_folder(stack, queued["id"]).exists()
        removed = before - stack.stored_files()
        assert removed and all(path.is_relative_to(job_folder(stack, running["id"])) for path in removed)
        assert stack.stored_files() <= before  # and nothing new was left behind
        wait_until(lambda: "nothing to run" in (stack.folder / "worker.log").read_text(), stack)
        assert job_of(client, queued["id"])["attempts"] == 0


def test_killed_worker_resumes_from_its_checkpoint(stack: Stack, spec: dict) -> None:
    job_id, last_epoch = start_and_kill_mid_epoch(stack, spec, "resumed")
    restart_api(stack)  # the API holds nothing of a job: a new process carries on
    start_worker(stack)
    assert_resumed_once(stack, job_id, "resumed", last_epoch)


def test_killed_worker_resumes_on_the_embedded_defaults(
    embedded: Stack, source_files: list[SourceFile], data_files: DataFiles
) -> None:
    spec = upload_sources(embedded, source_files, data_files)
    job_id, last_epoch = start_and_kill_mid_epoch(embedded, spec, "resumed")
    start_worker(embedded)
    assert_resumed_once(embedded, job_id, "resumed", last_epoch)


def test_vanished_worker_requeues_then_fails_the_job(stack: Stack, spec: dict) -> None:
    with stack.client() as client:
        job_id = client.post("/v1/fusion-jobs", json=slow(spec, "vanished", epochs=50)).json()["id"]
        wait_until(checkpointed(stack, job_id), stack, timeout=120)
        kill_workers(stack)
        # No worker is left: the API's sweep notices the silence and puts the job back in the queue.
        wait_until(lambda: job_of(client, job_id)["status"] == "queued", stack)
        requeued = job_of(client, job_id)
        assert requeued["attempts"] == 1 and f"no heartbeat for {HEARTBEAT_TIMEOUT_S} s" in requeued["stage"]
        assert (job_folder(stack, job_id) / "checkpoint.pt").exists()

        start_worker(stack)
        training = {"attempts": 2, "stage": "training the fusion"}
        wait_until(lambda: job_of(client, job_id).items() >= training.items(), stack)
        assert job_of(client, job_id)["resumed_from_epoch"] >= 1
        kill_workers(stack)
        # The second loss uses up the attempts: failed, with the reason, and its checkpoints gone.
        wait_until(lambda: job_of(client, job_id)["status"] == "failed", stack)
        failed = job_of(client, job_id)
        assert failed["attempts"] == MAX_ATTEMPTS and "stopped sending heartbeats" in failed["error"]
        assert not job_folder(stack, job_id).exists()


def fusion_queue_length(broker: redis.Redis) -> int:
    return sum(broker.llen(key) for key in broker.keys(f"{FUSION_QUEUE}*"))


def drop_fusion_queue(broker: redis.Redis) -> None:
    """What a Redis restarted without persistence does to its queues."""
    if keys := broker.keys(f"{FUSION_QUEUE}*"):
        broker.delete(*keys)


def test_a_job_whose_queue_message_was_lost_is_sent_again(stack: Stack, spec: dict) -> None:
    kill_workers(stack)  # none may take the message before the broker loses it
    broker = redis.Redis.from_url(stack.env["CELERY_BROKER_URL"])
    try:
        # Earlier tests may leave messages of finished jobs behind (the sweep re-sends a requeued job's message
        # when no worker takes it soon enough): this test's queue starts empty.
        drop_fusion_queue(broker)
        with stack.client() as client:
            job_id = client.post("/v1/fusion-jobs", json={**spec, "name": "resent"}).json()["id"]
            # One message, or more if the sweep already sent it again on a slow machine: all of them are lost.
            assert fusion_queue_length(broker) >= 1
            drop_fusion_queue(broker)
            start_worker(stack)
            final = wait_for_job(client, job_id, stack, timeout=RECOVERY_S)
            assert final["status"] == "succeeded" and final["attempts"] == 1, f"{final}\n{stack.logs()}"
    finally:
        broker.close()
    logs = "\n".join(path.read_text() for path in stack.folder.glob("*.log"))
    assert f"job {job_id}: queued for over {RESEND_AFTER_S} s and no worker took it" in logs
