"""Event routes for photographers: create, list, details, and which photos an event already has."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Request, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import CurrentPhotographer, DbSession, OwnedEvent, SettingsDep
from photomatch.config import Settings
from photomatch.events import service
from photomatch.models import Event

router = APIRouter(prefix="/events", tags=["events"])

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")]
# Enough for a big album in one round trip while keeping the IN list and request body small.
MAX_KNOWN_QUERY = 10_000


class EventCreate(BaseModel):
    """A new event; the slug is derived from the name unless given."""

    name: str = Field(min_length=1, max_length=200, examples=["Anna & Ben's wedding"])
    slug: str | None = Field(default=None, max_length=60, examples=["anna-ben-wedding"])
    retention_days: int | None = Field(default=None, ge=1, le=3650, description="default: the server's setting")


class EventOut(BaseModel):
    """An event as its photographer sees it, with the attendee link to share."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    slug: str
    access_code: str
    retention_until: date
    embedder: str
    created_at: datetime
    attendee_url: str


class KnownQuery(BaseModel):
    """SHA-256 digests of files a client is about to upload."""

    sha256: list[Sha256] = Field(max_length=MAX_KNOWN_QUERY)


class KnownResult(BaseModel):
    """The digests from the query that the event already has."""

    known: list[str]


def _base_url(request: Request, settings: Settings) -> str:
    return (settings.public_url or str(request.base_url)).rstrip("/")


def _out(event: Event, request: Request, settings: Settings) -> EventOut:
    return EventOut(
        id=event.id,
        name=event.name,
        slug=event.slug,
        access_code=event.access_code,
        retention_until=event.retention_until,
        embedder=event.embedder,
        created_at=event.created_at,
        attendee_url=_base_url(request, settings) + service.attendee_path(event),
    )


@router.post("", status_code=status.HTTP_201_CREATED)
def create_event(
    body: EventCreate, request: Request, session: DbSession, photographer: CurrentPhotographer, settings: SettingsDep
) -> EventOut:
    """Create an event; the response carries its slug, access code and attendee link."""
    event = service.create_event(
        session, photographer, body.name, slug=body.slug, retention_days=body.retention_days, settings=settings
    )
    # created_at is a server default: load it before the response is built.
    session.refresh(event)
    return _out(event, request, settings)


@router.get("")
def list_events(
    request: Request, session: DbSession, photographer: CurrentPhotographer, settings: SettingsDep
) -> list[EventOut]:
    """The caller's events, newest first."""
    return [_out(e, request, settings) for e in service.list_events(session, photographer)]


@router.get("/{slug}")
def get_event(event: OwnedEvent, request: Request, settings: SettingsDep) -> EventOut:
    """One of the caller's events."""
    return _out(event, request, settings)


@router.post("/{slug}/photos/known")
def known_photos(body: KnownQuery, event: OwnedEvent, session: DbSession) -> KnownResult:
    """Which of these SHA-256 digests the event already holds (`photomatch upload` skips those files)."""
    return KnownResult(known=sorted(service.known_sha256s(session, event, body.sha256)))
