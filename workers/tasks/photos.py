"""Photo tasks: thin doors to photomatch.photos. Each owns its transactions; the work they queue is
sent when their transaction commits (photomatch.db.session_scope).

Transient errors (database, storage or broker connections) retry with exponential backoff;
permanent ones (an undecodable image, a missing original) fail the photo with a reason instead.
A task that still fails leaves its photos pending, and the reconciler re-queues them.
"""

from __future__ import annotations

import uuid
from datetime import date
from functools import lru_cache
from typing import Any

import botocore.exceptions
import kombu.exceptions
import sqlalchemy.exc

from photomatch import lifecycle
from photomatch.config import get_settings
from photomatch.db import session_scope
from photomatch.faces.types import Analyzer, DeviceOutOfMemory
from photomatch.logs import get_logger
from photomatch.metrics import timed
from photomatch.photos import imports, ingest, orphans, processing, second_embedder, service
from photomatch.queue import (
    CPU_QUEUE,
    FACES_QUEUE,
    IMPORT_TASK,
    PROCESS_TASK,
    RECONCILE_TASK,
    RETENTION_TASK,
    SECOND_EMBEDDING_TASK,
    SWEEP_ORPHANS_TASK,
    THUMBNAILS_TASK,
    queue_backlog,
)
from photomatch.storage import Storage, get_storage
from workers.celery_app import app, worker_lease

log = get_logger(__name__)

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    sqlalchemy.exc.OperationalError,  # connection refused/reset, server restarting
    sqlalchemy.exc.InterfaceError,
    botocore.exceptions.ConnectionError,  # S3 endpoint unreachable
    botocore.exceptions.HTTPClientError,  # S3 read timeout, connection closed
    kombu.exceptions.OperationalError,  # broker unreachable while enqueueing follow-up work
    DeviceOutOfMemory,  # one photo did not fit in the GPU's free memory: retry, never fail the photo
    ConnectionError,
    TimeoutError,
)
# Storage that does not answer: retried with backoff, then the batch fails with storage_unavailable.
STORAGE_UNAVAILABLE: tuple[type[BaseException], ...] = (
    botocore.exceptions.ConnectionError,
    botocore.exceptions.HTTPClientError,
    ConnectionError,
    TimeoutError,
)
RETRY = {
    "autoretry_for": TRANSIENT_ERRORS,
    "retry_backoff": 5,  # 5, 10, 20, 40 s (+ jitter)
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 4,
}


@lru_cache
def _storage() -> Storage:
    # Built in the process that uses it (after any fork): boto3 clients must not cross a fork.
    return get_storage(get_settings())


def _engine_for(models: tuple[str, str]) -> Analyzer:
    # Imported here, in the task process, never at module import: this is what keeps torch (and
    # CUDA) out of a forking parent.
    from photomatch.faces.engine import get_engine_for

    return get_engine_for(models)


def _ids(photo_ids: list[str]) -> list[uuid.UUID]:
    return [uuid.UUID(i) for i in photo_ids]


@app.task(name=PROCESS_TASK, bind=True, **RETRY)
def process_photos(self: Any, photo_ids: list[str]) -> dict[str, Any]:
    """Decode, detect and embed a batch of photos; replace their faces; mark them done or failed."""
    settings = get_settings()
    with session_scope() as session:
        claimed = processing.claim_photos(
            session, _ids(photo_ids), max_attempts=settings.max_processing_attempts, lease=worker_lease()
        )
    if not claimed:
        return {"photos": 0}
    try:
        outcomes = processing.analyze_photos(claimed, _storage(), _engine_for)
    except STORAGE_UNAVAILABLE as e:
        if self.request.retries < self.max_retries:
            raise  # retried with backoff (autoretry_for)
        with session_scope() as session:
            unavailable = processing.fail_unavailable(session, claimed, e)
        return {"photos": len(claimed), "failed": len(unavailable), "faces": 0}
    with timed("db_write"), session_scope() as session:
        processing.save_outcomes(session, outcomes)
    processing.record_outcomes(outcomes)
    failed = sum(o.failure is not None for o in outcomes)
    faces = sum(len(o.faces) for o in outcomes)
    log.info("photos.process.batch_done", photos=len(outcomes), failed=failed, faces=faces)
    return {"photos": len(outcomes), "failed": failed, "faces": faces}


@app.task(name=SECOND_EMBEDDING_TASK, **RETRY)
def embed_second(photo_ids: list[str]) -> dict[str, Any]:
    """Give a batch of done photos' faces their event's second vector (an event that gained a second
    embedder); photos whose original is gone fail with the reason."""
    with session_scope() as session:
        pending = second_embedder.load_pending(session, _ids(photo_ids))
    if not pending:
        return {"photos": 0, "faces": 0}
    embedded = second_embedder.embed_pending(pending, _storage(), _engine_for)
    with timed("db_write"), session_scope() as session:
        faces, failed = second_embedder.save_embedded(session, embedded)
    log.info("photos.second_embedder.batch_done", photos=len(pending), faces=faces, failed=len(failed))
    return {"photos": len(pending), "faces": faces, "failed": len(failed)}


@app.task(name=THUMBNAILS_TASK, **RETRY)
def make_thumbnails(photo_ids: list[str]) -> dict[str, Any]:
    """Render small and medium previews of a batch of photos."""
    with timed("thumbnails"), session_scope() as session:
        made = processing.make_thumbnails(session, _storage(), _ids(photo_ids))
    return {"thumbnails": made}


@app.task(name=IMPORT_TASK, **RETRY)
def import_photos(event_id: str, keys: list[str]) -> dict[str, Any]:
    """Copy objects under an import prefix into an event and queue the new photos."""
    with session_scope() as session:
        results = imports.import_batch(session, _storage(), uuid.UUID(event_id), keys)
    counts = {outcome.value: sum(r.outcome == outcome for r in results) for outcome in ingest.Outcome}
    log.info("photos.import.batch_done", event_id=event_id, **counts)
    return counts


@app.task(name=RECONCILE_TASK, **RETRY)
def reconcile_photos(older_than_seconds: float | None = None) -> dict[str, Any]:
    """Re-queue photos stuck in uploaded/processing, and import items left pending, past the bound (beat runs
    this periodically)."""
    settings = get_settings()
    bound = service.staleness(settings, older_than_seconds)
    # Uploaded photos behind a face-queue backlog are waiting, not lost; re-queueing them every
    # run would multiply the backlog. Photos stuck in processing are re-queued regardless.
    faces_backlog = queue_backlog(FACES_QUEUE)
    cpu_backlog = queue_backlog(CPU_QUEUE)
    with session_scope() as session:
        result = service.reconcile(
            session,
            older_than_seconds=bound,
            max_attempts=settings.max_processing_attempts,
            include_uploaded=faces_backlog == 0,
            include_thumbnails=cpu_backlog == 0,
        )
        # Leases silent past the hung bound: their workers are long gone (their claims already count as orphaned).
        service.sweep_leases(session, settings.claim_hung_seconds)
        # Faces still owed their event's second vector while the face queue is empty lost their message.
        second = second_embedder.requeue_missing(session) if faces_backlog == 0 else []
        # So did import items left pending while the cpu queue is empty.
        imported = (
            imports.requeue_lost(
                session, older_than_seconds=bound.older_than, max_attempts=settings.max_processing_attempts
            )
            if cpu_backlog == 0
            else imports.ImportReconcileResult(0, 0)
        )
    return {
        "requeued": len(result.requeued),
        "failed": len(result.failed),
        "thumbnails": len(result.thumbnails),
        "second_embedding": len(second),
        "imports_requeued": imported.requeued,
        "imports_rejected": imported.rejected,
        "faces_backlog": faces_backlog,
    }


@app.task(name=SWEEP_ORPHANS_TASK, **RETRY)
def sweep_orphans() -> dict[str, Any]:
    """Delete stored objects no photo points to, past the grace period (beat runs this periodically)."""
    with session_scope() as session:
        result = orphans.sweep_orphans(session, _storage(), grace_seconds=get_settings().orphan_grace_seconds)
    return {"scanned": result.scanned, "deleted": len(result.deleted)}


@app.task(name=RETENTION_TASK, **RETRY)
def enforce_retention() -> dict[str, Any]:
    """Delete the faces, then the photos, of events past their retention date (beat runs this periodically)."""
    settings = get_settings()
    result = lifecycle.enforce_retention(
        session_scope, _storage(), today=date.today(), photo_grace_days=settings.retention_photo_grace_days
    )
    return {"faces_purged": len(result.faces_purged), "photos_purged": len(result.photos_purged)}
