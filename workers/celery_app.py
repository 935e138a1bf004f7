"""The Celery application: Redis broker, two queues routed by task name, beat running the reconciler.

Queues and workers
------------------
- ``faces``: ``faces.photos.process`` (decode, detect, embed, save faces). Run it in a non-forking
  pool, one process per GPU, so the models load once and CUDA is only ever initialised in the
  process that uses it::

      celery -A workers.celery_app worker -Q faces --pool=solo        # or: photomatch worker -Q faces

  (``--pool=threads`` also works; the engine is shared and loads under a lock.) Nothing in this
  module or in the task modules imports torch: the engine is created lazily by
  ``photomatch.faces.engine.get_engine()`` inside the first face task, so even a prefork parent
  never touches CUDA; `_check_no_cuda_in_parent` turns a violation into a loud error.
- ``cpu``: ``cpu.photos.thumbnails``, ``cpu.photos.import``, ``cpu.photos.reconcile``; any pool::

      celery -A workers.celery_app worker -Q cpu --concurrency=4
      celery -A workers.celery_app beat                               # the periodic reconciler

Batching: the enqueuer (photomatch.photos.queue.enqueue_processing) groups photo ids into tasks of
Settings.process_batch_size, and each face task runs detection and embedding over its whole batch.
Reliability: late acks, prefetch 1 and reject-on-worker-lost mean a task whose worker dies is
delivered again; tasks are idempotent. Whatever Redis loses, the reconciler re-queues from Postgres.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from celery import Celery
from celery.signals import worker_process_init
from kombu import Exchange, Queue

from photomatch.config import Settings, get_settings
from photomatch.embedded import resolve_redis_url
from photomatch.photos.queue import CPU_QUEUE, FACES_QUEUE, RECONCILE_TASK

log = logging.getLogger(__name__)

TASK_MODULES = ("workers.tasks.photos",)


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings derived from photomatch Settings (resolving, or starting, the embedded Redis)."""
    return {
        "broker_url": resolve_redis_url(settings),
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
        "task_queues": tuple(Queue(name, Exchange(name), routing_key=name) for name in (FACES_QUEUE, CPU_QUEUE)),
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
            }
        },
        "beat_schedule_filename": str(settings.data_dir / "celerybeat-schedule"),
    }


def create_celery_app(settings: Settings | None = None) -> Celery:
    """A Celery app for `settings` (default: the process Settings); configured lazily, on first use."""
    celery = Celery("photomatch", include=list(TASK_MODULES), set_as_current=settings is None)
    # A promise: importing this module (the API does, to send tasks) neither reads Settings nor
    # connects to or starts Redis.
    celery.add_defaults(lambda: celery_config(settings or get_settings()))
    return celery


app = create_celery_app()


@worker_process_init.connect
def _after_fork(**_: Any) -> None:
    """In each prefork child: drop inherited DB connections and refuse CUDA state from the parent."""
    _check_no_cuda_in_parent()
    from photomatch.db import get_engine

    # Only if the parent created the engine: calling get_engine() here would build one needlessly.
    if get_engine.cache_info().currsize:
        # close=False: the sockets belong to the parent too; just forget them in the child.
        get_engine().dispose(close=False)


def _check_no_cuda_in_parent() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        log.error("workers.cuda_initialized_before_fork: a forked pool inherited CUDA state")
        raise RuntimeError("CUDA was initialised before the worker forked; run GPU queues with --pool=solo")
