"""Fixtures for the web pages: an app that serves them."""

from __future__ import annotations

import importlib
from collections.abc import Callable

import pytest
from fastapi import FastAPI

from api.main import create_app
from photomatch.config import Settings

# Routers the pages need; api/main.py includes them once listed there, this adds any it does not.
WEB_ROUTERS = ("api.routes.pages", "api.routes.search")


def _has_router(app: FastAPI, module_name: str) -> bool:
    module = importlib.import_module(module_name)
    paths = {getattr(r, "path", None) for r in module.router.routes}
    return bool(paths & {getattr(r, "path", None) for r in app.routes})


@pytest.fixture(scope="session")
def make_web_app() -> Callable[[Settings], FastAPI]:
    """create_app(settings) with the pages (and the search endpoints, when they exist) routed."""

    def make(settings: Settings) -> FastAPI:
        app = create_app(settings)
        for name in WEB_ROUTERS:
            try:
                module = importlib.import_module(name)
            except ModuleNotFoundError as exc:
                if exc.name != name:
                    raise
                continue
            if not _has_router(app, name):
                app.include_router(module.router)
        return app

    return make
