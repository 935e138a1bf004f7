"""The work queue as the library sees it: task and queue names, the Celery configuration, producers.

Both processes build their Celery app here. The API (and any task that queues follow-up work) only
*sends* tasks by name through a producer app, so it never imports task modules nor anything they
import; `workers/celery_app.py` builds the worker app from the same configuration and adds the task
modules. Messages carry ids only, and are sent after the transaction that wrote those rows commits
(`defer`, dispatched by the transaction boundary in photomatch.db).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from photomatch.config import Settings, get_settings, redis_url
from photomatch.db import after_commit
from photomatch.logs import get_logger

if TYPE_CHECKING:
    from celery import Celery
    from sqlalchemy.orm import Session

log = get_logger(__name__)

# <queue>.<domain>.<verb>; routed by the queue prefix.
PROCESS_TASK = "faces.photos.process"
SECOND_EMBEDDING_TASK = "faces.photos.embed_second"
THUMBNAILS_TASK = "cpu.photos.thumbnails"
IMPORT_TASK = "cpu.photos.import"
RECONCILE_TASK = "cpu.photos.reconcile"
SWEEP_ORPHANS_TASK = "cpu.storage.sweep_orphans"
RETENTION_TASK = "cpu.events.enforce_retention"
INDEX_EVENTS_TASK = "cpu.search.index_events"
FACES_QUEUE = "faces"
CPU_QUEUE = "cpu"
QUEUES = (FACES_QUEUE, CPU_QUEUE)


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings derived from photomatch Settings."""
    from kombu import Exchange, Queue

    return {
        "broker_url": redis_url(settings),
        "broker_connection_retry_on_startup": True,
        # Redis re-delivers an unacknowledged message after this long; far above a batch's run time
        # (seconds), so only a task whose worker vanished is ever delivered twice.
        "broker_transport_options": {"visibility_timeout": 3600},
        "task_serializer": "json",
        "accept_content": ["json"],
        # State lives in Postgres; task results would be a second, weaker copy of it.
        "task_ignore_result": True,
        # Ack after the task ran, one message in flight per worker process, and give a message back
        # when its worker process dies: a batch is never lost to a crash.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # On a broker connection loss, give running tasks' messages back too (they are idempotent).
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # Each queue with its own direct exchange: a bare Queue(name) would be bound to the default
        # queue's exchange and routing key, delivering every message to both queues.
        "task_queues": tuple(Queue(name, Exchange(name), routing_key=name) for name in QUEUES),
        "task_default_queue": CPU_QUEUE,
        # Route by the name's queue prefix (<queue>.<domain>.<verb>).
        "task_routes": {f"{FACES_QUEUE}.*": {"queue": FACES_QUEUE}, f"{CPU_QUEUE}.*": {"queue": CPU_QUEUE}},
        # Flower (and `celery events`) see tasks from sent to succeeded.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "task_track_started": True,
        "beat_schedule": {
            "photos-reconcile": {
                "task": RECONCILE_TASK,
                "schedule": settings.reconcile_interval_seconds,
                # With the workers down, stale reconcile messages must not pile up: the next one
                # does the same work.
                "options": {"expires": settings.reconcile_interval_seconds},
            },
            "events-enforce-retention": {
                "task": RETENTION_TASK,
                "schedule": settings.retention_interval_seconds,
                "options": {"expires": settings.retention_interval_seconds},
            },
            "search-index-events": {
                "task": INDEX_EVENTS_TASK,
                "schedule": settings.search_index_interval_seconds,
                "options": {"expires": settings.search_index_interval_seconds},
            },
            "storage-sweep-orphans": {
                "task": SWEEP_ORPHANS_TASK,
                "schedule": settings.orphan_sweep_interval_seconds,
                "options": {"expires": settings.orphan_sweep_interval_seconds},
            },
        },
        "beat_schedule_filename": str(settings.data_dir / "celerybeat-schedule"),
    }


def create_celery_app(settings: Settings | None = None, include: Sequence[str] = ()) -> Celery:
    """A Celery app for `settings` (default: the process Settings), configured lazily on first use."""
    from celery import Celery

    celery = Celery("photomatch", include=list(include), set_as_current=settings is None and bool(include))
    # A promise: building the app neither reads Settings nor connects to or starts Redis.
    celery.add_defaults(lambda: celery_config(settings or get_settings()))
    return celery


_producers: dict[tuple[str, str], Celery] = {}
_producers_lock = threading.Lock()


def producer(settings: Settings | None = None) -> Celery:
    """The app that sends tasks for `settings`' broker: one per broker and data dir, never with task modules."""
    s = settings or get_settings()
    key = (s.redis_url, str(s.data_dir))
    with _producers_lock:
        if key not in _producers:
            _producers[key] = create_celery_app(s)
        return _producers[key]


def send(name: str, args: Sequence[Any] = (), *, settings: Settings | None = None) -> None:
    """Send task `name` now; only for callers outside a transaction (see `defer`)."""
    producer(settings).send_task(name, args=list(args))


def defer(session: Session, name: str, args: Sequence[Any] = (), *, settings: Settings | None = None) -> None:
    """Send task `name` once `session` commits: a worker must find the rows the task names."""
    after_commit(session, lambda: send(name, args, settings=settings))


def queue_backlog(queue: str, *, settings: Settings | None = None) -> int:
    """Messages waiting (not yet taken by a worker) in `queue`."""
    from kombu.exceptions import ChannelError

    with producer(settings).connection_for_read() as conn:
        try:
            declared = conn.default_channel.queue_declare(queue=queue, passive=True)
        except ChannelError:
            # Redis has no key for an empty queue, and kombu reports it as not found.
            return 0
        return int(declared.message_count)
