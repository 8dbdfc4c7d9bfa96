"""GET /v1/fusion-jobs/{id}/events on the real stack (API, worker, database): the stream of a running job
carries its status changes, progress and every epoch's metrics as they happen, then one `done` event with
the finished job, and ends. On PostgreSQL + Redis and on the embedded defaults (SQLite). Also the
deployments list that the dashboard reads beside it."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from itertools import pairwise

import httpx
import pytest

from service.client.sse import parse_events
from tests.helpers.stacks import Stack
from tests.helpers.uploads import DataFiles, SourceFile, upload_sources_and_data

HYPERPARAMETERS = {"max_epochs": 3, "batch_size": 16, "patience": 3}
"""Small batches and no early stop: a job of several seconds, long enough to be seen live."""


@dataclass(frozen=True)
class Received:
    event: str
    data: dict
    at: float
    """time.monotonic() when the event arrived."""


def read_events(client: httpx.Client, job_id: str, timeout: float = 600) -> list[Received]:
    """The whole stream, parsed by the text/event-stream rules (the client's parser), until the server ends
    it (within `timeout` seconds, give or take one keep-alive interval)."""
    deadline = time.monotonic() + timeout
    events: list[Received] = []
    url = f"/v1/fusion-jobs/{job_id}/events"
    with client.stream("GET", url, headers={"Accept": "text/event-stream"}, timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        for event in parse_events(response.iter_lines()):
            assert time.monotonic() < deadline, f"the stream of job {job_id} went on for {timeout:.0f}s: {events}"
            events.append(Received(event.event, event.data, time.monotonic()))
    return events


@pytest.fixture(scope="module")
def spec(stack: Stack, source_files: list[SourceFile], data_files: DataFiles) -> dict:
    """A job spec over freshly uploaded models and data (the job itself is left to each test)."""
    with stack.client() as client:
        return upload_sources_and_data(client, source_files, data_files, "events").job_spec("events", HYPERPARAMETERS)


@pytest.fixture(scope="module")
def followed(stack: Stack, spec: dict, data_files: DataFiles) -> tuple[dict, list[Received]]:
    """A job started and followed through its event stream from the moment it was queued."""
    with stack.client() as client:
        created = client.post("/v1/fusion-jobs", json=spec)
        assert created.status_code == 202, created.text
        events = read_events(client, created.json()["id"])
        job = client.get(f"/v1/fusion-jobs/{created.json()['id']}").json()
    assert job["status"] == "succeeded", f"{job['error']}\n{stack.logs()}"
    return job, events


def test_stream_follows_a_running_job_to_completion(followed: tuple[dict, list[Received]]) -> None:
    job, events = followed
    names = [event.event for event in events]
    assert names[0] == "status" and events[0].data["status"] in ("queued", "running")
    statuses = [event.data["status"] for event in events if event.event == "status"]
    assert statuses[-1] == "succeeded" and "running" in statuses
    assert names.count("done") == 1 and names[-1] == "done"

    epochs = [event.data for event in events if event.event == "epoch"]
    assert [entry["epoch"] for entry in epochs] == list(range(1, job["epoch"] + 1))
    assert epochs == job["metrics"]
    assert all(set(entry["validation"]) == {"income", "never_married"} for entry in epochs)

    progress = [event.data for event in events if event.event == "progress"]
    percents = [entry["progress"] for entry in progress]
    assert percents == sorted(percents) and percents[-1] == 100.0 and len(set(percents)) >= 3
    assert all(a != b for a, b in pairwise(progress)), "only changes are sent"
    # While training, the pace: rows per second and the time left, which shrinks to none at the end.
    paced = [entry for entry in progress if 0 < entry["progress"] < 100 and entry["rows_per_second"]]
    assert paced and all(entry["rows_per_second"] > 0 and entry["eta_seconds"] >= 0 for entry in paced)
    assert progress[-1]["eta_seconds"] is None and job["rows_per_second"] > 0

    done = events[-1].data
    assert done["id"] == job["id"] and done["status"] == "succeeded"
    assert done["report"] == job["report"] and done["deployment"] == job["deployment"]
    # Live, not replayed at the end: the first epoch arrived well before the job finished.
    first_epoch = next(event for event in events if event.event == "epoch")
    assert events[-1].at - first_epoch.at > 0.5


def test_stream_of_a_finished_job_replays_it_and_ends(stack: Stack, followed: tuple[dict, list[Received]]) -> None:
    job, _ = followed
    with stack.client() as client:
        started = time.monotonic()
        events = read_events(client, job["id"], timeout=30)
    assert time.monotonic() - started < 5
    assert [event.event for event in events] == ["status", "progress"] + ["epoch"] * job["epoch"] + ["done"]
    assert events[0].data == {"status": "succeeded", "stage": job["stage"], "attempts": 1, "cancel_requested": False}
    assert events[1].data == {
        "progress": 100.0, "epoch": job["epoch"], "max_epochs": job["max_epochs"],
        "rows_per_second": job["rows_per_second"], "eta_seconds": None,
    }  # fmt: skip
    assert events[-1].data == job


def test_unknown_job_and_missing_key(stack: Stack, followed: tuple[dict, list[Received]]) -> None:
    job, _ = followed
    with stack.client() as client:
        missing = client.get(f"/v1/fusion-jobs/{uuid.uuid4()}/events")
        malformed = client.get("/v1/fusion-jobs/not-a-job/events")
    with stack.client(api_key="") as anonymous:
        unauthorized = anonymous.get(f"/v1/fusion-jobs/{job['id']}/events")
    assert missing.status_code == 404 and "not found" in missing.json()["detail"]
    assert malformed.status_code == 422
    assert unauthorized.status_code == 401


def test_another_tenant_sees_404(stack: Stack, followed: tuple[dict, list[Received]]) -> None:
    job, _ = followed
    key = stack.new_tenant("events")
    with stack.client(api_key=key) as other:
        response = other.get(f"/v1/fusion-jobs/{job['id']}/events")
    assert response.status_code == 404


def test_the_followed_job_is_listed_among_deployments(stack: Stack, followed: tuple[dict, list[Received]]) -> None:
    job, _ = followed
    with stack.client() as client:
        listed = client.get("/v1/deployments", params={"name": "events"}).json()["items"]
        nothing = client.get("/v1/deployments", params={"name": "no-such-name"}).json()["items"]
    other_key = stack.new_tenant("events")
    with stack.client(api_key=other_key) as other:
        others = other.get("/v1/deployments").json()["items"]
    assert nothing == [] and others == []
    [deployment] = listed
    assert (deployment["name"], deployment["version"], deployment["latest"]) == ("events", 1, True)
    assert deployment["job_id"] == job["id"] and deployment["strategy"] == "frozen"
    assert deployment["predict_url"] == "/v1/predict/events"
    assert deployment["infer_url"] == job["deployment"]["infer_url"]
    answered_by = {task["task"]: task["answered_by"] for task in job["report"]["tasks"]}
    assert {task["name"]: task["answered_by"] for task in deployment["tasks"]} == answered_by
    assert set(deployment["input_columns"]) >= {"age", "education"}
