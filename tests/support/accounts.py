"""Photographers for tests that talk to a real API."""

from __future__ import annotations

import uuid

from photomatch.accounts.service import create_photographer
from photomatch.config import Settings
from photomatch.db import make_engine, make_session_factory, session_scope


def new_photographer(settings: Settings, name: str) -> dict[str, str]:
    """Create a committed photographer in `settings`' database; returns the auth headers of their key."""
    engine = make_engine(settings.database_url, pool_size=1, max_overflow=0)
    try:
        with session_scope(make_session_factory(engine)) as session:
            _, key = create_photographer(session, name, f"{name.lower()}-{uuid.uuid4().hex[:6]}@example.com")
    finally:
        engine.dispose()
    return {"Authorization": f"Bearer {key}"}
