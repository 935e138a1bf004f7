"""SQL for events."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session

from photomatch.models import Event, Face, FaceTombstone, Photo


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


def slugs_starting_with(session: Session, base: str) -> set[str]:
    """Slugs equal to `base` or of the form `base-...` (to pick the next free suffix in one query)."""
    pattern = base.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "-%"
    rows = session.scalars(select(Event.slug).where((Event.slug == base) | Event.slug.like(pattern, escape="\\")))
    return set(rows)


def list_for_photographer(session: Session, photographer_id: uuid.UUID) -> list[Event]:
    """The photographer's events, newest first."""
    query = select(Event).where(Event.photographer_id == photographer_id).order_by(Event.created_at.desc(), Event.name)
    return list(session.scalars(query))


def known_sha256s(session: Session, event_id: uuid.UUID, sha256s: list[str]) -> set[str]:
    """Which of `sha256s` already belong to photos of the event (resumable uploads skip them)."""
    if not sha256s:
        return set()
    query = select(Photo.sha256).where(Photo.event_id == event_id, Photo.sha256.in_(sha256s))
    return set(session.scalars(query))


def past_retention_with_faces(session: Session, before: date) -> list[uuid.UUID]:
    """Events whose retention date is before `before` and that still have face rows."""
    has_faces = exists().where(Face.event_id == Event.id)
    return list(session.scalars(select(Event.id).where(Event.retention_until < before, has_faces)))


def past_retention_with_photos(session: Session, before: date) -> list[uuid.UUID]:
    """Events whose retention date is before `before` and that still have photo rows."""
    has_photos = exists().where(Photo.event_id == Event.id)
    return list(session.scalars(select(Event.id).where(Event.retention_until < before, has_photos)))


def delete_faces(session: Session, event_id: uuid.UUID) -> None:
    """Every face and opt-out tombstone of the event; photos keep no face count."""
    session.execute(delete(Face).where(Face.event_id == event_id))
    session.execute(delete(FaceTombstone).where(FaceTombstone.event_id == event_id))
    session.execute(update(Photo).where(Photo.event_id == event_id).values(face_count=None))


def delete_photos(session: Session, event_id: uuid.UUID) -> None:
    """Every photo of the event (its faces and tombstones cascade)."""
    session.execute(delete(Photo).where(Photo.event_id == event_id))
