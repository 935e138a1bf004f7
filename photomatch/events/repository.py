"""SQL for events."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from photomatch.models import Event, Face, Photo


def add_event(session: Session, event: Event) -> Event:
    """Insert `event` and flush (raises IntegrityError on a slug or access-code collision)."""
    session.add(event)
    session.flush()
    return event


def get_by_slug(session: Session, slug: str) -> Event | None:
    """The event with this slug, if any."""
    return session.scalars(select(Event).where(Event.slug == slug)).one_or_none()


def get_by_access_code(session: Session, code: str) -> Event | None:
    """The event with this access code, if any."""
    return session.scalars(select(Event).where(Event.access_code == code)).one_or_none()


def slug_taken(session: Session, slug: str) -> bool:
    """Whether an event already uses `slug`."""
    return bool(session.scalar(select(exists().where(Event.slug == slug))))


def list_for_photographer(session: Session, photographer_id: uuid.UUID) -> list[Event]:
    """The photographer's events, newest first."""
    query = select(Event).where(Event.photographer_id == photographer_id).order_by(Event.created_at.desc(), Event.name)
    return list(session.scalars(query))


def past_retention_with_faces(session: Session, before: date) -> list[uuid.UUID]:
    """Events whose retention date is before `before` and that still have face rows."""
    has_faces = exists().where(Face.event_id == Event.id)
    return list(session.scalars(select(Event.id).where(Event.retention_until < before, has_faces)))


def past_retention_with_photos(session: Session, before: date) -> list[uuid.UUID]:
    """Events whose retention date is before `before` and that still have photo rows."""
    has_photos = exists().where(Photo.event_id == Event.id)
    return list(session.scalars(select(Event.id).where(Event.retention_until < before, has_photos)))


def get_event(session: Session, event_id: uuid.UUID) -> Event | None:
    """The event with this id, if any."""
    return session.get(Event, event_id)


def embedders_of(session: Session, event_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, tuple[str, str]]:
    """The embedder models fixed by each event: (embedder, second embedder or "")."""
    rows = session.execute(select(Event.id, Event.embedder, Event.second_embedder).where(Event.id.in_(set(event_ids))))
    return {event_id: (embedder, second or "") for event_id, embedder, second in rows}


def set_second_embedder(session: Session, event_id: uuid.UUID, model: str) -> None:
    """Record the event's second embedder: photos processed from now on get its vectors too."""
    session.execute(update(Event).where(Event.id == event_id).values(second_embedder=model))


def events_without_second(session: Session) -> list[Event]:
    """Events with no second embedder, oldest first."""
    stmt = select(Event).where(Event.second_embedder.is_(None)).order_by(Event.created_at)
    return list(session.scalars(stmt))
