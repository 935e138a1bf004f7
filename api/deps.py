"""FastAPI dependencies: settings, the request's database session, storage, the photographer, their event."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from api.problems import EventNotFound, InvalidApiKey, MissingApiKey
from photomatch.accounts.service import authenticate
from photomatch.config import Settings, database_url, redis_url
from photomatch.db import commit, get_session_factory, make_engine, make_session_factory, session_scope
from photomatch.events.service import get_event
from photomatch.logs import get_logger
from photomatch.models import Event, Photographer
from photomatch.ratelimit import RateLimiter
from photomatch.storage import Storage, get_storage

log = get_logger(__name__)


class AppResources:
    """What one app instance shares across requests, built on first use (tests pass their own Settings)."""

    def __init__(self, settings: Settings, *, use_process_engine: bool) -> None:
        self.settings = settings
        # create_app() without settings shares the process-wide engine with library code; with
        # explicit settings (tests, embedding) the app gets an engine of its own.
        self._use_process_engine = use_process_engine
        self._engine: Engine | None = None

    @cached_property
    def session_factory(self) -> sessionmaker[Session]:
        """Sessions for requests."""
        if self._use_process_engine:
            return get_session_factory()
        s = self.settings
        self._engine = make_engine(
            database_url(s), pool_size=s.db_pool_size, max_overflow=s.db_max_overflow, echo=s.db_echo
        )
        return make_session_factory(self._engine)

    @cached_property
    def rate_limiter(self) -> RateLimiter:
        """The attendee doors' limits, counted in the broker's Redis."""
        return RateLimiter(self.settings, redis_url(self.settings))

    @cached_property
    def storage(self) -> Storage:
        """The configured object store."""
        return get_storage(self.settings)

    def close(self) -> None:
        """Dispose of an engine this app created."""
        if self._engine is not None:
            self._engine.dispose()


def resources(request: Request) -> AppResources:
    """The app's shared resources."""
    res: AppResources = request.app.state.resources
    return res


def settings_dep(request: Request) -> Settings:
    """The app's Settings."""
    return resources(request).settings


def _session(request: Request) -> Iterator[Session]:
    """One session per request: commit if the route succeeded (then send the tasks it queued), else roll back.

    A task that cannot be sent does not fail the request: its rows are committed, and the reconciler
    queues them once the broker is back. Routes that report whether work was queued ask this
    boundary to commit first (`Work`).
    """
    with session_scope(resources(request).session_factory, raise_after_commit=False) as session:
        yield session


def get_db(session: Annotated[Session, Depends(_session, scope="function")]) -> Session:
    """The request's session, committed before the response is sent.

    The generator is declared with scope="function" so its commit runs before the response goes out:
    a client that got a 2xx can rely on the write being durable and visible to its next request.
    Wrapping it in this plain function lets every route write the ordinary `Depends(get_db)`.
    """
    return session


@dataclass(frozen=True)
class UnitOfWork:
    """The request's transaction, for routes that must report whether the work they queued was sent."""

    session: Session

    def commit(self) -> bool:
        """Commit now and send the deferred tasks; False if the broker was unreachable (the rows are
        kept, and the reconciler queues them once it is back)."""
        return not commit(self.session)


def unit_of_work(session: Annotated[Session, Depends(get_db)]) -> UnitOfWork:
    """The request's transaction as a unit of work."""
    return UnitOfWork(session)


def get_storage_dep(request: Request) -> Storage:
    """The configured object store."""
    return resources(request).storage


# Both schemes appear in /docs ("Authorize"); auto_error=False so we answer with our own message.
_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The API key")


def current_photographer(
    session: Annotated[Session, Depends(get_db)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key_header)],
) -> Photographer:
    """The photographer whose API key the request carries; 401 otherwise."""
    raw_key = bearer.credentials if bearer is not None else api_key
    if not raw_key:
        raise MissingApiKey("missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
    photographer = authenticate(session, raw_key.strip())
    if photographer is None:
        log.info("api.auth.rejected")
        raise InvalidApiKey("invalid or revoked API key")
    return photographer


def get_owned_event(
    slug: Annotated[str, Path(description="The event's slug")],
    session: Annotated[Session, Depends(get_db)],
    photographer: Annotated[Photographer, Depends(current_photographer)],
) -> Event:
    """The event `slug` if it belongs to the caller; 404 otherwise (another's event is not revealed)."""
    event = get_event(session, slug)
    if event is None or event.photographer_id != photographer.id:
        raise EventNotFound(f"no event {slug!r}")
    return event


# Aliases for route signatures.
DbSession = Annotated[Session, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(settings_dep)]
StorageDep = Annotated[Storage, Depends(get_storage_dep)]
CurrentPhotographer = Annotated[Photographer, Depends(current_photographer)]
OwnedEvent = Annotated[Event, Depends(get_owned_event)]
Work = Annotated[UnitOfWork, Depends(unit_of_work)]
