"""Readiness: can this process reach what it needs (database, broker, storage)? Each check named.

Used by the API's /health/ready (compose healthchecks, Kubernetes readiness probes). A check
reports "ok" or the error it met; it never raises, so one broken dependency cannot hide another.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from photomatch.config import Settings
from photomatch.logs import get_logger
from photomatch.queue import producer
from photomatch.storage import Storage

log = get_logger(__name__)

PROBE_KEY = "health/ready-probe"


def _check(name: str, probe: Callable[[], object]) -> str:
    try:
        probe()
    except Exception as e:  # noqa: BLE001 - any failure means "not ready", and its text says why
        log.warning("health.ready.failed", check=name, error=type(e).__name__)
        return f"error: {type(e).__name__}: {e}"[:300]
    return "ok"


def _database(factory: sessionmaker[Session]) -> None:
    with factory() as session:
        session.execute(text("SELECT 1"))


def _broker(settings: Settings) -> None:
    with producer(settings).connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


def readiness(factory: sessionmaker[Session], settings: Settings, storage: Storage) -> dict[str, str]:
    """Per dependency, "ok" or the error that makes this process not ready."""
    return {
        "database": _check("database", lambda: _database(factory)),
        "redis": _check("redis", lambda: _broker(settings)),
        "storage": _check("storage", lambda: storage.exists(PROBE_KEY)),
    }
