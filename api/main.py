"""The FastAPI application: `create_app()` wires settings, routers and error handlers."""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.deps import AppResources
from api.routes import events, files
from photomatch.accounts.service import AccountError
from photomatch.config import Settings, get_settings
from photomatch.events.service import EventError, SlugTaken
from photomatch.storage import InvalidKey, NotSupported, ObjectNotFound

log = logging.getLogger(__name__)

# Routers written elsewhere that may not exist in every checkout; included when importable.
_OPTIONAL_ROUTERS = ("api.routes.photos", "api.routes.search", "api.routes.pages")


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    res: AppResources = app.state.resources
    # Connect (and start or attach to embedded Postgres) now rather than on the first request.
    # No face models are loaded here: the API process never runs the engine at startup.
    await run_in_threadpool(lambda: res.session_factory)
    log.info("api.started environment=%s storage=%s", res.settings.environment, res.settings.storage_backend)
    try:
        yield
    finally:
        res.close()
        log.info("api.stopped")


def _error(status_code: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status_code)


def _install_error_handlers(app: FastAPI) -> None:
    """Map errors a user can cause to JSON with a status code; anything else is a bare 500."""

    @app.exception_handler(SlugTaken)
    async def _slug_taken(_: Request, exc: SlugTaken) -> JSONResponse:
        return _error(status.HTTP_409_CONFLICT, str(exc))

    @app.exception_handler(EventError)
    @app.exception_handler(AccountError)
    async def _invalid(_: Request, exc: Exception) -> JSONResponse:
        return _error(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc))

    @app.exception_handler(InvalidKey)
    async def _bad_key(_: Request, exc: InvalidKey) -> JSONResponse:
        return _error(status.HTTP_400_BAD_REQUEST, str(exc))

    @app.exception_handler(ObjectNotFound)
    async def _not_found(_: Request, exc: ObjectNotFound) -> JSONResponse:
        return _error(status.HTTP_404_NOT_FOUND, "file not found")

    @app.exception_handler(NotSupported)
    async def _not_supported(_: Request, exc: NotSupported) -> JSONResponse:
        return _error(status.HTTP_400_BAD_REQUEST, str(exc))

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
        log.exception("api.unhandled_error method=%s path=%s", request.method, request.url.path)
        return _error(status.HTTP_500_INTERNAL_SERVER_ERROR, "internal server error")


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new API application for `settings` (default: the process settings)."""
    app = FastAPI(
        title="photomatch",
        summary="Find a person's event photos from one selfie.",
        version="0.1.0",
        lifespan=_lifespan,
    )
    app.state.resources = AppResources(settings or get_settings(), use_process_engine=settings is None)
    _install_error_handlers(app)

    @app.get("/health", tags=["ops"])
    def health() -> dict[str, str]:
        """Liveness: the process answers (no dependency checks)."""
        return {"status": "ok"}

    app.include_router(events.router)
    app.include_router(files.router)
    for name in _OPTIONAL_ROUTERS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # Only a missing module is tolerated; an import error inside it must surface.
            if exc.name != name:
                raise
            log.info("api.router.missing module=%s", name)
            continue
        app.include_router(module.router)
    return app
