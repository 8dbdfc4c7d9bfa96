"""A deployment's dynamic batching: the settings it runs with, the counters of what batching merged, and
changing its settings. Inference's batchers (service/inference/batching.py) read the settings and count
into the counters; this domain never looks into inference.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from service.core.config import Settings
from service.deployments.models import Deployment
from service.deployments.schemas import BatchingChange, DeploymentBatching
from service.deployments.served import Served, get_served_cache
from service.deployments.service import find_deployment


@dataclass
class BatchStats:
    requests: int = 0
    runs: int = 0
    """ONNX Runtime calls: fewer than requests when batching merged some."""


_stats_by_file: dict[str, BatchStats] = {}


def batch_stats(sha256: str) -> BatchStats:
    """The counters of one fused model file in this process, shared by every deployment that serves it."""
    return _stats_by_file.setdefault(sha256, BatchStats())


def effective_batching(served: Served | Deployment, settings: Settings) -> tuple[int, float]:
    """Rows per batch and longest wait (ms): the deployment's own, else the service's settings."""
    rows = served.max_batch_size or settings.batch_max_rows
    wait_ms = served.max_batch_wait_ms if served.max_batch_wait_ms is not None else settings.batch_max_wait_ms
    return rows, wait_ms


def batching(session: Session, settings: Settings, tenant_id: str, name: str, version: str) -> DeploymentBatching:
    return _batching(find_deployment(session, tenant_id, name, version), settings)


def change_batching(
    session: Session, settings: Settings, tenant_id: str, name: str, version: str, change: BatchingChange
) -> DeploymentBatching:
    deployment = find_deployment(session, tenant_id, name, version)
    # Fields the change leaves out keep their value; a field sent as null returns to the service's setting.
    for key, value in change.model_dump(exclude_unset=True).items():
        setattr(deployment, key, value)
    session.commit()
    get_served_cache().forget(tenant_id, name)
    return _batching(deployment, settings)


def _batching(deployment: Deployment, settings: Settings) -> DeploymentBatching:
    rows, wait_ms = effective_batching(deployment, settings)
    stats = batch_stats(deployment.fused_model.sha256)
    return DeploymentBatching(
        name=deployment.name,
        version=deployment.version,
        max_batch_size=deployment.max_batch_size,
        max_batch_wait_ms=deployment.max_batch_wait_ms,
        effective_max_batch_size=rows,
        effective_max_batch_wait_ms=wait_ms,
        requests=stats.requests,
        runs=stats.runs,
    )
