"""Fixtures for the web pages: an app that serves them."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi import FastAPI

from api.main import create_app
from photomatch.config import Settings


@pytest.fixture(scope="session")
def make_web_app() -> Callable[[Settings], FastAPI]:
    """create_app(settings): the full app, pages included."""
    return create_app
