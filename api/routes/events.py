"""Event routes for photographers: create, list, details, and which photos an event already has."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from api.deps import CurrentPhotographer, DbSession, OwnedEvent, SettingsDep, StorageDep
from api.schemas.events import EventCreate, EventOut, KnownQuery, KnownResult
from photomatch import lifecycle
from photomatch.config import Settings
from photomatch.events import service
from photomatch.models import Event
from photomatch.photos import service as photos

router = APIRouter(prefix="/events", tags=["events"])


def _base_url(request: Request, settings: Settings) -> str:
    return (settings.public_url or str(request.base_url)).rstrip("/")


def _out(event: Event, request: Request, settings: Settings) -> EventOut:
    return EventOut.of(event, attendee_url=_base_url(request, settings) + service.attendee_path(event))


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


@router.delete("/{slug}", status_code=status.HTTP_204_NO_CONTENT)
def delete_event(event: OwnedEvent, session: DbSession, storage: StorageDep) -> Response:
    """Delete the event for good: every photo, face, file and the event itself. Attendee links stop working."""
    lifecycle.delete_event(session, storage, event)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{slug}/photos/known")
def known_photos(body: KnownQuery, event: OwnedEvent, session: DbSession) -> KnownResult:
    """Which of these SHA-256 digests the event already holds (`photomatch upload` skips those files)."""
    return KnownResult(known=sorted(photos.known_sha256s(session, event, body.sha256)))
