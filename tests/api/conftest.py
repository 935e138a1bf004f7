"""An API app on a fresh database with local storage, and helpers to make photographers."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from photomatch.accounts.service import create_photographer
from photomatch.config import Settings
from photomatch.db import make_engine, make_session_factory, session_scope


@pytest.fixture
def api_client(api_settings: Settings) -> Iterator[TestClient]:
    """A TestClient of create_app(api_settings), lifespan run."""
    with TestClient(create_app(api_settings)) as client:
        yield client


@pytest.fixture
def make_photographer(fresh_db: str) -> Iterator[Callable[[str], dict[str, str]]]:
    """Create a committed photographer; returns auth headers for their API key."""
    engine = make_engine(fresh_db, pool_size=1, max_overflow=0)
    factory = make_session_factory(engine)

    def make(name: str) -> dict[str, str]:
        with session_scope(factory) as session:
            _, key = create_photographer(session, name, f"{name.lower()}@example.com")
        return {"Authorization": f"Bearer {key}"}

    yield make
    engine.dispose()
