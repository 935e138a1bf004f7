"""The end of an event's data: deletion on request, and retention enforced on schedule.

- **Deletion** (`delete_event`): every row the event owns goes in one transaction (photos, faces
  and tombstones cascade from the event, and its own search index is dropped), then every object
  under `events/<event id>/`. Should storage fail midway, the rows are already gone and the orphan
  sweep (photomatch.photos.orphans) removes what is left.
- **Retention** (`enforce_retention`, a periodic task): once an event's retention date has passed,
  its face embeddings (and opt-out tombstones, and its search index) are deleted, so nobody can be
  found in it any more; Settings.retention_photo_grace_days later its photos and their files go too, while the event row
  stays as the photographer's record that it existed and was purged.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import partial

from sqlalchemy.orm import Session

from photomatch import ann
from photomatch.db import Transaction, after_commit
from photomatch.events import repository
from photomatch.logs import get_logger
from photomatch.models import Event
from photomatch.photos.repository import faces as face_rows
from photomatch.photos.repository import photos as photo_rows
from photomatch.storage import Storage

log = get_logger(__name__)


def event_prefix(event_id: uuid.UUID) -> str:
    """Where every object of the event lives (originals and thumbnails)."""
    return f"events/{event_id}/"


def delete_objects(storage: Storage, event_id: uuid.UUID) -> int:
    """Delete every stored object of the event; returns how many."""
    keys = list(storage.list_keys(event_prefix(event_id)))
    for key in keys:
        storage.delete(key)
    return len(keys)


def delete_event(session: Session, storage: Storage, event: Event) -> None:
    """Delete the event and every row it owns; its objects go once the caller's transaction commits."""
    event_id = event.id
    session.delete(event)
    ann.drop_event_indexes(session, event_id)
    session.flush()

    def delete_files() -> None:
        log.info("events.deleted", event_id=event_id, objects=delete_objects(storage, event_id))

    after_commit(session, delete_files)


@dataclass
class RetentionResult:
    """Events whose faces, and events whose photos, were deleted by this run."""

    faces_purged: list[uuid.UUID] = field(default_factory=list)
    photos_purged: list[uuid.UUID] = field(default_factory=list)


def enforce_retention(
    transaction: Transaction, storage: Storage, *, today: date, photo_grace_days: int
) -> RetentionResult:
    """Delete the faces of events past their retention date, and their photos `photo_grace_days` later.

    Each event is purged in a transaction of its own from `transaction` (the caller's boundary, which
    commits or rolls back), so one event's failure leaves the others done; its files go after the commit.
    """
    result = RetentionResult()
    photo_cutoff = today - timedelta(days=photo_grace_days)
    with transaction() as session:
        faces_due = repository.past_retention_with_faces(session, today)
        photos_due = repository.past_retention_with_photos(session, photo_cutoff)
    for event_id in faces_due:
        with transaction() as session:
            face_rows.delete_event_faces(session, event_id)
            ann.drop_event_indexes(session, event_id)
        result.faces_purged.append(event_id)
        log.warning("retention.faces_deleted", event_id=event_id)
    for event_id in photos_due:
        with transaction() as session:
            photo_rows.delete_event_photos(session, event_id)
            after_commit(session, partial(_delete_purged_files, storage, event_id))
        result.photos_purged.append(event_id)
    return result


def _delete_purged_files(storage: Storage, event_id: uuid.UUID) -> None:
    log.warning("retention.photos_deleted", event_id=event_id, objects=delete_objects(storage, event_id))
