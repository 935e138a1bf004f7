"""Sending photo work to the Celery workers: task names, batching, and the queue backlog.

Callers enqueue only after their transaction has committed (the worker must find the rows) and
pass ids only; the task re-reads everything else. Tasks are sent by name, so the API process never
imports task modules (nor anything they import).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from photomatch.config import Settings, get_settings

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger(__name__)

# <queue>.<domain>.<verb>; workers/celery_app.py routes by the queue prefix.
PROCESS_TASK = "faces.photos.process"
THUMBNAILS_TASK = "cpu.photos.thumbnails"
IMPORT_TASK = "cpu.photos.import"
RECONCILE_TASK = "cpu.photos.reconcile"
FACES_QUEUE = "faces"
CPU_QUEUE = "cpu"

_apps: dict[tuple[str, str], Celery] = {}
_apps_lock = threading.Lock()


def celery_app(settings: Settings | None = None) -> Celery:
    """The Celery app for `settings`' broker: the worker's own app for the process settings."""
    from workers.celery_app import app, create_celery_app

    if settings is None or settings is get_settings():
        return app
    # An app built from explicit Settings (tests, an embedding API) gets a producer of its own.
    key = (settings.redis_url, str(settings.data_dir))
    with _apps_lock:
        if key not in _apps:
            _apps[key] = create_celery_app(settings)
        return _apps[key]


def batches(ids: Sequence[uuid.UUID], size: int) -> Iterable[list[uuid.UUID]]:
    """`ids` in consecutive chunks of at most `size`."""
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


def enqueue_processing(photo_ids: Sequence[uuid.UUID], *, settings: Settings | None = None) -> int:
    """Queue face processing and thumbnails for committed photos, batched; returns the face tasks sent.

    The face worker runs detection and embedding over one task's photos at once, so ids are grouped
    into batches of Settings.process_batch_size here rather than sent one per task.
    """
    s = settings or get_settings()
    app = celery_app(settings)
    ids = list(dict.fromkeys(photo_ids))  # de-duplicated, order kept
    sent = 0
    for batch in batches(ids, s.process_batch_size):
        args = [[str(i) for i in batch]]
        app.send_task(PROCESS_TASK, args=args)
        # Thumbnails need no face model: they run beside face processing on the CPU queue.
        app.send_task(THUMBNAILS_TASK, args=args)
        sent += 1
    if ids:
        log.info("photos.enqueue.processing photos=%d tasks=%d", len(ids), sent)
    return sent


def enqueue_thumbnails(photo_ids: Sequence[uuid.UUID], *, settings: Settings | None = None) -> int:
    """Queue thumbnail rendering alone (photos whose thumbnail task was lost); returns tasks sent."""
    s = settings or get_settings()
    app = celery_app(settings)
    sent = 0
    for batch in batches(list(photo_ids), s.process_batch_size):
        app.send_task(THUMBNAILS_TASK, args=[[str(i) for i in batch]])
        sent += 1
    return sent


def enqueue_import(event_id: uuid.UUID, keys: Sequence[str], *, settings: Settings | None = None) -> int:
    """Queue the import of storage objects into an event, in chunks; returns the tasks sent."""
    s = settings or get_settings()
    app = celery_app(settings)
    sent = 0
    for start in range(0, len(keys), s.import_batch_size):
        app.send_task(IMPORT_TASK, args=[str(event_id), list(keys[start : start + s.import_batch_size])])
        sent += 1
    log.info("photos.enqueue.import event=%s keys=%d tasks=%d", event_id, len(keys), sent)
    return sent


def queue_backlog(queue: str, *, settings: Settings | None = None) -> int:
    """Messages waiting (not yet taken by a worker) in `queue`."""
    from kombu.exceptions import ChannelError

    app = celery_app(settings)
    with app.connection_for_read() as conn:
        try:
            declared = conn.default_channel.queue_declare(queue=queue, passive=True)
        except ChannelError:
            # Redis has no key for an empty queue, and kombu reports it as not found.
            return 0
        return int(declared.message_count)
