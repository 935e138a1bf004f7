"""Imports from a storage prefix: recorded in Postgres, copied on the cpu queue, sent again when lost.

A photographer (or a card reader's sync) puts an album under a prefix of the bucket and asks for it
to be imported. Every image key found is recorded as a pending import item before any task is
sent; the import task copies the pending ones into the event (photomatch.photos.ingest.import_object)
and records, in the same transaction, which photo each became or why it was rejected. Redis only
carries the work: the reconciler sends keys left pending past its bound again, and rejects those
sent too often. Importing the prefix again retries what was rejected; duplicates stay duplicates.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from photomatch.config import Settings
from photomatch.events import repository as event_rows
from photomatch.logs import get_logger
from photomatch.models import Event, ImportStatus
from photomatch.photos import ingest
from photomatch.photos.ingest import IngestResult, Outcome, PhotoError
from photomatch.photos.queue import enqueue_import, enqueue_processing
from photomatch.photos.repository import import_items as import_rows
from photomatch.storage import Storage

log = get_logger(__name__)


class NothingToImport(PhotoError):
    """The prefix holds no JPEG, PNG or WebP object."""

    status = 404


def start_import(
    session: Session, storage: Storage, event: Event, prefix: str, *, settings: Settings | None = None
) -> tuple[int, int]:
    """Record every image under `prefix` as pending and queue their copy; returns (objects found, tasks)."""
    keys = ingest.importable_keys(storage, prefix)
    if not keys:
        raise NothingToImport("nothing_to_import", f"no JPEG, PNG or WebP objects under {prefix!r}")
    import_rows.record_imports(session, event.id, keys, reset=True)
    return len(keys), enqueue_import(session, event.id, keys, settings=settings)


def import_batch(
    session: Session, storage: Storage, event_id: uuid.UUID, keys: Sequence[str], *, settings: Settings | None = None
) -> list[IngestResult]:
    """The import task's work: copy the keys still pending, record each outcome, queue the new photos.

    A duplicate delivery finds its keys done (or waits for the first one's transaction) and copies
    nothing; keys of a task sent before import items existed are recorded first.
    """
    event = event_rows.get_event(session, event_id)
    if event is None:
        log.warning("photos.import.event_missing", event_id=event_id)
        return []
    import_rows.record_imports(session, event_id, keys, reset=False)
    claimed = import_rows.claim_imports(session, event_id, keys)
    results = [ingest.import_object(session, storage, event, key, settings=settings) for key in claimed]
    import_rows.finish_imports(
        session,
        event_id,
        [
            {
                "key": key,
                "status": ImportStatus.REJECTED if r.outcome == Outcome.REJECTED else ImportStatus.DONE,
                "reason": _why(r) if r.outcome == Outcome.REJECTED else None,
                "photo_id": r.photo_id,
            }
            for key, r in zip(claimed, results, strict=True)
        ],
    )
    enqueue_processing(session, ingest.created_ids(results), settings=settings)
    return results


def _why(result: IngestResult) -> str:
    """A rejection as the photographer reads it: its stable code, then what it means."""
    return ": ".join(part for part in (result.reason, result.message) if part) or "rejected"


@dataclass
class ImportProgress:
    """An event's import items still to copy, and those that could not be imported."""

    importing: int
    rejected: int


def progress(session: Session, event: Event) -> ImportProgress:
    """How many of the event's import items are pending and how many were rejected."""
    counts = import_rows.import_counts(session, event.id)
    return ImportProgress(importing=counts[ImportStatus.PENDING], rejected=counts[ImportStatus.REJECTED])


@dataclass
class RejectedImport:
    """An object that was not imported, and why."""

    key: str
    reason: str
    rejected_at: datetime


def list_rejected(
    session: Session, event: Event, *, limit: int = 100, offset: int = 0
) -> tuple[int, list[RejectedImport]]:
    """(number of rejected objects, one page of them, most recent first)."""
    total, rows = import_rows.list_rejected_imports(session, event.id, limit, offset)
    return total, [RejectedImport(r.source_key, r.reason or "rejected", r.updated_at) for r in rows]


@dataclass
class ImportReconcileResult:
    """Keys sent again (their message was lost) and keys rejected after too many sends."""

    requeued: int
    rejected: int


def requeue_lost(
    session: Session,
    *,
    older_than_seconds: float,
    max_attempts: int,
    limit: int = 10_000,
    settings: Settings | None = None,
) -> ImportReconcileResult:
    """Send again the import items left pending past the bound; reject those already sent `max_attempts` times."""
    rejected = import_rows.reject_stale_imports(session, older_than_seconds, max_attempts, limit)
    stale = import_rows.requeue_stale_imports(session, older_than_seconds, max_attempts, limit)
    by_event: dict[uuid.UUID, list[str]] = {}
    for event_id, key in stale:
        by_event.setdefault(event_id, []).append(key)
    for event_id, keys in by_event.items():
        enqueue_import(session, event_id, keys, settings=settings)
    if stale or rejected:
        log.warning("photos.import.reconcile", requeued=len(stale), rejected=rejected, events=len(by_event))
    return ImportReconcileResult(requeued=len(stale), rejected=rejected)
