"""Engine and session factories, the declarative Base, and the transaction boundary helper."""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from functools import lru_cache

from sqlalchemy import DateTime, Enum, MetaData, create_engine
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from photomatch.config import database_url, get_settings
from photomatch.logs import get_logger

log = get_logger(__name__)

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


def checked_enum(members: type[enum.StrEnum], name: str) -> Enum:
    """A status column's type: a checked varchar of the members' values rather than a native enum, so
    adding a status later is a plain constraint swap instead of ALTER TYPE."""
    return Enum(
        members,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda ms: [m.value for m in ms],
    )


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
        database_url(settings),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        echo=settings.db_echo,
    )


@lru_cache
def get_session_factory() -> sessionmaker[Session]:
    """The process-wide session factory bound to `get_engine()`."""
    return make_session_factory(get_engine())


# Work to do once the session's transaction has committed (sending tasks), kept in session.info.
_AFTER_COMMIT = "photomatch.after_commit"


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run `callback` after `session` next commits (through `commit`); dropped if it rolls back."""
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


def commit(session: Session) -> list[Exception]:
    """Commit, then run the session's after-commit callbacks; returns (and logs) those that failed.

    A failing callback cannot undo the commit: the rows are durable either way, so the others
    still run, and the caller decides whether a failure matters (the reconciler repairs lost sends).
    """
    session.commit()
    errors: list[Exception] = []
    for callback in session.info.pop(_AFTER_COMMIT, []):
        try:
            callback()
        except Exception as e:
            log.exception("db.after_commit.failed")
            errors.append(e)
    return errors


def rollback(session: Session) -> None:
    """Roll back and forget the after-commit work of the discarded transaction."""
    session.info.pop(_AFTER_COMMIT, None)
    session.rollback()


# A unit of work opened by a boundary (a task, a request): commits on success, rolls back on error.
Transaction = Callable[[], AbstractContextManager[Session]]


@contextmanager
def session_scope(
    factory: sessionmaker[Session] | None = None, *, raise_after_commit: bool = True
) -> Iterator[Session]:
    """A session for one request or task: commit on success, roll back on any error, always close.

    After the commit the work deferred with `after_commit` runs (tasks are sent); with
    `raise_after_commit` its first failure is raised once everything has run, so a task retries.
    """
    session = (factory or get_session_factory())()
    try:
        yield session
        errors = commit(session)
    except BaseException:
        rollback(session)
        raise
    finally:
        session.close()
    if errors and raise_after_commit:
        raise errors[0]
