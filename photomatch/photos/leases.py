"""A worker's lease on the photos it claims (photomatch.models.worker_lease), renewed while it lives.

`Lease.start` registers the worker under its node name and, since a new lease under that name means
the previous holder is gone, re-queues at once whatever the previous one held: a worker killed in
the middle of a batch and restarted gets its batch back within seconds, not after the reconciler's
time bound. A thread renews the lease every Settings.worker_heartbeat_seconds; `stop` releases it.
Workers that die and never come back are found by the reconciler once their lease falls silent.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager

from sqlalchemy.orm import Session

from photomatch.config import Settings
from photomatch.logs import get_logger
from photomatch.photos import service
from photomatch.photos.repository import leases as lease_rows

log = get_logger(__name__)

Scope = Callable[[], AbstractContextManager[Session]]


class Lease:
    """One worker process's lease; `id` is what its claims record (None until started)."""

    def __init__(self, node: str, settings: Settings, scope: Scope) -> None:
        self.node = node
        self.settings = settings
        self._scope = scope
        self.id: uuid.UUID | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> list[uuid.UUID]:
        """Register, take back what a previous worker of this name held, start beating; the photo ids re-queued."""
        s = self.settings
        with self._scope() as session:
            self.id, replaced = lease_rows.register(session, self.node)
            requeued = service.reconcile(
                session, older_than_seconds=service.staleness(s), max_attempts=s.max_processing_attempts,
                include_uploaded=False, include_thumbnails=False,
            ).requeued  # fmt: skip
        log.info(
            "workers.lease.started", node=self.node, lease=str(self.id), replaced=len(replaced), requeued=len(requeued)
        )
        self._thread = threading.Thread(target=self._beat, name="photomatch-lease", daemon=True)
        self._thread.start()
        return requeued

    def _beat(self) -> None:
        while not self._stop.wait(self.settings.worker_heartbeat_seconds):
            try:
                assert self.id is not None
                with self._scope() as session:
                    lease_rows.renew(session, self.id, self.node)
            except Exception as e:  # the database restarting: beat again next time
                log.warning("workers.lease.renew_failed", error=type(e).__name__)

    def stop(self) -> None:
        """Stop beating and release the lease: what this worker still holds may be claimed again."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.id is not None:
            with self._scope() as session:
                lease_rows.release(session, self.id)
            log.info("workers.lease.released", node=self.node, lease=str(self.id))
