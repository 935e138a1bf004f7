"""Pipeline bookkeeping an event's photographer sees: status and ETA, failures, retry, and the reconciler.

Everything here only flushes; the processing it queues is sent once the caller's transaction commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from photomatch.config import Settings, get_settings
from photomatch.logs import get_logger
from photomatch.models import Event, PhotoStatus
from photomatch.photos import imports, second_embedder
from photomatch.photos.queue import enqueue_processing, enqueue_thumbnails
from photomatch.photos.repository import leases as lease_rows
from photomatch.photos.repository import photos as photo_rows

log = get_logger(__name__)


# --- status, failures, retry -------------------------------------------------------------------


@dataclass
class EventStatus:
    """Progress of an event's photos through the pipeline."""

    total: int
    counts: dict[str, int]
    faces: int
    remaining: int
    photos_per_second: float
    eta_seconds: float | None
    window_seconds: int
    # Done photos still owed their event's second vector (`photomatch event fuse`); 0 otherwise.
    second_embedding_pending: int = 0
    # Objects of imported prefixes still to copy (counted in `remaining`), and those rejected.
    importing: int = 0
    import_rejected: int = 0


def event_status(session: Session, event: Event, *, window_seconds: int | None = None) -> EventStatus:
    """Counts per status, faces found, recent photos/s and the ETA of the photos still pending.

    The rate is the photos finished within the window divided by the time since the earliest of
    them started processing, so it reflects the workers running now; when they stall it decays to
    0 and the ETA becomes unknown (None) rather than a stale promise.
    """
    window = window_seconds or get_settings().status_window_seconds
    counts, faces = photo_rows.status_counts(session, event.id)
    finished, started, now = photo_rows.recent_throughput(session, event.id, window)
    imported = imports.progress(session, event)
    remaining = counts[PhotoStatus.UPLOADED] + counts[PhotoStatus.PROCESSING] + imported.importing
    rate = 0.0
    if finished and started is not None:
        elapsed = min(max((now - started).total_seconds(), 1e-3), float(window))
        rate = finished / elapsed
    eta = 0.0 if remaining == 0 else (remaining / rate if rate > 0 else None)
    return EventStatus(
        total=sum(counts.values()),
        counts={status.value: n for status, n in counts.items()},
        faces=faces,
        remaining=remaining,
        photos_per_second=round(rate, 3),
        eta_seconds=None if eta is None else round(eta, 1),
        window_seconds=window,
        second_embedding_pending=second_embedder.remaining(session, event),
        importing=imported.importing,
        import_rejected=imported.rejected,
    )


@dataclass
class FailedPhoto:
    """A photo the pipeline gave up on, and why."""

    id: uuid.UUID
    filename: str
    reason: str
    attempts: int
    failed_at: datetime | None


def list_failed(session: Session, event: Event, *, limit: int = 100, offset: int = 0) -> tuple[int, list[FailedPhoto]]:
    """(number of failed photos, one page of them with reasons), most recent first."""
    total, photos = photo_rows.list_failed(session, event.id, limit, offset)
    return total, [
        FailedPhoto(p.id, p.original_filename, p.failure_reason or "unknown", p.attempts, p.processed_at)
        for p in photos
    ]


def retry_failed(
    session: Session,
    event: Event,
    photo_ids: Sequence[uuid.UUID] | None = None,
    *,
    settings: Settings | None = None,
) -> list[uuid.UUID]:
    """Put failed photos (all of the event's, or those listed) back to uploaded and queue them again."""
    ids = photo_rows.reset_failed(session, event.id, photo_ids)
    enqueue_processing(session, ids, settings=settings)
    log.info("photos.retry", event_id=event.id, photos=len(ids))
    return ids


# --- reconciler --------------------------------------------------------------------------------


@dataclass
class ReconcileResult:
    """Photo ids the reconciler re-queued, failed (too many attempts), or sent for thumbnails."""

    requeued: list[uuid.UUID]
    failed: list[uuid.UUID]
    thumbnails: list[uuid.UUID]


def photo_counts(session: Session) -> list[tuple[str, str, int]]:
    """(event id, status, photos) across events, for the `photomatch_photos` gauge."""
    return [(str(event_id), status, n) for event_id, status, n in photo_rows.status_counts_all(session)]


def staleness(settings: Settings, older_than_seconds: float | None = None) -> photo_rows.Staleness:
    """The reconciler's bounds from the settings (`older_than_seconds` overrides the time bound)."""
    bound = settings.reconcile_after_seconds if older_than_seconds is None else older_than_seconds
    return photo_rows.Staleness(bound, settings.worker_lease_seconds, settings.claim_hung_seconds)


def reconcile(
    session: Session,
    *,
    older_than_seconds: photo_rows.Staleness | float,
    max_attempts: int,
    include_uploaded: bool = True,
    include_thumbnails: bool = True,
    limit: int = 10_000,
) -> ReconcileResult:
    """Find photos stuck past the bound (`Staleness`; a bare number is the time bound alone): re-queue
    them, or fail those out of attempts.

    `include_uploaded=False` leaves uploaded photos alone: while the face queue still holds a
    backlog, an old uploaded photo is most likely waiting its turn, not lost.
    """
    statuses = list(photo_rows.PENDING) if include_uploaded else [PhotoStatus.PROCESSING]
    failed = photo_rows.fail_stale_exhausted(session, statuses, older_than_seconds, max_attempts, limit)
    requeued = photo_rows.requeue_stale(session, statuses, older_than_seconds, max_attempts, limit)
    bound = older_than_seconds if isinstance(older_than_seconds, float | int) else older_than_seconds.older_than
    thumbnails = photo_rows.done_without_thumbnails(session, bound, limit) if include_thumbnails else []
    enqueue_processing(session, requeued)
    enqueue_thumbnails(session, thumbnails)
    if failed or requeued or thumbnails:
        log.warning("photos.reconcile.found", requeued=len(requeued), failed=len(failed), thumbnails=len(thumbnails))
    return ReconcileResult(requeued=requeued, failed=failed, thumbnails=thumbnails)


def sweep_leases(session: Session, silent_seconds: float) -> int:
    """Forget the leases of workers silent for `silent_seconds` (photomatch.photos.leases); how many."""
    return lease_rows.sweep(session, silent_seconds)


def known_sha256s(session: Session, event: Event, sha256s: list[str]) -> set[str]:
    """The subset of `sha256s` (hex, any case) already uploaded to `event`."""
    return photo_rows.known_sha256s(session, event.id, sorted({h.lower() for h in sha256s}))
