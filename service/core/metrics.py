"""Prometheus metrics of the API process, served at GET /metrics.

- fusebox_http_requests_total{method, route, status} and fusebox_http_request_duration_seconds{method,
  route}: per route template (/v1/models/{model_id}), never the raw path, so ids cannot multiply series.
- fusebox_jobs{status}: fusion jobs per status, all tenants, counted in the database at scrape time.
- fusebox_queue_messages{queue}: jobs waiting in the broker (Redis list length, or message files of
  the filesystem broker), read at scrape time.
- fusebox_inference_rows_total{tenant, model, version} and fusebox_inference_duration_seconds{tenant, model,
  version}: see record_inference. Deployment names are per tenant, so the tenant tells two `census` apart.

Each API process has its own counters: scrape every replica (uvicorn --workers would need
prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import redis
from fastapi import APIRouter, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from service.core.config import Settings, get_settings
from service.core.database import get_session_factory
from service.jobs.models import FusionJob, JobStatus
from worker.app import FUSION_QUEUE, broker_options

log = logging.getLogger("fusebox.metrics")

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

_REQUESTS = Counter(
    "fusebox_http_requests", "HTTP requests answered.", ["method", "route", "status"], registry=REGISTRY
)
_REQUEST_SECONDS = Histogram(
    "fusebox_http_request_duration_seconds", "Time to answer an HTTP request.", ["method", "route"], registry=REGISTRY
)
_INFERENCE_ROWS = Counter("fusebox_inference_rows", "Rows inferred.", ["tenant", "model", "version"], registry=REGISTRY)
_INFERENCE_SECONDS = Histogram(
    "fusebox_inference_duration_seconds",
    "Time to answer one inference request.",
    ["tenant", "model", "version"],
    registry=REGISTRY,
)


def record_request(method: str, route: str, status: int, seconds: float) -> None:
    _REQUESTS.labels(method, route, str(status)).inc()
    _REQUEST_SECONDS.labels(method, route).observe(seconds)


def record_inference(tenant_id: str, model_name: str, version: str | int, rows: int, seconds: float) -> None:
    """One successful inference request (OIP v2 infer or /v1/predict) of a deployed model version."""
    _INFERENCE_ROWS.labels(tenant_id, model_name, str(version)).inc(rows)
    _INFERENCE_SECONDS.labels(tenant_id, model_name, str(version)).observe(seconds)


class _JobsByStatus(Collector):
    def describe(self) -> list[GaugeMetricFamily]:
        return [self._family()]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            with get_session_factory()() as session:
                counts = dict(session.execute(select(FusionJob.status, func.count()).group_by(FusionJob.status)).all())
        except Exception:  # a scrape must still answer the other metrics while the database is away
            log.warning("could not count the jobs for /metrics", exc_info=True)
            return
        family = self._family()
        for status in JobStatus:
            family.add_metric([status.value], counts.get(status, 0))
        yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily("fusebox_jobs", "Fusion jobs by status (all tenants).", labels=["status"])


class _QueueLength(Collector):
    def describe(self) -> list[GaugeMetricFamily]:
        return [self._family()]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            waiting = queue_length(get_settings())
        except (OSError, redis.RedisError):
            log.warning("could not read the queue length for /metrics", exc_info=True)
            return
        if waiting is not None:
            family = self._family()
            family.add_metric([FUSION_QUEUE], waiting)
            yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily("fusebox_queue_messages", "Jobs waiting in the broker queue.", labels=["queue"])


def queue_length(settings: Settings) -> int | None:
    """Messages waiting in the fusion queue; None for a broker this does not know how to read."""
    broker_url = settings.celery_broker_url
    if broker_url.startswith(("redis://", "rediss://")):
        return int(_redis(broker_url).llen(FUSION_QUEUE))
    if broker_url.startswith("filesystem"):
        folder = Path(str(broker_options(settings)["data_folder_in"]))
        return sum(1 for path in folder.iterdir() if path.name.endswith(f".{FUSION_QUEUE}.msg"))
    return None


@lru_cache
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


REGISTRY.register(_JobsByStatus())
REGISTRY.register(_QueueLength())

metrics_router = APIRouter()


@metrics_router.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    """Plain def: the scrape reads the database and the broker, so it runs in the thread pool."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
