"""A fusebox service for benchmarks: the API (and optionally one worker) as subprocesses on the
embedded defaults in a folder of their own, on a free loopback port; stopped on exit."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.census_fusion import MODELS, SOURCES
from fusion.data.census import CensusData
from service.client import Dataset, FuseboxClient, JobSpec, JobTaskSpec

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class LocalService:
    url: str
    api_key: str
    folder: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def api_pid(self) -> int:
        return self.processes["api"].pid

    def resident_bytes(self, name: str = "api") -> int:
        """The process's resident memory now (VmRSS), in bytes."""
        status = Path(f"/proc/{self.processes[name].pid}/status").read_text()
        kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(kib) * 1024


@contextmanager
def local_service(folder: Path, worker: bool = False, env: dict[str, str] | None = None) -> Iterator[LocalService]:
    folder.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    environment = {
        **os.environ,
        "FUSEBOX_VAR_DIR": str(folder / "var"),
        "DATABASE_URL": "",
        "CELERY_BROKER_URL": "filesystem://",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    commands = {
        "api": [sys.executable, "-m", "uvicorn", "service.main:app", "--port", str(port), "--log-level", "warning"]
    }
    if worker:
        commands["worker"] = [sys.executable, "-m", "celery", "-A", "worker.app:celery_app", "worker", "--pool=solo",
                              "--concurrency=1", "--loglevel=WARNING", f"--hostname=bench-{port}@%h"]  # fmt: skip
    service = LocalService(url=f"http://127.0.0.1:{port}", api_key="", folder=folder)
    try:
        for name, command in commands.items():
            log = (folder / f"{name}.log").open("wb")
            service.processes[name] = subprocess.Popen(
                command, cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        _wait_ready(service)
        service.api_key = (folder / "var" / "api-key").read_text().strip()
        yield service
    finally:
        for process in service.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in service.processes.values():
            process.wait(timeout=30)


def _wait_ready(service: LocalService, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.processes["api"].poll() is not None:
            raise RuntimeError(f"the API exited; see {service.folder / 'api.log'}")
        try:
            if httpx.get(f"{service.url}/v2/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the API did not become ready in {timeout:.0f}s; see {service.folder / 'api.log'}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def census_source_paths() -> list[Path]:
    """The four Census source models bench/census_fusion.py leaves in var/bench/models (exits without them)."""
    paths = [MODELS / f"{task}_{family}.onnx" for family, task, _ in SOURCES]
    if missing := [str(path) for path in paths if not path.exists()]:
        sys.exit(f"missing source models {missing}: run bench/census_fusion.py first")
    return paths


def upload_census_sources(client: FuseboxClient) -> dict[str, list[str]]:
    """Uploads the four Census source models; returns the model ids by task."""
    models: dict[str, list[str]] = {}
    for (family, task, _), path in zip(SOURCES, census_source_paths(), strict=True):
        weights = Path(f"{path}.data")
        uploaded = client.upload_model(
            path, name=f"{task}_{family}", task=task, weights=weights if weights.exists() else None
        )
        models.setdefault(task, []).append(str(uploaded.id))
    return models


def census_job_spec(name: str, models: dict[str, list[str]], datasets: dict[str, Dataset], **extra: Any) -> JobSpec:
    """A frozen fusion of the Census sources, validated on the `validation` dataset (and tested on `test`,
    when there is one)."""
    return JobSpec(
        name=name,
        tasks=[JobTaskSpec(name=task, models=ids) for task, ids in models.items()],
        dataset_id=datasets["train"].id,
        validation_dataset_id=datasets["validation"].id,
        test_dataset_id=datasets["test"].id if "test" in datasets else None,
        **extra,
    )


def deploy_census_fusion(client: FuseboxClient, census: CensusData, name: str, folder: Path) -> Path:
    """Uploads the Census sources and data, runs a one-epoch frozen job on all training rows deployed as
    `name`, and returns the fused file: the graph the full job exports (sources and AKF head), only one epoch
    less trained. Exits if a task fell back to a source model, whose answer would leave the head out."""
    models = upload_census_sources(client)
    splits = {"train": census.train, "validation": census.validation}
    for split, data in splits.items():
        data.to_parquet(folder / f"{split}.parquet", index=False)
    datasets = {split: client.upload_dataset(folder / f"{split}.parquet", name=split) for split in splits}
    spec = census_job_spec(name, models, datasets, hyperparameters={"max_epochs": 1, "batch_size": 1024})
    job = client.wait_for_job(client.create_job(spec).id, poll_interval_s=0.5, timeout_s=600)
    if job.status != "succeeded":
        sys.exit(f"the fusion job {job.status}: {job.error}")
    answered_by = {task["task"]: task["answered_by"] for task in job.report["tasks"]}
    if fallbacks := {task: model for task, model in answered_by.items() if model != "fused"}:
        sys.exit(f"the fused model answers {fallbacks} with source models: it would not measure the fused graph")
    return client.download_model(job.id, folder / "fused.onnx")
