"""SQL for worker leases (photomatch.models.worker_lease). Functions only flush."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import ColumnElement, delete, exists, func, update
from sqlalchemy.orm import Session

from photomatch.models import Photo, WorkerLease


def register(session: Session, node: str) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """A new lease for worker `node`, and the leases it replaces: earlier ones under the same name,
    whose workers are gone (one live worker per name), deleted here."""
    replaced = list(session.scalars(delete(WorkerLease).where(WorkerLease.node == node).returning(WorkerLease.id)))
    lease = WorkerLease(id=uuid.uuid4(), node=node)
    session.add(lease)
    session.flush()
    return lease.id, replaced


def renew(session: Session, lease_id: uuid.UUID, node: str) -> None:
    """Beat: the worker holding `lease_id` is alive (re-created if someone took it for dead)."""
    renewed = session.execute(
        update(WorkerLease).where(WorkerLease.id == lease_id).values(heartbeat_at=func.now())
    ).rowcount  # type: ignore[attr-defined]
    if not renewed:
        session.add(WorkerLease(id=lease_id, node=node))
        session.flush()


def release(session: Session, lease_id: uuid.UUID) -> None:
    """The worker stopped: whatever it still holds is free to be claimed again."""
    session.execute(delete(WorkerLease).where(WorkerLease.id == lease_id))


def holder_alive(lease_seconds: float) -> ColumnElement[bool]:
    """Whether the lease a photo names (photos.claimed_by) beat within `lease_seconds`."""
    recent = func.now() - timedelta(seconds=lease_seconds)
    return exists().where(WorkerLease.id == Photo.claimed_by, WorkerLease.heartbeat_at > recent)


def sweep(session: Session, older_than_seconds: float) -> int:
    """Delete leases silent for `older_than_seconds` (workers that died without a word); how many."""
    gone = func.now() - timedelta(seconds=older_than_seconds)
    return int(session.execute(delete(WorkerLease).where(WorkerLease.heartbeat_at <= gone)).rowcount)  # type: ignore[attr-defined]
