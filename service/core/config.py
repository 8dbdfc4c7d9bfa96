"""Settings, read once from the environment (and a `.env` file when present).

The defaults are the embedded set-up: SQLite, kombu's filesystem broker and artifacts, all under ./var,
so that the service runs with nothing else installed. Production points DATABASE_URL at PostgreSQL and
CELERY_BROKER_URL at Redis, and FUSEBOX_ARTIFACT_ROOT and FUSEBOX_DATA_ROOT at volumes every host mounts.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, computed_field
from pydantic_settings import BaseSettings, SettingsConfigDict

from fusion.intake.records import IntakeLimits
from fusion.memory import default_job_memory_bytes

_INTAKE = IntakeLimits()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FUSEBOX_", env_file=".env", extra="ignore")

    var_dir: Path = Field(default=Path("var"), description="Home of the embedded defaults.")
    database_url: str = Field(
        default="",
        validation_alias=AliasChoices("DATABASE_URL", "FUSEBOX_DATABASE_URL"),
        description="SQLAlchemy URL; empty means a SQLite file under var_dir.",
    )
    celery_broker_url: str = Field(
        default="filesystem://",
        validation_alias=AliasChoices("CELERY_BROKER_URL", "FUSEBOX_CELERY_BROKER_URL"),
        description="redis://host:6379/0 in production; filesystem:// keeps the queue under var_dir.",
    )
    artifact_root: Path | None = Field(default=None, description="Content-addressed files; default var_dir/artifacts.")
    data_root: Path | None = Field(
        default=None,
        description="Datasets registered by reference live under it (every host mounts it); default var_dir/data.",
    )
    migrate_on_startup: bool = True
    auth_cache_s: float = Field(
        default=2.0, ge=0, description="How long a key found valid is trusted before the database is asked again."
    )
    bootstrap_tenant: bool = Field(
        default=True, description="At first start, with no tenant at all, create `local` and save its key."
    )

    max_model_bytes: int = _INTAKE.max_model_bytes
    max_weights_bytes: int = _INTAKE.max_weights_bytes
    max_activation_bytes_per_row: int = Field(
        default=_INTAKE.max_activation_bytes_per_row,
        gt=0,
        description="An uploaded model's intermediate tensors: the most bytes one input row may add, all together.",
    )
    max_constant_tensor_bytes: int = Field(
        default=_INTAKE.max_constant_tensor_bytes,
        ge=0,
        description="An uploaded model's tensors that do not depend on the rows: the most bytes beyond its weights.",
    )
    max_flops_per_row: int = Field(
        default=_INTAKE.max_flops_per_row, gt=0, description="An uploaded model's most arithmetic for one input row."
    )
    max_dataset_bytes: int = 2 * 2**30
    max_dataset_columns: int = 2_000
    max_dataset_rows: int = Field(
        default=2**31 - 1,
        gt=0,
        description="Most rows of one dataset: generous, as datasets are read a batch at a time.",
    )
    max_dataset_chunk_bytes: int = Field(
        default=256 * 2**20,
        gt=0,
        description="Most bytes one column of one Parquet row group may decode to (known from the footer).",
    )
    max_dataset_row_group_bytes: int = Field(
        default=2**30, gt=0, description="Most bytes one Parquet row group may decode to, all columns together."
    )
    max_inference_rows: int = 100_000
    max_json_body_bytes: int = Field(
        default=2**20,
        ge=1024,
        description="Largest JSON body of every route but inference (a job spec, a deployment change).",
    )
    staged_upload_max_age_s: float = Field(
        default=3600.0,
        gt=0,
        description="The longest an upload may go without a byte arriving: staged files untouched for longer are "
        "left over from a request that died (a killed API) and are removed at start and on the sweep's timer.",
    )

    job_time_limit_s: int = Field(default=24 * 3600, description="The longest a fusion job may run.")
    worker_device: str | None = Field(default=None, description="cpu, cuda, cuda:1; default: CUDA when present.")
    worker_threads: int = Field(
        default=0,
        ge=0,
        description="Most torch and ONNX Runtime threads a worker process runs; 0: the CPUs it may use (affinity, "
        "cgroup quota).",
    )
    worker_memory_bytes: int = Field(
        default_factory=default_job_memory_bytes,
        gt=0,
        description="Memory one fusion job may use: the API refuses a job estimated to need more, and a worker stops "
        "one whose process grows past it. Default: 80% of the cgroup memory limit, else of the host's memory.",
    )
    progress_interval_s: float = Field(default=0.5, description="Least time between two progress writes of a job.")
    component_cache_max_bytes: int = Field(
        default=20 * 2**30,
        ge=0,
        description="Disk kept for source component outputs that later frozen jobs reuse; least recently used out.",
    )
    inference_sessions: int = Field(
        default=16, description="ONNX Runtime sessions kept loaded, least recently used out."
    )
    inference_threads: int = Field(
        default=0,
        ge=0,
        description="Most threads per inference session; 0: the CPUs the API process may use (affinity, cgroup quota).",
    )
    heartbeat_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="A running job whose worker sent no heartbeat for this long is requeued (or failed).",
    )
    job_resend_after_s: float = Field(
        default=600.0,
        gt=0,
        description="A queued job no worker took for this long has its message sent again (a broker that lost it).",
    )
    job_max_attempts: int = Field(
        default=3, ge=1, description="Runs a job gets before a lost worker fails it instead of requeueing it."
    )

    # Inference serving (service/inference/).
    batch_max_rows: int = Field(
        default=1024, ge=1, description="Most rows dynamic batching gathers into one ONNX Runtime call."
    )
    batch_max_wait_ms: float = Field(
        default=2.0,
        ge=0,
        le=1000,
        description="Longest a request waits for others to batch with (only while its model is busy); 0: off.",
    )
    inference_graph_optimization: Literal["disabled", "basic", "extended", "all"] = "all"
    inference_inter_op_threads: int = Field(
        default=0,
        ge=0,
        description="Threads running independent nodes side by side (parallel execution only); at most, and by "
        "default, inference_threads.",
    )
    inference_execution: Literal["sequential", "parallel"] = "sequential"
    inference_spinning: bool = Field(
        default=False,
        description="ONNX Runtime's threads spin between nodes: less latency, but they take CPU the HTTP side needs.",
    )
    inference_device: str | None = Field(default=None, description="cpu, cuda, cuda:1; default: CUDA when present.")
    inference_parallel_runs: int = Field(default=2, ge=1, description="ONNX Runtime calls in flight at once.")
    inference_deployment_cache_s: float = Field(
        default=1.0, ge=0, description="How long a resolved name and version is reused before the database is asked."
    )
    inference_max_body_bytes: int = Field(
        default=256 * 2**20, description="Largest inference request body (a gRPC message too)."
    )
    grpc_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="The KServe v2 gRPC inference service's port, served by every API process; 0: no gRPC.",
    )
    grpc_host: str = Field(default="127.0.0.1", description="The address gRPC listens on (0.0.0.0: every interface).")
    api_workers: int = Field(
        default=1,
        ge=1,
        description="API processes behind the one port (`python -m service.serve`); metrics add up across them.",
    )

    @computed_field  # type: ignore[prop-decorator]  # mypy rejects decorators over @property; pydantic's documented form
    @property
    def sqlalchemy_url(self) -> str:
        """DATABASE_URL with psycopg 3 as the PostgreSQL driver (plain postgresql:// would ask for psycopg2)."""
        url = self.database_url or f"sqlite:///{self.var_dir / 'fusebox.db'}"
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url.removeprefix(prefix)
        return url

    @property
    def artifacts(self) -> Path:
        return self.artifact_root or self.var_dir / "artifacts"

    @property
    def data(self) -> Path:
        return self.data_root or self.var_dir / "data"

    @property
    def local_key_file(self) -> Path:
        return self.var_dir / "api-key"

    @property
    def broker_folder(self) -> Path:
        return self.var_dir / "broker"


@lru_cache
def get_settings() -> Settings:
    return Settings()
