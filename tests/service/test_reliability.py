"""Jobs that survive faults, on PostgreSQL + Redis with real worker processes killed for real: a worker
killed mid-epoch (the job resumes from its epoch checkpoint, with the API restarted meanwhile), a worker
that vanished (its job requeued, then failed once out of attempts), a deterministic failure (failed once),
cancelling (checkpoints removed, nothing else), a queue message lost by the broker (sent again), and
idempotent job creation. The kill-and-resume test
runs once more on the embedded defaults (SQLite, the filesystem broker).

The stacks are this module's own: a short heartbeat timeout, and their own databases and Redis database,
so that killing their workers touches no other test's jobs. Each test on the PostgreSQL stack starts with a
live worker and an empty queue, whatever the tests before it left.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pandas as pd
import pytest
import redis
import sqlalchemy

from fusion.training import checkpoint_epoch
from service.jobs.queue import FUSION_QUEUE
from service.local_databases import fresh_postgres, fresh_redis
from tests.helpers.jobs import wait_for_job
from tests.helpers.stacks import Stack, start_stack
from tests.helpers.uploads import DataFiles, SourceFile, upload_dataset, upload_model

HEARTBEAT_TIMEOUT_S = 5
MAX_ATTEMPTS = 2
RESEND_AFTER_S = 3
RECOVERY_S = 180
"""Ample time for a lost job to be noticed (the heartbeat timeout plus a sweep) and for a worker to start."""


FAST_RECOVERY = {
    "FUSEBOX_HEARTBEAT_TIMEOUT_S": str(HEARTBEAT_TIMEOUT_S),
    "FUSEBOX_JOB_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
    "FUSEBOX_JOB_RESEND_AFTER_S": str(RESEND_AFTER_S),
    # Steps on 16 rows gain nothing from threads, and lose a lot to them when other tests share the cores.
    "OMP_NUM_THREADS": "1",
}


@pytest.fixture(scope="module")
def pg_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """PostgreSQL + Redis, this module's own."""
    with (
        fresh_postgres() as database,
        fresh_redis() as queue,
        start_stack(tmp_path_factory.mktemp("reliability"), database, queue, FAST_RECOVERY) as stack,
    ):
        yield stack


@pytest.fixture
def stack(pg_stack: Stack) -> Stack:
    """The PostgreSQL stack with a live worker and an empty queue: a test before this one may have killed
    its workers, and the sweep may have sent messages again for jobs that have ended since."""
    with redis.Redis.from_url(pg_stack.env["CELERY_BROKER_URL"]) as broker:
        drop_fusion_queue(broker)
    if not pg_stack.live_workers():
        pg_stack.add_worker()
    return pg_stack


@pytest.fixture(scope="module")
def embedded_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """SQLite and kombu's filesystem broker, which forgets a message once delivered."""
    with start_stack(tmp_path_factory.mktemp("reliability-embedded"), settings=FAST_RECOVERY) as stack:
        yield stack


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
def spec(pg_stack: Stack, source_files: list[SourceFile], data_files: DataFiles) -> dict:
    return upload_sources(pg_stack, source_files, data_files)


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


def worker_logs(stack: Stack) -> str:
    """Every worker's log, the killed ones' too."""
    return "\n".join(path.read_text() for path in stack.folder.glob("worker*.log"))


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
        wait_until(checkpointed(stack, job_id), stack, timeout=300)
        stack.kill_workers()
        last_epoch = checkpoint_epoch(job_folder(stack, job_id) / "checkpoint.pt")
        assert last_epoch >= 1 and job_of(client, job_id)["status"] == "running"
    return job_id, last_epoch


def assert_resumed_once(stack: Stack, job_id: str, name: str, last_epoch: int) -> None:
    """Succeeded on the second attempt from the checkpoint, with one fused model and one deployment."""
    with stack.client() as client:
        final = wait_for_job(client, job_id, stack, timeout=300)
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
    assert f"job {job_id}: resuming from the checkpoint of epoch {last_epoch}" in worker_logs(stack)


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
        wait_for_sweeps(stack, spec, sweeps=2)  # several sweeps later: still one attempt, still failed
        again = job_of(client, created.json()["id"])
        assert (again["status"], again["attempts"], again["error"]) == ("failed", 1, failed["error"])


def wait_for_sweeps(stack: Stack, spec: dict, sweeps: int) -> None:
    """Until the lost-job sweep has demonstrably run `sweeps` more times. Its only trace is what it changes, so
    a probe job gives it something to change: with no worker to take it, the probe stays queued, and every
    sweep more than RESEND_AFTER_S after the last one sends its message again and logs so. The probe ends
    cancelled; the workers stay killed (the `stack` fixture starts one for the next test)."""
    stack.kill_workers()
    with stack.client() as client:
        probe = client.post("/v1/fusion-jobs", json={**spec, "name": "sweep-probe"}).json()["id"]
        resent = f"job {probe}: queued for over {RESEND_AFTER_S} s and no worker took it"
        wait_until(lambda: stack.log_path("api").read_text().count(resent) >= sweeps, stack)
        assert client.post(f"/v1/fusion-jobs/{probe}/cancel").json()["status"] == "cancelled"


def test_cancel_stops_jobs_and_removes_only_their_checkpoints(stack: Stack, spec: dict) -> None:
    with stack.client() as client:
        running = client.post("/v1/fusion-jobs", json=slow(spec, "cancelled", epochs=50)).json()
        queued = client.post("/v1/fusion-jobs", json=slow(spec, "cancelled", epochs=50)).json()
        wait_until(checkpointed(stack, running["id"]), stack, timeout=300)
        before = stack.stored_files()

        answer = client.post(f"/v1/fusion-jobs/{queued['id']}/cancel")
        assert answer.status_code == 202 and answer.json()["status"] == "cancelled"
        flagged = client.post(f"/v1/fusion-jobs/{running['id']}/cancel").json()
        assert flagged["status"] == "running" and flagged["cancel_requested"]
        final = wait_for_job(client, running["id"], stack, timeout=RECOVERY_S)
        # Stopped where it was, not after its epochs: a bound on the time would fail on a busy machine.
        assert final["status"] == "cancelled" and final["epoch"] < flagged["epoch"] + 5 < 50, final

        assert not job_folder(stack, running["id"]).exists() and not job_folder(stack, queued["id"]).exists()
        removed = before - stack.stored_files()
        assert removed and all(path.is_relative_to(job_folder(stack, running["id"])) for path in removed)
        assert stack.stored_files() <= before  # and nothing new was left behind
        wait_until(lambda: f"job {queued['id']}: nothing to run" in worker_logs(stack), stack)
        assert job_of(client, queued["id"])["attempts"] == 0


def test_killed_worker_resumes_from_its_checkpoint(stack: Stack, spec: dict) -> None:
    job_id, last_epoch = start_and_kill_mid_epoch(stack, spec, "resumed")
    stack.restart_api()  # the API holds nothing of a job: a new process carries on
    stack.add_worker()
    assert_resumed_once(stack, job_id, "resumed", last_epoch)


def test_killed_worker_resumes_on_the_embedded_defaults(
    embedded_stack: Stack, source_files: list[SourceFile], data_files: DataFiles
) -> None:
    spec = upload_sources(embedded_stack, source_files, data_files)
    job_id, last_epoch = start_and_kill_mid_epoch(embedded_stack, spec, "resumed")
    embedded_stack.add_worker()
    assert_resumed_once(embedded_stack, job_id, "resumed", last_epoch)


def test_vanished_worker_requeues_then_fails_the_job(stack: Stack, spec: dict) -> None:
    with stack.client() as client:
        job_id = client.post("/v1/fusion-jobs", json=slow(spec, "vanished", epochs=50)).json()["id"]
        wait_until(checkpointed(stack, job_id), stack, timeout=300)
        stack.kill_workers()
        # No worker is left: the API's sweep notices the silence and puts the job back in the queue.
        wait_until(lambda: job_of(client, job_id)["status"] == "queued", stack)
        requeued = job_of(client, job_id)
        assert requeued["attempts"] == 1 and f"no heartbeat for {HEARTBEAT_TIMEOUT_S} s" in requeued["stage"]
        assert (job_folder(stack, job_id) / "checkpoint.pt").exists()

        stack.add_worker()
        training = {"attempts": 2, "stage": "training the fusion"}
        wait_until(lambda: job_of(client, job_id).items() >= training.items(), stack)
        assert job_of(client, job_id)["resumed_from_epoch"] >= 1
        stack.kill_workers()
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
    stack.kill_workers()  # none may take the message before the broker loses it
    broker = redis.Redis.from_url(stack.env["CELERY_BROKER_URL"])
    try:
        with stack.client() as client:  # on a queue the `stack` fixture emptied
            job_id = client.post("/v1/fusion-jobs", json={**spec, "name": "resent"}).json()["id"]
            # One message, or more if the sweep already sent it again on a slow machine: all of them are lost.
            assert fusion_queue_length(broker) >= 1
            drop_fusion_queue(broker)
            stack.add_worker()
            final = wait_for_job(client, job_id, stack, timeout=RECOVERY_S)
            assert final["status"] == "succeeded" and final["attempts"] == 1, f"{final}\n{stack.logs()}"
    finally:
        broker.close()
    logs = "\n".join(path.read_text() for path in stack.folder.glob("*.log"))
    assert f"job {job_id}: queued for over {RESEND_AFTER_S} s and no worker took it" in logs
