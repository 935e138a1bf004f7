"""Queueing photo work: processing in batches, thumbnails, imports. Sent when the session commits.

Messages carry ids only; the task re-reads everything else. Every helper defers onto the caller's
session (photomatch.queue.defer), so a task is sent only after the rows it names are committed and
never for a transaction that rolled back.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from sqlalchemy.orm import Session

from photomatch.config import Settings, get_settings
from photomatch.logs import get_logger
from photomatch.queue import IMPORT_TASK, PROCESS_TASK, SECOND_EMBEDDING_TASK, THUMBNAILS_TASK, defer

log = get_logger(__name__)


def batches(ids: Sequence[uuid.UUID], size: int) -> Iterable[list[uuid.UUID]]:
    """`ids` in consecutive chunks of at most `size`."""
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


def enqueue_processing(session: Session, photo_ids: Sequence[uuid.UUID], *, settings: Settings | None = None) -> int:
    """Queue face processing and thumbnails for photos, batched; returns the face tasks deferred.

    The face worker runs detection and embedding over one task's photos at once, so ids are grouped
    into batches of Settings.process_batch_size here rather than sent one per task.
    """
    s = settings or get_settings()
    ids = list(dict.fromkeys(photo_ids))  # de-duplicated, order kept
    sent = 0
    for batch in batches(ids, s.process_batch_size):
        args = [[str(i) for i in batch]]
        defer(session, PROCESS_TASK, args, settings=settings)
        if not s.process_thumbnails_inline:
            # Thumbnails need no face model: they run beside face processing on the CPU queue.
            defer(session, THUMBNAILS_TASK, args, settings=settings)
        sent += 1
    if ids:
        log.info("photos.enqueue.processing", photos=len(ids), tasks=sent)
    return sent


def _enqueue_batches(session: Session, task: str, photo_ids: Sequence[uuid.UUID], settings: Settings | None) -> int:
    """Defer `task` over the photos in batches of Settings.process_batch_size; returns tasks deferred."""
    s = settings or get_settings()
    sent = 0
    for batch in batches(list(dict.fromkeys(photo_ids)), s.process_batch_size):
        defer(session, task, [[str(i) for i in batch]], settings=settings)
        sent += 1
    return sent


def enqueue_thumbnails(session: Session, photo_ids: Sequence[uuid.UUID], *, settings: Settings | None = None) -> int:
    """Queue thumbnail rendering alone (photos whose thumbnail task was lost); returns tasks deferred."""
    return _enqueue_batches(session, THUMBNAILS_TASK, photo_ids, settings)


def enqueue_second_embedding(
    session: Session, photo_ids: Sequence[uuid.UUID], *, settings: Settings | None = None
) -> int:
    """Queue the second embedder's vectors for done photos' faces, batched; returns the tasks deferred."""
    sent = _enqueue_batches(session, SECOND_EMBEDDING_TASK, photo_ids, settings)
    if sent:
        log.info("photos.enqueue.second_embedding", photos=len(set(photo_ids)), tasks=sent)
    return sent


def enqueue_import(
    session: Session, event_id: uuid.UUID, keys: Sequence[str], *, settings: Settings | None = None
) -> int:
    """Queue the import of storage objects into an event, in chunks; returns the tasks deferred."""
    s = settings or get_settings()
    sent = 0
    for start in range(0, len(keys), s.import_batch_size):
        defer(session, IMPORT_TASK, [str(event_id), list(keys[start : start + s.import_batch_size])], settings=settings)
        sent += 1
    log.info("photos.enqueue.import", event_id=event_id, keys=len(keys), tasks=sent)
    return sent
