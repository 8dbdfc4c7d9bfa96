"""The service under test, for real: uvicorn and a Celery worker as subprocesses, on PostgreSQL and Redis
(each test session gets its own database and Redis database), or on the embedded defaults (SQLite and the
filesystem broker under a temporary folder). Requests go over HTTP.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest
import redis
import torch

from fusion.data.census import CensusData
from fusion.training import TrainConfig
from fusion.zoo import build_single_task_model, export_onnx, train_model

ROOT = Path(__file__).resolve().parents[2]
POSTGRES = "postgresql://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379"
REDIS_TEST_DBS = range(1, 16)
"""Databases a test stack may claim; 0 is left to whatever else runs on this Redis."""
LIMITS = {
    "FUSEBOX_MAX_MODEL_BYTES": str(4 * 2**20),
    "FUSEBOX_MAX_DATASET_BYTES": str(4 * 2**20),
    "FUSEBOX_MAX_DATASET_COLUMNS": "60",
}
"""Small limits, so that oversized uploads are cheap to make."""


@dataclass
class Stack:
    """A running API (and, unless left out, one worker) with its settings."""

    env: dict[str, str]
    url: str
    folder: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    api_key: str = ""
    """The key of the tenant `local`, which the API created at its first start."""

    @property
    def artifacts(self) -> Path:
        return Path(self.env["FUSEBOX_ARTIFACT_ROOT"])

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def client(self, api_key: str | None = None) -> httpx.Client:
        """A client acting for the tenant `local`, or for whoever holds `api_key` ("" for no key at all)."""
        key = self.api_key if api_key is None else api_key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, timeout=60, headers=headers)

    def admin(self, *arguments: str) -> str:
        """Runs `fusebox admin ...` against this stack's database; returns what it printed."""
        done = subprocess.run(
            [sys.executable, "-m", "service.cli", "admin", *arguments],
            cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    def new_tenant(self, prefix: str = "tenant") -> str:
        """Creates a tenant of a fresh name with `fusebox admin`; returns its first API key."""
        printed = self.admin("create-tenant", f"{prefix}-{uuid.uuid4().hex[:8]}")
        return printed.strip().splitlines()[-1]

    def start(self, name: str, command: list[str]) -> None:
        log = (self.folder / f"{name}.log").open("wb")
        self.processes[name] = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def logs(self) -> str:
        return "\n".join(
            f"--- {name} ---\n" + (self.folder / f"{name}.log").read_text(errors="replace")[-4000:]
            for name in self.processes
        )

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    @property
    def port(self) -> str:
        return self.url.rsplit(":", 1)[1]

    def start_api(self) -> None:
        """The API, as process `api` (again, after a test killed it), ready when this returns."""
        command = [sys.executable, "-m", "uvicorn", "service.main:app", "--host", "127.0.0.1", "--port", self.port]
        self.start("api", command)
        wait_ready(self)

    def start_worker(self, name: str = "worker") -> None:
        self.start(
            name,
            [sys.executable, "-m", "celery", "-A", "worker.app:celery_app", "worker", "--pool=solo", "--concurrency=1",
             "--queues=fusion", "--loglevel=INFO", f"--hostname={name}-{uuid.uuid4().hex[:6]}@%h"],
        )  # fmt: skip

    def stored_files(self) -> set[Path]:
        """Everything under the artifact root: to show that a refused upload left nothing behind."""
        return {path for path in self.artifacts.rglob("*") if path.is_file()}


def start_stack(folder: Path, database_url: str, broker_url: str, worker: bool = True) -> Stack:
    folder.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    env = {
        **os.environ,
        **LIMITS,
        "FUSEBOX_VAR_DIR": str(folder / "var"),
        "FUSEBOX_ARTIFACT_ROOT": str(folder / "artifacts"),
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker_url,
        "FUSEBOX_WORKER_DEVICE": "cpu",
        "FUSEBOX_PROGRESS_INTERVAL_S": "0.2",
        "PYTHONUNBUFFERED": "1",
    }
    stack = Stack(env=env, url=f"http://127.0.0.1:{port}", folder=folder)
    try:
        stack.start_api()  # first: it migrates the database the worker reads
        if worker:
            stack.start_worker()
    except BaseException:
        stack.stop()
        raise
    stack.api_key = (folder / "var" / "api-key").read_text().strip()
    return stack


def wait_ready(stack: Stack, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    with stack.client() as client:
        while time.monotonic() < deadline:
            if stack.processes["api"].poll() is not None:
                raise RuntimeError(f"the API exited during start-up\n{stack.logs()}")
            try:
                if client.get("/v2/health/ready").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    raise RuntimeError(f"the API did not become ready in {timeout:.0f}s\n{stack.logs()}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def fresh_postgres() -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped afterwards."""
    name = f"fusebox_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES}/{name}"
    finally:
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with fresh_postgres() as url:
        yield url


@contextmanager
def fresh_redis() -> Iterator[str]:
    """A Redis database no other test session is using (claimed with a lock key), emptied before and after:
    two test sessions on one machine must not take each other's job messages."""
    for number in REDIS_TEST_DBS:
        client = redis.Redis.from_url(f"{REDIS}/{number}")
        if client.set("fusebox-test-claim", str(os.getpid()), nx=True, ex=3 * 3600):
            break
        client.close()
    else:
        raise RuntimeError(f"every Redis database in {REDIS_TEST_DBS} is claimed by another test session")
    client.flushdb()
    client.set("fusebox-test-claim", str(os.getpid()), ex=3 * 3600)
    try:
        yield f"{REDIS}/{number}"
    finally:
        client.flushdb()
        client.close()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with fresh_redis() as url:
        yield url


@pytest.fixture(scope="session")
def pg_stack(tmp_path_factory: pytest.TempPathFactory, postgres_url: str, redis_url: str) -> Iterator[Stack]:
    stack = start_stack(tmp_path_factory.mktemp("pg-stack"), postgres_url, redis_url)
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
def embedded_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("embedded-stack")
    stack = start_stack(folder, f"sqlite:///{folder / 'var' / 'fusebox.db'}", "filesystem://")
    yield stack
    stack.stop()


@dataclass(frozen=True)
class SourceFile:
    name: str
    task: str
    path: Path
    weights: Path | None


@pytest.fixture(scope="session")
def source_files(tmp_path_factory: pytest.TempPathFactory, census_small: CensusData) -> list[SourceFile]:
    """One small trained model per Census task: an MLP in one file (legacy exporter), a DeepFM with its
    weights beside it in model.onnx.data (dynamo exporter)."""
    folder = tmp_path_factory.mktemp("service-sources")
    tasks = {task.name: task for task in census_small.tasks}
    config = TrainConfig(batch_size=512, learning_rate=3e-3, max_epochs=1, patience=1, device="cpu")
    files = []
    for family, task_name, dynamo in (("mlp", "income", False), ("deepfm", "never_married", True)):
        torch.manual_seed(0)
        task = tasks[task_name]
        model = build_single_task_model(family, census_small.schema, task, hidden=(16, 8))
        train_model(model, [task], census_small.train, census_small.validation, census_small.schema, config)
        path = export_onnx(model, census_small.schema, task, folder / f"{task_name}_{family}.onnx", dynamo=dynamo)
        weights = Path(f"{path}.data")
        files.append(SourceFile(f"{task_name}_{family}", task_name, path, weights if weights.exists() else None))
    return files


@dataclass(frozen=True)
class DataFiles:
    train: Path
    validation: Path
    tasks: list[str]


@pytest.fixture(scope="session")
def data_files(tmp_path_factory: pytest.TempPathFactory, census_small: CensusData) -> DataFiles:
    """Census rows as a user would upload them: training rows as Parquet, validation rows as CSV."""
    folder = tmp_path_factory.mktemp("service-data")
    census_small.train.head(6000).to_parquet(folder / "train.parquet", index=False)
    census_small.validation.head(2000).to_csv(folder / "validation.csv", index=False)
    return DataFiles(folder / "train.parquet", folder / "validation.csv", [t.name for t in census_small.tasks])


@pytest.fixture(scope="module", params=["pg_stack", "embedded_stack"])
def stack(request: pytest.FixtureRequest) -> Stack:
    """Each test of a module that asks for `stack` runs on PostgreSQL + Redis, then on the embedded defaults.
    A module narrows it to one by defining its own `stack`."""
    return request.getfixturevalue(request.param)


@dataclass(frozen=True)
class Uploaded:
    """Source models (the API's answers, by task) and the training and validation datasets."""

    tasks: list[str]
    models: dict[str, dict]
    train: dict
    validation: dict

    def job_spec(self, name: str, hyperparameters: dict[str, int | float]) -> dict:
        """A job fusing each task's one source model, trained on `train`, validated on `validation`."""
        return {
            "name": name,
            "tasks": [{"name": task, "type": "binary", "models": [self.models[task]["id"]]} for task in self.tasks],
            "dataset_id": self.train["id"],
            "validation_dataset_id": self.validation["id"],
            "hyperparameters": hyperparameters,
        }


def upload_sources_and_data(
    client: httpx.Client,
    source_files: list[SourceFile],
    data_files: DataFiles,
    prefix: str,
    validation_name: str | None = None,
) -> Uploaded:
    """The source models as `{prefix}_{source}`, the datasets as `{prefix} train` (its label columns may
    have gaps) and `{prefix} validation`."""
    models = {}
    for source in source_files:
        response = upload_model(client, source, name=f"{prefix}_{source.name}")
        assert response.status_code == 201, response.text
        models[source.task] = response.json()
    labels = ",".join(data_files.tasks)
    train = upload_dataset(client, data_files.train, name=f"{prefix} train", label_columns=labels)
    validation = upload_dataset(client, data_files.validation, name=validation_name or f"{prefix} validation")
    assert train.status_code == validation.status_code == 201, (train.text, validation.text)
    return Uploaded(data_files.tasks, models, train.json(), validation.json())


def upload_model(client: httpx.Client, source: SourceFile, name: str | None = None, **fields: str) -> httpx.Response:
    files = {"file": (source.path.name, source.path.read_bytes())}
    if source.weights is not None:
        files["weights"] = (source.weights.name, source.weights.read_bytes())
    return client.post("/v1/models", files=files, data={"name": name or source.name, "task": source.task, **fields})


def upload_dataset(client: httpx.Client, path: Path, **fields: str) -> httpx.Response:
    return client.post("/v1/datasets", files={"file": (path.name, path.read_bytes())}, data=fields)


def wait_for_job(client: httpx.Client, job_id: str, stack: Stack, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/fusion-jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not finish in {timeout:.0f}s: {job}\n{stack.logs()}")
