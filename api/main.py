"""The FastAPI application: `create_app()` wires settings, routers and error handlers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from api.deps import AppResources
from api.errors import install_error_handlers
from api.middleware import RecordMetrics, RejectNul
from api.routes import events, files, health, metrics, pages, photos, search
from photomatch.config import Settings, get_settings
from photomatch.faces import torch_thread
from photomatch.logs import get_logger
from photomatch.search.calibration import require_calibrated

log = get_logger(__name__)

ROUTERS = (health, metrics, events, files, photos, search, pages)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    res: AppResources = app.state.resources
    # Connect (and start or attach to embedded Postgres) now rather than on the first request.
    # No face models are loaded here: the API process never runs the engine at startup.
    await run_in_threadpool(lambda: res.session_factory)
    log.info("api.started", environment=res.settings.environment, storage=res.settings.storage_backend)
    try:
        yield
    finally:
        res.close()
        log.info("api.stopped")


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new API application for `settings` (default: the process settings).

    NotCalibrated when search has no calibration for the site's detector and embedders: the API
    would otherwise answer every search with another engine's thresholds.
    """
    require_calibrated(settings or get_settings())
    app = FastAPI(
        title="photomatch",
        summary="Find a person's event photos from one selfie.",
        version="0.1.0",
        lifespan=_lifespan,
    )
    app.state.resources = AppResources(settings or get_settings(), use_process_engine=settings is None)
    # Requests run on a pool of threads: CPU inference goes to one thread of its own, where a selfie's
    # detection and embedding measured 50 ms against 73 (photomatch.faces.torch_thread).
    torch_thread.enabled = True
    install_error_handlers(app)
    app.add_middleware(RejectNul)
    # Outermost, so refused requests are counted too.
    app.add_middleware(RecordMetrics)

    for module in ROUTERS:
        app.include_router(module.router)
    return app
