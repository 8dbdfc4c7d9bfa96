"""Prometheus metrics of the API process, served at GET /metrics.

- fusebox_http_requests_total{method, route, status} and fusebox_http_request_duration_seconds{method,
  route}: per route template (/v1/models/{model_id}), never the raw path, so ids cannot multiply series.
- fusebox_jobs{status} and fusebox_queue_messages{queue}: the jobs domain's gauges (service/jobs/metrics.py),
  registered here by service/main.py.
- fusebox_inference_rows_total{tenant, model, version} and fusebox_inference_duration_seconds{tenant, model,
  version}: see record_inference. Deployment names are per tenant, so the tenant tells two `census` apart.

Each API process has its own counters: scrape every replica (uvicorn --workers would need
prometheus_client's multiprocess mode).
"""

from __future__ import annotations

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


metrics_router = APIRouter()


@metrics_router.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    """Plain def: the scrape reads the database and the broker, so it runs in the thread pool."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
