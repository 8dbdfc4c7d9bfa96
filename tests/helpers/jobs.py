"""Fusion jobs over HTTP: waiting for one to end, and the one small Census job that the serving, auth and
flow tests share per stack (the slow part of each, which they only read)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx

from tests.helpers.stacks import Stack
from tests.helpers.uploads import DataFiles, SourceFile, Uploaded, upload_sources_and_data

CENSUS_JOB = "census"
"""The shared job's name, its deployment's name and its uploads' prefix: no other test may deploy under it,
so that the deployment stays at version 1."""
CENSUS_HYPERPARAMETERS = {"max_epochs": 2, "batch_size": 512, "patience": 1}


def wait_for_job(client: httpx.Client, job_id: str, stack: Stack, timeout: float = 600) -> dict:
    """The job as the API answers once it ended (succeeded, failed or cancelled)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/fusion-jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not finish in {timeout:.0f}s: {job}\n{stack.logs()}")


@dataclass(frozen=True)
class CensusJob:
    """Both Census source models and both datasets uploaded as `census_*` and `census train|validation`, and
    one quick job fusing them, run to success and deployed as `census`."""

    uploaded: Uploaded
    job: dict
    """As the API reported it at the end."""

    @property
    def deployment(self) -> str:
        return self.job["deployment"]["name"]


@dataclass
class CensusJobs:
    """The Census job of each stack, run when a test first asks for it there. A job that failed is not run
    again for the next module: that would deploy `census` twice; the next module gets the same error."""

    source_files: list[SourceFile]
    data_files: DataFiles
    _by_stack: dict[str, CensusJob | AssertionError] = field(default_factory=dict, init=False)

    def on(self, stack: Stack) -> CensusJob:
        if stack.url not in self._by_stack:
            try:
                self._by_stack[stack.url] = run_census_job(stack, self.source_files, self.data_files)
            except AssertionError as error:
                self._by_stack[stack.url] = error
        outcome = self._by_stack[stack.url]
        if isinstance(outcome, AssertionError):
            raise outcome
        return outcome


def run_census_job(stack: Stack, source_files: list[SourceFile], data_files: DataFiles) -> CensusJob:
    with stack.client() as client:
        uploaded = upload_sources_and_data(client, source_files, data_files, CENSUS_JOB)
        created = client.post("/v1/fusion-jobs", json=uploaded.job_spec(CENSUS_JOB, CENSUS_HYPERPARAMETERS))
        assert created.status_code == 202, created.text
        assert created.json()["status"] == "queued"
        job = wait_for_job(client, created.json()["id"], stack)
        assert job["status"] == "succeeded", f"{job['error']}\n{stack.logs()}"
    return CensusJob(uploaded, job)
