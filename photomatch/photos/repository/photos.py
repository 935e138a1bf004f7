"""SQL for photo rows: ingest, claims, status, failures, the reconciler's stale photos. Functions only flush."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from photomatch.models import Face, Photo, PhotoStatus
from photomatch.photos.repository import leases
from photomatch.photos.repository.faces import missing_second

# Statuses whose photo still owes the pipeline work (the reconciler's candidates).
PENDING = (PhotoStatus.UPLOADED, PhotoStatus.PROCESSING)


FINISHED = (PhotoStatus.DONE, PhotoStatus.FAILED)


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


def claim(
    session: Session, ids: Sequence[uuid.UUID], max_attempts: int, lease: uuid.UUID | None = None
) -> list[tuple[uuid.UUID, uuid.UUID, str]]:
    """Mark the pending photos among `ids` processing (attempts + 1) by the worker holding `lease`;
    (id, event_id, storage_key) of each.

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
            claimed_by=lease,
        )
        .returning(Photo.id, Photo.event_id, Photo.storage_key)
        .execution_options(synchronize_session=False)
    )
    return [(row.id, row.event_id, row.storage_key) for row in session.execute(stmt)]


def set_thumbnails(session: Session, photo_id: uuid.UUID, small_key: str, medium_key: str) -> None:
    """Record a photo's thumbnail keys."""
    session.execute(
        update(Photo)
        .where(Photo.id == photo_id)
        .values(thumb_small_key=small_key, thumb_medium_key=medium_key)
        .execution_options(synchronize_session=False)
    )


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


@dataclass(frozen=True)
class Staleness:
    """When the reconciler takes a pending photo back.

    - uploaded: `older_than` seconds after its last (re)queue, which the reconciler records by
      touching updated_at;
    - processing, claimed by a worker with a lease: at once when that lease stopped beating for
      `lease_seconds` (the worker died), else only `hung_seconds` after the claim (a live worker
      keeps its batch: taking it back would do the work twice);
    - processing, claimed without a lease (by a worker older than leases): `older_than` after the claim.
    """

    older_than: float
    lease_seconds: float = 30.0
    hung_seconds: float = 3600.0

    def condition(self) -> ColumnElement[bool]:
        """The SQL condition of a stale photo."""
        now = func.now()
        processing = Photo.status == PhotoStatus.PROCESSING
        claimed_at = Photo.processing_started_at
        return or_(
            and_(~processing, Photo.updated_at <= now - timedelta(seconds=self.older_than)),
            and_(processing, Photo.claimed_by.is_(None), claimed_at <= now - timedelta(seconds=self.older_than)),
            and_(processing, Photo.claimed_by.is_not(None), ~leases.holder_alive(self.lease_seconds)),
            and_(processing, claimed_at <= now - timedelta(seconds=self.hung_seconds)),
        )


def _stale(staleness: Staleness | float) -> ColumnElement[bool]:
    return (staleness if isinstance(staleness, Staleness) else Staleness(float(staleness))).condition()


def fail_stale_exhausted(
    session: Session,
    statuses: Sequence[PhotoStatus],
    older_than_seconds: Staleness | float,
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
    session: Session,
    statuses: Sequence[PhotoStatus],
    older_than_seconds: Staleness | float,
    max_attempts: int,
    limit: int,
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
        .values(status=PhotoStatus.UPLOADED, updated_at=func.now(), claimed_by=None)
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


def photos_missing_second(session: Session, event_id: uuid.UUID | None, limit: int | None) -> list[uuid.UUID]:
    """Done photos (of one event, or of any) with a face that lacks its event's second vector."""
    stmt = select(Face.photo_id).where(*missing_second(event_id)).distinct().limit(limit)
    return list(session.scalars(stmt))


def count_photos_missing_second(session: Session, event_id: uuid.UUID) -> int:
    """How many of the event's done photos still have a face without its second vector."""
    stmt = select(func.count(func.distinct(Face.photo_id))).where(*missing_second(event_id))
    return int(session.scalar(stmt) or 0)


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


def known_sha256s(session: Session, event_id: uuid.UUID, sha256s: list[str]) -> set[str]:
    """Which of `sha256s` already belong to photos of the event (resumable uploads skip them)."""
    if not sha256s:
        return set()
    query = select(Photo.sha256).where(Photo.event_id == event_id, Photo.sha256.in_(sha256s))
    return set(session.scalars(query))


def delete_event_photos(session: Session, event_id: uuid.UUID) -> None:
    """Every photo of the event (its faces and tombstones cascade)."""
    session.execute(delete(Photo).where(Photo.event_id == event_id))
