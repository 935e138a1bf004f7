"""Engine and session factories, the declarative Base, and the transaction boundary helper."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache

from sqlalchemy import DateTime, MetaData, create_engine
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from photomatch.config import get_settings
from photomatch.embedded import resolve_database_url

# Deterministic constraint names, so Alembic migrations can refer to (and drop) them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every table; carries the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    # Every timestamp is timestamptz: workers, API and database may sit in different time zones.
    type_annotation_map = {datetime: DateTime(timezone=True)}


def sqlalchemy_url(url: str) -> str:
    """Return `url` with the psycopg 3 driver, accepting postgres:// and postgresql:// forms."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, *, pool_size: int = 5, max_overflow: int = 10, echo: bool = False) -> Engine:
    """A sync engine for `url`; pre-ping because workers hold connections across long idle gaps."""
    return create_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        echo=echo,
    )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions bound to `engine`; objects stay readable after commit (responses, task results)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@lru_cache
def get_engine() -> Engine:
    """The process-wide engine built from Settings (after a fork, call `get_engine().dispose(close=False)`)."""
    settings = get_settings()
    return make_engine(
        resolve_database_url(settings),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        echo=settings.db_echo,
    )


@lru_cache
def get_session_factory() -> sessionmaker[Session]:
    """The process-wide session factory bound to `get_engine()`."""
    return make_session_factory(get_engine())


@contextmanager
def session_scope(factory: sessionmaker[Session] | None = None) -> Iterator[Session]:
    """A session for one request or task: commit on success, roll back on any error, always close."""
    session = (factory or get_session_factory())()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
