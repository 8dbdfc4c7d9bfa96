"""The API application: `uvicorn service.main:app`. Docs at /docs (OpenAPI at /openapi.json)."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from service import __version__
from service.core.config import Settings, get_settings
from service.core.database import get_session_factory
from service.core.docs import install_offline_docs
from service.core.errors import install_error_handlers
from service.core.logs import configure_logging
from service.core.metrics import REGISTRY, metrics_router
from service.core.middleware import ObservabilityMiddleware
from service.core.migrate import upgrade
from service.core.request_guard import RequestGuard
from service.core.schemas import ERROR_RESPONSES
from service.core.storage import get_store
from service.dashboard.router import router as dashboard_router
from service.datasets.router import router as datasets_router
from service.deployments.router import router as deployments_router
from service.events.router import router as events_router
from service.inference.router import oip, predict_router
from service.jobs.metrics import JobsByStatus, QueueLength
from service.jobs.router import router as jobs_router
from service.models.router import router as models_router
from service.tenants.bootstrap import bootstrap_local_tenant
from service.tenants.dependencies import authenticated_tenant

log = logging.getLogger("fusebox")

DESCRIPTION = """
Upload trained single-task models (ONNX) and a dataset, start a fusion job, and query the fused
multi-task model through the Open Inference Protocol v2 (`/v2`) or `/v1/predict`.
"""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    await run_in_threadpool(prepare_database, settings)
    get_store()  # creates the artifact folders
    log.info("fusebox %s: database %s", __version__, settings.sqlalchemy_url.split("@")[-1])
    grpc_server = await _start_grpc(settings) if settings.grpc_port else None
    _tune_garbage_collector()
    yield
    if grpc_server is not None:
        await grpc_server.stop(grace=5)


async def _start_grpc(settings: Settings) -> Any:
    """Imported only when asked for: the gRPC stack costs start-up time and memory that HTTP-only APIs skip."""
    from service.inference.grpc_v2.server import start_server
    from service.inference.runtime import get_runtimes

    return await start_server(settings, get_runtimes())


def _tune_garbage_collector() -> None:
    """Startup's objects (modules, routes, schemas) leave the collector's view, and the youngest generation is
    collected every 10,000 net allocations rather than 700. Under concurrent inference load, the objects of
    requests in flight survive into older generations fast enough to set off full collections, each of which
    walked every startup object while all requests waited. Request garbage is freed by reference counting; the
    collector is only there for cycles."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def prepare_database(settings: Settings) -> None:
    """The newest schema, and the first tenant on a fresh install, as the settings ask (service/serve.py does
    this once before it starts several API processes, which then skip it)."""
    if settings.migrate_on_startup:
        upgrade(settings.sqlalchemy_url)
    if settings.bootstrap_tenant:
        with get_session_factory()() as session:
            bootstrap_local_tenant(session, settings.local_key_file)


def create_app() -> FastAPI:
    configure_logging()
    app = FastAPI(
        title="fusebox",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
        docs_url=None,
        redoc_url=None,
    )
    install_offline_docs(app)
    app.add_middleware(RequestGuard, authenticate=authenticated_tenant)  # inside the observability middleware: logged
    app.add_middleware(ObservabilityMiddleware)
    install_error_handlers(app)
    # /v2 first: routes are matched in order, and its infer route is the one that answers at the highest rate.
    for router in (oip, models_router, datasets_router, jobs_router, predict_router):
        app.include_router(router)
    app.include_router(events_router)
    app.include_router(deployments_router)
    app.include_router(dashboard_router)
    app.include_router(metrics_router)
    return app


REGISTRY.register(JobsByStatus())
REGISTRY.register(QueueLength())


app = create_app()
