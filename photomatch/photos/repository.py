"""SQL for photos and their faces. Functions only flush; the caller's boundary commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, and_, bindparam, case, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from photomatch.models import Event, Face, FaceTombstone, ImportItem, ImportStatus, Photo, PhotoStatus

# Statuses whose photo still owes the pipeline work (the reconciler's candidates).
PENDING = (PhotoStatus.UPLOADED, PhotoStatus.PROCESSING)
FINISHED = (PhotoStatus.DONE, PhotoStatus.FAILED)


# --- ingest ------------------------------------------------------------------------------------


def insert_photo(session: Session, values: dict[str, Any]) -> bool:
    """Insert a photo row unless its (event, sha256), id or storage key exists; True if inserted.

    ON CONFLICT DO NOTHING rather than check-then-insert: two concurrent uploads of the same file
    cannot both win, and the loser's transaction is not aborted by a unique violation.
    """
    stmt = pg_insert(Photo).values(**values).on_conflict_do_nothing().returning(Photo.id)
    return session.execute(stmt).scalar_one_or_none() is not None


def get_by_sha256(session: Session, event_id: uuid.UUID, sha256: str) -> Photo | None:
    """The event's photo with these bytes, if any."""
    return session.scalars(select(Photo).where(Photo.event_id == event_id, Photo.sha256 == sha256)).one_or_none()


def get_by_storage_key(session: Session, key: str) -> Photo | None:
    """The photo stored under `key`, if any."""
    return session.scalars(select(Photo).where(Photo.storage_key == key)).one_or_none()


def get_photos(session: Session, ids: Sequence[uuid.UUID], *, for_update: bool = False) -> list[Photo]:
    """Photos by id (missing ids are simply absent), optionally row-locked until commit."""
    if not ids:
        return []
    stmt = select(Photo).where(Photo.id.in_(ids)).order_by(Photo.id)
    if for_update:
        # Sorted ids and FOR UPDATE: two runs of the same task serialize instead of interleaving
        # their face replacement, and always lock in the same order (no deadlock).
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return list(session.scalars(stmt))


def get_event(session: Session, event_id: uuid.UUID) -> Event | None:
    """The event with this id, if any."""
    return session.get(Event, event_id)


def embedders_of(session: Session, event_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, tuple[str, str]]:
    """The embedder models fixed by each event: (embedder, second embedder or "")."""
    rows = session.execute(select(Event.id, Event.embedder, Event.second_embedder).where(Event.id.in_(set(event_ids))))
    return {event_id: (embedder, second or "") for event_id, embedder, second in rows}


# --- processing --------------------------------------------------------------------------------

TOO_MANY_ATTEMPTS = "too_many_attempts"


def too_many_attempts(max_attempts: int) -> str:
    """The failure reason of a photo whose processing never finished within its attempts."""
    return f"{TOO_MANY_ATTEMPTS}: processing did not finish after {max_attempts} attempts"


def fail_exhausted(session: Session, ids: Sequence[uuid.UUID], max_attempts: int) -> list[uuid.UUID]:
    """Fail the pending photos among `ids` that already used `max_attempts` claims."""
    stmt = (
        update(Photo)
        .where(Photo.id.in_(ids), Photo.status.in_(PENDING), Photo.attempts >= max_attempts)
        .values(status=PhotoStatus.FAILED, failure_reason=too_many_attempts(max_attempts), processed_at=func.now())
        .returning(Photo.id)
        .execution_options(synchronize_session=False)
    )
    return list(session.scalars(stmt))


def fail_pending(session: Session, ids: Sequence[uuid.UUID], reason: str) -> list[uuid.UUID]:
    """Fail the still-pending photos among `ids` with `reason` (a retry call brings them back)."""
    stmt = (
        update(Photo)
        .where(Photo.id.in_(ids), Photo.status.in_(PENDING))
        .values(status=PhotoStatus.FAILED, failure_reason=reason, processed_at=func.now())
        .returning(Photo.id)
        .execution_options(synchronize_session=False)
    )
    return list(session.scalars(stmt))


def claim(session: Session, ids: Sequence[uuid.UUID], max_attempts: int) -> list[tuple[uuid.UUID, uuid.UUID, str]]:
    """Mark the pending photos among `ids` processing (attempts + 1); (id, event_id, storage_key) of each.

    'processing' is claimable too: it is what a redelivered message finds after its worker died.
    Done and failed photos are skipped, which makes a duplicate message a cheap no-op.
    """
    stmt = (
        update(Photo)
        .where(Photo.id.in_(ids), Photo.status.in_(PENDING), Photo.attempts < max_attempts)
        .values(
            status=PhotoStatus.PROCESSING,
            attempts=Photo.attempts + 1,
            processing_started_at=func.now(),
            failure_reason=None,
        )
        .returning(Photo.id, Photo.event_id, Photo.storage_key)
        .execution_options(synchronize_session=False)
    )
    return [(row.id, row.event_id, row.storage_key) for row in session.execute(stmt)]


def replace_faces(session: Session, photo_id: uuid.UUID, rows: Sequence[dict[str, Any]]) -> None:
    """Delete the photo's faces and insert `rows`: run in one transaction, a rerun leaves one set."""
    session.execute(delete(Face).where(Face.photo_id == photo_id).execution_options(synchronize_session=False))
    if rows:
        session.execute(insert(Face), list(rows))


def set_thumbnails(session: Session, photo_id: uuid.UUID, small_key: str, medium_key: str) -> None:
    """Record a photo's thumbnail keys."""
    session.execute(
        update(Photo)
        .where(Photo.id == photo_id)
        .values(thumb_small_key=small_key, thumb_medium_key=medium_key)
        .execution_options(synchronize_session=False)
    )


# --- status ------------------------------------------------------------------------------------


def status_counts(session: Session, event_id: uuid.UUID) -> tuple[dict[PhotoStatus, int], int]:
    """Photos per status and the faces found, for one event (served by ix_photos_event_id_status)."""
    rows = session.execute(
        select(Photo.status, func.count(), func.coalesce(func.sum(Photo.face_count), 0))
        .where(Photo.event_id == event_id)
        .group_by(Photo.status)
    )
    counts = {status: 0 for status in PhotoStatus}
    faces = 0
    for status, n, face_sum in rows:
        counts[PhotoStatus(status)] = int(n)
        faces += int(face_sum or 0)
    return counts, faces


def keys_of_photos(session: Session, photo_ids: Sequence[uuid.UUID]) -> set[str]:
    """Every storage key (original and thumbnails) the rows of these photos point to."""
    rows = session.execute(
        select(Photo.storage_key, Photo.thumb_small_key, Photo.thumb_medium_key).where(Photo.id.in_(photo_ids))
    )
    return {key for row in rows for key in row if key}


def status_counts_all(session: Session) -> list[tuple[uuid.UUID, str, int]]:
    """(event id, status, photos) for every event that has photos: one grouped scan for the metrics."""
    rows = session.execute(select(Photo.event_id, Photo.status, func.count()).group_by(Photo.event_id, Photo.status))
    return [(event_id, PhotoStatus(status).value, int(n)) for event_id, status, n in rows]


def recent_throughput(
    session: Session, event_id: uuid.UUID, window_seconds: float
) -> tuple[int, datetime | None, datetime]:
    """(photos finished in the window, when the earliest of them started processing, the database's now)."""
    row = session.execute(
        select(
            func.count(),
            func.min(func.coalesce(Photo.processing_started_at, Photo.processed_at)),
            func.now(),
        ).where(
            Photo.event_id == event_id,
            Photo.status.in_(FINISHED),
            Photo.processed_at >= func.now() - timedelta(seconds=window_seconds),
        )
    ).one()
    return int(row[0]), row[1], row[2]


def list_failed(session: Session, event_id: uuid.UUID, limit: int, offset: int) -> tuple[int, list[Photo]]:
    """(number of failed photos, one page of them, most recent first)."""
    where = and_(Photo.event_id == event_id, Photo.status == PhotoStatus.FAILED)
    total = session.scalar(select(func.count()).select_from(Photo).where(where)) or 0
    page = session.scalars(
        select(Photo).where(where).order_by(Photo.updated_at.desc(), Photo.id).limit(limit).offset(offset)
    )
    return int(total), list(page)


def reset_failed(session: Session, event_id: uuid.UUID, ids: Sequence[uuid.UUID] | None) -> list[uuid.UUID]:
    """Put the event's failed photos (all, or those among `ids`) back to uploaded with a fresh attempt budget."""
    conditions = [Photo.event_id == event_id, Photo.status == PhotoStatus.FAILED]
    if ids is not None:
        conditions.append(Photo.id.in_(ids))
    stmt = (
        update(Photo)
        .where(*conditions)
        .values(
            status=PhotoStatus.UPLOADED,
            failure_reason=None,
            attempts=0,
            face_count=None,
            processing_started_at=None,
            processed_at=None,
        )
        .returning(Photo.id)
        .execution_options(synchronize_session=False)
    )
    return list(session.scalars(stmt))


# --- reconciler --------------------------------------------------------------------------------


def _stale(older_than_seconds: float) -> ColumnElement[bool]:
    # A processing photo is stale counting from its claim; an uploaded one from its last (re)queue,
    # which the reconciler records by touching updated_at.
    since = case((Photo.status == PhotoStatus.PROCESSING, Photo.processing_started_at), else_=Photo.updated_at)
    return since <= func.now() - timedelta(seconds=older_than_seconds)


def fail_stale_exhausted(
    session: Session,
    statuses: Sequence[PhotoStatus],
    older_than_seconds: float,
    max_attempts: int,
    limit: int,
) -> list[uuid.UUID]:
    """Fail stale pending photos that used up their attempts."""
    candidates = (
        select(Photo.id)
        .where(Photo.status.in_(statuses), _stale(older_than_seconds), Photo.attempts >= max_attempts)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    stmt = (
        update(Photo)
        .where(Photo.id.in_(candidates.scalar_subquery()))
        .values(status=PhotoStatus.FAILED, failure_reason=too_many_attempts(max_attempts), processed_at=func.now())
        .returning(Photo.id)
        .execution_options(synchronize_session=False)
    )
    return list(session.scalars(stmt))


def requeue_stale(
    session: Session, statuses: Sequence[PhotoStatus], older_than_seconds: float, max_attempts: int, limit: int
) -> list[uuid.UUID]:
    """Put stale pending photos back to uploaded, touching updated_at so each is re-queued once per bound."""
    candidates = (
        select(Photo.id)
        .where(Photo.status.in_(statuses), _stale(older_than_seconds), Photo.attempts < max_attempts)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    stmt = (
        update(Photo)
        .where(Photo.id.in_(candidates.scalar_subquery()))
        .values(status=PhotoStatus.UPLOADED, updated_at=func.now())
        .returning(Photo.id)
        .execution_options(synchronize_session=False)
    )
    return list(session.scalars(stmt))


def done_without_thumbnails(session: Session, older_than_seconds: float, limit: int) -> list[uuid.UUID]:
    """Done photos that still lack thumbnails a bound after processing (their thumbnail task was lost)."""
    stmt = (
        select(Photo.id)
        .where(
            Photo.status == PhotoStatus.DONE,
            Photo.thumb_small_key.is_(None),
            Photo.processed_at <= func.now() - timedelta(seconds=older_than_seconds),
        )
        .limit(limit)
    )
    return list(session.scalars(stmt))


def tombstones_of(session: Session, photo_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[tuple[str, np.ndarray]]]:
    """(model, embedding) of the faces attendees removed from these photos, per photo."""
    rows = session.execute(
        select(FaceTombstone.photo_id, FaceTombstone.model, FaceTombstone.embedding).where(
            FaceTombstone.photo_id.in_(list(photo_ids))
        )
    )
    out: dict[uuid.UUID, list[tuple[str, np.ndarray]]] = {}
    for photo_id, model, embedding in rows:
        vector = embedding.to_numpy() if hasattr(embedding, "to_numpy") else np.asarray(embedding)
        out.setdefault(photo_id, []).append((model, vector.astype(np.float32)))
    return out


# --- a second embedder added to an existing event ----------------------------------------------


def set_second_embedder(session: Session, event_id: uuid.UUID, model: str) -> None:
    """Record the event's second embedder: photos processed from now on get its vectors too."""
    session.execute(update(Event).where(Event.id == event_id).values(second_embedder=model))


def events_without_second(session: Session) -> list[Event]:
    """Events with no second embedder, oldest first."""
    stmt = select(Event).where(Event.second_embedder.is_(None)).order_by(Event.created_at)
    return list(session.scalars(stmt))


def _missing_second(event_id: uuid.UUID | None) -> list[ColumnElement[bool]]:
    # Faces of done photos whose event has a second embedder they lack, read through the partial
    # index on faces without a second vector, which stays small: faces processed under a second
    # embedder are never in it.
    where = [
        Face.second_model.is_(None),
        Event.id == Face.event_id,
        Event.second_embedder.is_not(None),
        Photo.id == Face.photo_id,
        Photo.event_id == Face.event_id,
        Photo.status == PhotoStatus.DONE,
    ]
    return where if event_id is None else [*where, Face.event_id == event_id]


def photos_missing_second(session: Session, event_id: uuid.UUID | None, limit: int | None) -> list[uuid.UUID]:
    """Done photos (of one event, or of any) with a face that lacks its event's second vector."""
    stmt = select(Face.photo_id).where(*_missing_second(event_id)).distinct().limit(limit)
    return list(session.scalars(stmt))


def count_photos_missing_second(session: Session, event_id: uuid.UUID) -> int:
    """How many of the event's done photos still have a face without its second vector."""
    stmt = select(func.count(func.distinct(Face.photo_id))).where(*_missing_second(event_id))
    return int(session.scalar(stmt) or 0)


def faces_missing_second(session: Session, photo_ids: Sequence[uuid.UUID]) -> list[tuple[Any, ...]]:
    """(photo id, event id, storage key, event's second model, face id, box, landmarks, probability) of
    each face of these done photos still lacking its event's second vector, by photo."""
    stmt = (
        select(
            Photo.id,
            Photo.event_id,
            Photo.storage_key,
            Event.second_embedder,
            Face.id,
            Face.box,
            Face.landmarks,
            Face.probability,
        )
        .join(Event, Event.id == Photo.event_id)
        .join(Face, and_(Face.photo_id == Photo.id, Face.event_id == Photo.event_id))
        .where(
            Photo.id.in_(list(photo_ids)),
            Photo.status == PhotoStatus.DONE,
            Event.second_embedder.is_not(None),
            Face.second_model.is_(None),
        )
        .order_by(Photo.id, Face.id)
    )
    return [tuple(row) for row in session.execute(stmt)]


def set_second_embeddings(session: Session, rows: Sequence[tuple[int, str, np.ndarray]]) -> int:
    """Store (face id, model, vector) on faces that still lack a second vector; returns faces updated.

    A face reprocessed meanwhile has a new id (and its vector already): its old id matches nothing.
    """
    updated = 0
    for face_id, model, vector in rows:
        result = session.execute(
            update(Face)
            .where(Face.id == face_id, Face.second_model.is_(None))
            .values(second_model=model, second_embedding=vector)
            .execution_options(synchronize_session=False)
        )
        updated += int(getattr(result, "rowcount", 0) or 0)
    return updated


def fail_done(session: Session, ids: Sequence[uuid.UUID], reason: str) -> list[uuid.UUID]:
    """Fail done photos whose original can no longer be read, removing their faces: a photo nobody can
    download must not be found. `photos retry` processes them again once the original is back."""
    stmt = (
        update(Photo)
        .where(Photo.id.in_(list(ids)), Photo.status == PhotoStatus.DONE)
        .values(status=PhotoStatus.FAILED, failure_reason=reason, face_count=None, processed_at=func.now())
        .returning(Photo.id)
        .execution_options(synchronize_session=False)
    )
    failed = list(session.scalars(stmt))
    if failed:
        session.execute(delete(Face).where(Face.photo_id.in_(failed)).execution_options(synchronize_session=False))
    return failed


# --- imports from a storage prefix (photomatch.photos.imports) ---------------------------------

_IMPORT_CHUNK = 5000  # keys per INSERT: a festival's card dump is tens of thousands


def record_imports(session: Session, event_id: uuid.UUID, keys: Sequence[str], *, reset: bool) -> None:
    """Add the keys as pending; with `reset`, keys already recorded (done or rejected) are pending again."""
    for start in range(0, len(keys), _IMPORT_CHUNK):
        rows = [{"event_id": event_id, "source_key": k} for k in keys[start : start + _IMPORT_CHUNK]]
        stmt = pg_insert(ImportItem).values(rows)
        if reset:
            stmt = stmt.on_conflict_do_update(
                index_elements=[ImportItem.event_id, ImportItem.source_key],
                set_={"status": ImportStatus.PENDING, "reason": None, "attempts": 0, "updated_at": func.now()},
            )
        else:
            stmt = stmt.on_conflict_do_nothing()
        session.execute(stmt)


def claim_imports(session: Session, event_id: uuid.UUID, keys: Sequence[str]) -> list[str]:
    """The keys still pending, locked by this transaction (a duplicate delivery waits, then finds none)."""
    stmt = (
        update(ImportItem)
        .where(
            ImportItem.event_id == event_id, ImportItem.source_key.in_(keys), ImportItem.status == ImportStatus.PENDING
        )
        .values(updated_at=func.now())
        .returning(ImportItem.source_key)
        .execution_options(synchronize_session=False)
    )
    claimed = set(session.scalars(stmt))
    return [k for k in keys if k in claimed]


def finish_imports(session: Session, event_id: uuid.UUID, outcomes: Sequence[dict[str, Any]]) -> None:
    """Mark keys done or rejected: each outcome has `key`, `status`, `reason` and `photo_id`."""
    if not outcomes:
        return
    stmt = (
        update(ImportItem)
        .where(ImportItem.event_id == event_id, ImportItem.source_key == bindparam("key"))
        .values(status=bindparam("status"), reason=bindparam("reason"), photo_id=bindparam("photo_id"))
    )
    session.connection().execute(stmt, list(outcomes))


def import_counts(session: Session, event_id: uuid.UUID) -> dict[ImportStatus, int]:
    """Import items per status, for one event (served by ix_import_items_event_id_status)."""
    rows = session.execute(
        select(ImportItem.status, func.count()).where(ImportItem.event_id == event_id).group_by(ImportItem.status)
    )
    counts = {status: 0 for status in ImportStatus}
    for status, n in rows:
        counts[ImportStatus(status)] = int(n)
    return counts


def list_rejected_imports(
    session: Session, event_id: uuid.UUID, limit: int, offset: int
) -> tuple[int, list[ImportItem]]:
    """(number of rejected import items, one page of them, most recent first)."""
    where = and_(ImportItem.event_id == event_id, ImportItem.status == ImportStatus.REJECTED)
    total = session.scalar(select(func.count()).select_from(ImportItem).where(where)) or 0
    page = session.scalars(
        select(ImportItem)
        .where(where)
        .order_by(ImportItem.updated_at.desc(), ImportItem.id)
        .limit(limit)
        .offset(offset)
    )
    return int(total), list(page)


def _stale_pending_imports(older_than_seconds: float, limit: int, exhausted: bool, max_attempts: int) -> Any:
    return (
        select(ImportItem.id)
        .where(
            ImportItem.status == ImportStatus.PENDING,
            ImportItem.updated_at <= func.now() - timedelta(seconds=older_than_seconds),
            ImportItem.attempts >= max_attempts if exhausted else ImportItem.attempts < max_attempts,
        )
        .limit(limit)
        .with_for_update(skip_locked=True)  # rows an import task holds are being imported now
        .scalar_subquery()
    )


def reject_stale_imports(session: Session, older_than_seconds: float, max_attempts: int, limit: int) -> int:
    """Reject pending items sent `max_attempts` times already; returns how many."""
    stmt = (
        update(ImportItem)
        .where(ImportItem.id.in_(_stale_pending_imports(older_than_seconds, limit, True, max_attempts)))
        .values(
            status=ImportStatus.REJECTED,
            reason=f"{TOO_MANY_ATTEMPTS}: the copy did not finish after {max_attempts + 1} sends",
        )
        .returning(ImportItem.id)
        .execution_options(synchronize_session=False)
    )
    return len(list(session.scalars(stmt)))


def requeue_stale_imports(
    session: Session, older_than_seconds: float, max_attempts: int, limit: int
) -> list[tuple[uuid.UUID, str]]:
    """(event, key) of pending items untouched past the bound (their message was lost): counted as sent again."""
    stmt = (
        update(ImportItem)
        .where(ImportItem.id.in_(_stale_pending_imports(older_than_seconds, limit, False, max_attempts)))
        .values(attempts=ImportItem.attempts + 1, updated_at=func.now())
        .returning(ImportItem.event_id, ImportItem.source_key)
        .execution_options(synchronize_session=False)
    )
    return sorted((event_id, key) for event_id, key in session.execute(stmt))
