"""Operations on the live service: the request id in X-Request-ID and in every JSON log line, and the
Prometheus metrics at /metrics (requests by route template, jobs by status, queue length, inference)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.client import FuseboxClient
from service.core.config import Settings
from service.jobs.queue import FUSION_TASK, queue_length
from tests.helpers.cli_job import JOB_NAME, CliJob, fused_over_cli
from tests.helpers.stacks import Stack
from tests.helpers.uploads import DataFiles, SourceFile
from worker.app import create_celery

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def stack(pg_stack: Stack) -> Stack:
    return pg_stack


def scrape(stack: Stack) -> Samples:
    with stack.client() as client:
        response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_a_wrong_method_is_told_every_method_of_the_path(stack: Stack) -> None:
    with stack.client() as client:
        hidden = client.post("/metrics")  # a route left out of the API docs
        listed = client.delete("/v1/models")
    assert (hidden.status_code, hidden.headers["allow"]) == (405, "GET")
    assert (listed.status_code, listed.headers["allow"]) == (405, "GET, POST")


def test_request_id_is_echoed_or_made(stack: Stack) -> None:
    with stack.client() as client:
        given = client.get("/v2/health/live", headers={"X-Request-ID": "trace-42.a:b"})
        insane = client.get("/v2/health/live", headers={"X-Request-ID": "x" * 200})
        forged = client.get("/v2/health/live", headers={"X-Request-ID": 'a" "level": "ERROR'})
        first, second = client.get("/v2/health/live"), client.get("/v1/models/not-an-id")
    assert given.headers["X-Request-ID"] == "trace-42.a:b"
    made = [response.headers["X-Request-ID"] for response in (insane, forged, first, second)]
    assert all(len(request_id) == 32 and set(request_id) <= set("0123456789abcdef") for request_id in made)
    assert len(set(made)) == 4


def test_logs_are_json_lines_with_the_request(stack: Stack) -> None:
    request_id = f"log-{uuid.uuid4().hex}"
    model_id = uuid.uuid4()
    with stack.client() as client:
        answer = client.get(f"/v1/models/{model_id}", headers={"X-Request-ID": request_id})
    assert answer.status_code == 404
    entries = _log_entries(stack.folder / "api.log", request_id)
    access = next(entry for entry in entries if entry["logger"] == "fusebox.access")
    assert access["request_id"] == request_id and access["level"] == "INFO"
    assert access["method"] == "GET" and access["status"] == 404
    assert access["route"] == "/v1/models/{model_id}" and access["path"] == f"/v1/models/{model_id}"
    assert access["duration_ms"] >= 0 and access["time"].endswith("+00:00")
    assert access["message"] == f"GET /v1/models/{model_id} 404"

    lines = (stack.folder / "api.log").read_text().splitlines()
    server = [json.loads(line) for line in lines if line.startswith("{") and '"logger": "uvicorn' in line]
    assert "Application startup complete." in {entry["message"] for entry in server}


def test_worker_logs_are_json_lines(stack: Stack) -> None:
    def entries() -> list[dict]:
        lines = (stack.folder / "worker.log").read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def ready(entry: dict) -> bool:
        return entry["logger"] == "celery.apps.worker" and entry["message"].endswith("ready.")

    deadline = time.monotonic() + 60  # a worker starting up imports torch before it says it is ready
    while not any(ready(entry) for entry in entries()):
        assert time.monotonic() < deadline, f"no JSON ready line from the worker\n{stack.logs()}"
        time.sleep(0.2)
    assert all({"time", "level", "logger", "message"} <= entry.keys() for entry in entries())


def _log_entries(log: Path, request_id: str, timeout: float = 10) -> list[dict]:
    """The access line is written once the answer has gone out: wait for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entries = [json.loads(line) for line in log.read_text().splitlines() if request_id in line]
        if entries:
            return entries
        time.sleep(0.1)
    raise AssertionError(f"no log line with {request_id} in {log}")


def test_request_counters_move_by_route_template(stack: Stack) -> None:
    before = scrape(stack)
    job_ids = [str(uuid.uuid4()) for _ in range(3)]
    with stack.client() as client:
        for job_id in job_ids:
            assert client.get(f"/v1/fusion-jobs/{job_id}").status_code == 404
    after = scrape(stack)
    labels = {"method": "GET", "route": "/v1/fusion-jobs/{job_id}"}
    counted = "fusebox_http_requests_total"
    assert value(after, counted, status="404", **labels) - value(before, counted, status="404", **labels) == 3
    timed = "fusebox_http_request_duration_seconds_count"
    assert value(after, timed, **labels) - value(before, timed, **labels) == 3
    routes = {dict(key[1])["route"] for key in after if key[0] == counted}
    assert not [route for route in routes if any(job_id in route for job_id in job_ids)], "ids never become labels"


def test_jobs_by_status_and_queue_length(stack: Stack, source_files: list[SourceFile], data_files: DataFiles) -> None:
    fused_over_cli(stack, source_files, data_files)
    samples = scrape(stack)
    for status in ("queued", "running", "succeeded", "failed", "cancelled"):
        assert ("fusebox_jobs", frozenset({("status", status)})) in samples
    assert value(samples, "fusebox_jobs", status="succeeded") >= 1
    assert value(samples, "fusebox_queue_messages", queue="fusion") == 0  # the worker took the job


def test_inference_metrics_count_rows_per_model(
    stack: Stack, source_files: list[SourceFile], data_files: DataFiles
) -> None:
    job: CliJob = fused_over_cli(stack, source_files, data_files)
    rows = pd.read_csv(data_files.validation).head(7)
    before = scrape(stack)
    with FuseboxClient(stack.url, stack.api_key) as client:
        inputs = [
            {"name": spec.name, "shape": [len(rows)], "datatype": spec.datatype, "data": rows[spec.name].tolist()}
            for spec in client.model_metadata(JOB_NAME).inputs
        ]
        version = client.infer(JOB_NAME, inputs).model_version
        client.predict(JOB_NAME, rows.head(2).drop(columns=data_files.tasks).to_dict("records"))
    after = scrape(stack)
    labels = {"tenant": "local", "model": JOB_NAME, "version": version}
    rows_counted = "fusebox_inference_rows_total"
    assert value(after, rows_counted, **labels) - value(before, rows_counted, **labels) == len(rows) + 2
    timed = "fusebox_inference_duration_seconds_count"
    assert value(after, timed, **labels) - value(before, timed, **labels) == 2
    assert job.run.returncode == 0


def test_filesystem_queue_length_counts_waiting_messages(tmp_path: Path) -> None:
    """No worker reads this folder: the messages stay, and the gauge counts them."""
    settings = Settings(var_dir=tmp_path, CELERY_BROKER_URL="filesystem://")
    celery = create_celery(settings)
    assert queue_length(settings) == 0
    for _ in range(2):
        celery.send_task(FUSION_TASK, args=[str(uuid.uuid4())])
    assert queue_length(settings) == 2
