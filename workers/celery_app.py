"""The Celery application: Redis broker, two queues routed by task name, beat running the reconciler.

Queues and workers
------------------
- ``faces``: ``faces.photos.process`` (decode, detect, embed, save faces) and
  ``faces.photos.embed_second`` (an older event's faces given a second model's vectors). Run it in
  a non-forking pool, one process per GPU, so the models load once and CUDA is only ever
  initialised in the process that uses it::

      celery -A workers.celery_app worker -Q faces --pool=solo        # or: photomatch worker -Q faces

  (``--pool=threads`` also works; the engine is shared and loads under a lock.) Nothing in this
  module or in the task modules imports torch: the engine is created lazily by
  ``photomatch.faces.engine.get_engine()`` inside the first face task, so even a prefork parent
  never touches CUDA; `_check_no_cuda_in_parent` turns a violation into a loud error.
- ``cpu``: ``cpu.photos.thumbnails``, ``cpu.photos.import``, ``cpu.photos.reconcile``; any pool::

      celery -A workers.celery_app worker -Q cpu --concurrency=4
      celery -A workers.celery_app beat                               # the periodic reconciler

Names, routing and the configuration live in photomatch.queue, shared with the API's producer.
Batching: the enqueuer (photomatch.photos.queue.enqueue_processing) groups photo ids into tasks of
Settings.process_batch_size, and each face task runs detection and embedding over its whole batch.
Reliability: late acks, prefetch 1 and reject-on-worker-lost mean a task whose worker dies is
delivered again; tasks are idempotent. Whatever Redis loses, the reconciler re-queues from Postgres.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
from typing import Any

from celery.signals import (
    setup_logging,
    task_postrun,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

from photomatch.logs import get_logger
from photomatch.queue import create_celery_app

log = get_logger(__name__)

TASK_MODULES = ("workers.tasks.photos", "workers.tasks.search")

# The worker's app: the library's configuration plus the task modules (`celery -A workers.celery_app`).
app = create_celery_app(include=TASK_MODULES)


@setup_logging.connect
def _setup_logging(loglevel: Any = None, **_: Any) -> None:
    """Worker and beat log through photomatch.logs (JSON, redacted); connecting this keeps Celery's own
    formatter off the root logger."""
    from photomatch.config import get_settings
    from photomatch.logs import configure_logging

    settings = get_settings()
    configure_logging(loglevel or settings.log_level, settings.log_format)


@worker_init.connect
def _refuse_uncalibrated(**_: Any) -> None:
    """A worker whose engine search has no calibration for stops before it embeds a photo: its
    vectors would be ranked with another engine's thresholds."""
    from photomatch.config import get_settings
    from photomatch.search.calibration import NotCalibrated, require_calibrated

    try:
        require_calibrated(get_settings())
    except NotCalibrated as e:
        log.error("workers.not_calibrated", detail=str(e))
        raise SystemExit(f"photomatch worker: {e}") from None


@worker_init.connect
def _serve_metrics(**_: Any) -> None:
    """With worker_metrics_port set, the worker's main process serves the metrics of it and its pool."""
    from prometheus_client import start_http_server

    from photomatch.config import get_settings
    from photomatch.metrics import registry

    port = get_settings().worker_metrics_port
    if port:
        start_http_server(port, registry=registry())
        log.info("workers.metrics.serving", port=port)


# This worker's lease on the photos it claims (photomatch.photos.leases); None outside a worker.
_lease: Any = None


def worker_lease() -> Any:
    """The id of this worker's lease, for its claims (None when it has none)."""
    return None if _lease is None else _lease.id


@worker_init.connect
def _take_lease(sender: Any = None, **_: Any) -> None:
    """Register this worker's lease before it consumes: a previous worker of the same name is gone,
    so the batch it held goes back on the queue now rather than after the reconciler's bound."""
    global _lease
    from photomatch.config import get_settings
    from photomatch.db import session_scope
    from photomatch.photos.leases import Lease

    node = str(getattr(sender, "hostname", "") or "worker")
    lease = Lease(node, get_settings(), session_scope)
    try:
        lease.start()
    except Exception as e:  # no database yet: claims go without a lease (the time bound applies)
        log.warning("workers.lease.unavailable", error=type(e).__name__)
        return
    _lease = lease


@worker_shutdown.connect
def _release_lease(**_: Any) -> None:
    """A worker that stops releases its lease: anything it did not finish may be claimed at once."""
    if _lease is not None:
        with contextlib.suppress(Exception):
            _lease.stop()


@worker_ready.connect
def _preload_models(sender: Any = None, **_: Any) -> None:
    """With worker_preload_models, a solo/threads worker that consumes the faces queue loads the engine now.

    Never in a prefork parent: its children would inherit torch (and maybe CUDA) state.
    """
    from photomatch.config import get_settings
    from photomatch.queue import FACES_QUEUE

    settings = get_settings()
    # The sender is the worker's consumer: its pool and the queues it reads.
    task_consumer = getattr(sender, "task_consumer", None)
    queues = {q.name for q in task_consumer.queues} if task_consumer is not None else set()
    forking = "prefork" in type(getattr(sender, "pool", None)).__module__
    if not settings.worker_preload_models or FACES_QUEUE not in queues or forking:
        return
    from photomatch.faces.engine import get_engine

    get_engine().load()
    log.info("workers.models.preloaded", embedder=settings.embedder, device=settings.device)


@task_postrun.connect
def _give_memory_back(**_: Any) -> None:
    """Return freed heap to the OS after each task (glibc keeps it otherwise).

    Decoding and analysing a batch allocates hundreds of MB that Python and torch free at the end;
    glibc's arenas kept most of it, so a worker's RSS only ever grew (0.95 GB to 2.7 GB over the
    issue 9 sweep). malloc_trim(0) hands the free pages back; it costs about a millisecond.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)


@worker_process_shutdown.connect
def _forget_metrics(pid: int | None = None, **_: Any) -> None:
    """A prefork child's live samples go with it."""
    import os

    from photomatch.metrics import mark_process_dead

    mark_process_dead(pid or os.getpid())


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
        log.error("workers.cuda_initialized_before_fork", detail="a forked pool inherited CUDA state")
        raise RuntimeError("CUDA was initialised before the worker forked; run GPU queues with --pool=solo")
