"""Prometheus metrics of the API process, served at GET /metrics.

- fusebox_http_requests_total{method, route, status} and fusebox_http_request_duration_seconds{method,
  route}: per route template (/v1/models/{model_id}), never the raw path, so ids cannot multiply series.
- fusebox_jobs{status} and fusebox_queue_messages{queue}: the jobs domain's gauges (service/jobs/metrics.py),
  registered here by service/main.py.
- fusebox_inference_rows_total{tenant, model, version} and fusebox_inference_duration_seconds{tenant, model,
  version}: see record_inference. Deployment names are per tenant, so the tenant tells two `census` apart.

- fusebox_grpc_requests_total{method, code} and fusebox_grpc_request_duration_seconds{method}: the gRPC
  inference service's calls (service/inference/grpc_v2/), by method and status code.

Several API processes (FUSEBOX_API_WORKERS, service/serve.py) share one set of counters through
prometheus_client's multiprocess mode: each process writes its values to files in PROMETHEUS_MULTIPROC_DIR,
and /metrics, whichever process answers, sums them over every process. The process and platform collectors
describe one process only, so they are left out in that mode.
"""

from __future__ import annotations

import os

from fastapi import APIRouter, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    multiprocess,
)

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus_client reads it when first imported: it must be in the environment before the process starts."""

REGISTRY = CollectorRegistry()
"""What /metrics serves; other modules register their collectors (read at scrape time) here."""
if os.environ.get(MULTIPROCESS_DIR):
    multiprocess.MultiProcessCollector(REGISTRY)
    _OWN = CollectorRegistry()  # the values live in the files; a registry of their own keeps them out of REGISTRY
else:
    ProcessCollector(registry=REGISTRY)
    PlatformCollector(registry=REGISTRY)
    _OWN = REGISTRY

_REQUESTS = Counter("fusebox_http_requests", "HTTP requests answered.", ["method", "route", "status"], registry=_OWN)
_REQUEST_SECONDS = Histogram(
    "fusebox_http_request_duration_seconds", "Time to answer an HTTP request.", ["method", "route"], registry=_OWN
)
_INFERENCE_ROWS = Counter("fusebox_inference_rows", "Rows inferred.", ["tenant", "model", "version"], registry=_OWN)
_INFERENCE_SECONDS = Histogram(
    "fusebox_inference_duration_seconds",
    "Time to answer one inference request.",
    ["tenant", "model", "version"],
    registry=_OWN,
)
_GRPC_REQUESTS = Counter("fusebox_grpc_requests", "gRPC calls answered.", ["method", "code"], registry=_OWN)
_GRPC_SECONDS = Histogram(
    "fusebox_grpc_request_duration_seconds", "Time to answer a gRPC call.", ["method"], registry=_OWN
)


def record_request(method: str, route: str, status: int, seconds: float) -> None:
    _REQUESTS.labels(method, route, str(status)).inc()
    _REQUEST_SECONDS.labels(method, route).observe(seconds)


def record_inference(tenant_id: str, model_name: str, version: str | int, rows: int, seconds: float) -> None:
    """One successful inference request (OIP v2 infer or /v1/predict) of a deployed model version."""
    _INFERENCE_ROWS.labels(tenant_id, model_name, str(version)).inc(rows)
    _INFERENCE_SECONDS.labels(tenant_id, model_name, str(version)).observe(seconds)


def record_grpc_request(method: str, code: str, seconds: float) -> None:
    _GRPC_REQUESTS.labels(method, code).inc()
    _GRPC_SECONDS.labels(method).observe(seconds)


metrics_router = APIRouter()


@metrics_router.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    """Plain def: the scrape reads the database and the broker, so it runs in the thread pool."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
