"""SQL for import items: each object of an imported storage prefix, pending until a worker copies it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from photomatch.models import ImportItem, ImportStatus
from photomatch.photos.repository.photos import TOO_MANY_ATTEMPTS

_IMPORT_CHUNK = 5000  # keys per INSERT: a festival's card dump is tens of thousands


def record_imports(session: Session, event_id: uuid.UUID, keys: Sequence[str], *, reset: bool) -> None:
    """Add the keys as pending; with `reset`, keys already recorded (done or rejected) are pending again."""
    for start in range(0, len(keys), _IMPORT_CHUNK):
        rows = [{"event_id": event_id, "source_key": k} for k in keys[start : start + _IMPORT_CHUNK]]
        stmt = pg_insert(ImportItem).values(rows)
        if reset:
            stmt = stmt.on_conflict_do_update(
                index_elements=[ImportItem.event_id, ImportItem.source_key],
                set_={"status": ImportStatus.PENDING, "reason": None, "attempts": 0, "updated_at": func.now()},
            )
        else:
            stmt = stmt.on_conflict_do_nothing()
        session.execute(stmt)


def claim_imports(session: Session, event_id: uuid.UUID, keys: Sequence[str]) -> list[str]:
    """The keys still pending, locked by this transaction (a duplicate delivery waits, then finds none)."""
    stmt = (
        update(ImportItem)
        .where(
            ImportItem.event_id == event_id, ImportItem.source_key.in_(keys), ImportItem.status == ImportStatus.PENDING
        )
        .values(updated_at=func.now())
        .returning(ImportItem.source_key)
        .execution_options(synchronize_session=False)
    )
    claimed = set(session.scalars(stmt))
    return [k for k in keys if k in claimed]


def finish_imports(session: Session, event_id: uuid.UUID, outcomes: Sequence[dict[str, Any]]) -> None:
    """Mark keys done or rejected: each outcome has `key`, `status`, `reason` and `photo_id`."""
    if not outcomes:
        return
    stmt = (
        update(ImportItem)
        .where(ImportItem.event_id == event_id, ImportItem.source_key == bindparam("key"))
        .values(status=bindparam("status"), reason=bindparam("reason"), photo_id=bindparam("photo_id"))
    )
    session.connection().execute(stmt, list(outcomes))


def import_counts(session: Session, event_id: uuid.UUID) -> dict[ImportStatus, int]:
    """Import items per status, for one event (served by ix_import_items_event_id_status)."""
    rows = session.execute(
        select(ImportItem.status, func.count()).where(ImportItem.event_id == event_id).group_by(ImportItem.status)
    )
    counts = {status: 0 for status in ImportStatus}
    for status, n in rows:
        counts[ImportStatus(status)] = int(n)
    return counts


def list_rejected_imports(
    session: Session, event_id: uuid.UUID, limit: int, offset: int
) -> tuple[int, list[ImportItem]]:
    """(number of rejected import items, one page of them, most recent first)."""
    where = and_(ImportItem.event_id == event_id, ImportItem.status == ImportStatus.REJECTED)
    total = session.scalar(select(func.count()).select_from(ImportItem).where(where)) or 0
    page = session.scalars(
        select(ImportItem)
        .where(where)
        .order_by(ImportItem.updated_at.desc(), ImportItem.id)
        .limit(limit)
        .offset(offset)
    )
    return int(total), list(page)


def _stale_pending_imports(older_than_seconds: float, limit: int, exhausted: bool, max_attempts: int) -> Any:
    return (
        select(ImportItem.id)
        .where(
            ImportItem.status == ImportStatus.PENDING,
            ImportItem.updated_at <= func.now() - timedelta(seconds=older_than_seconds),
            ImportItem.attempts >= max_attempts if exhausted else ImportItem.attempts < max_attempts,
        )
        .limit(limit)
        .with_for_update(skip_locked=True)  # rows an import task holds are being imported now
        .scalar_subquery()
    )


def reject_stale_imports(session: Session, older_than_seconds: float, max_attempts: int, limit: int) -> int:
    """Reject pending items sent `max_attempts` times already; returns how many."""
    stmt = (
        update(ImportItem)
        .where(ImportItem.id.in_(_stale_pending_imports(older_than_seconds, limit, True, max_attempts)))
        .values(
            status=ImportStatus.REJECTED,
            reason=f"{TOO_MANY_ATTEMPTS}: the copy did not finish after {max_attempts + 1} sends",
        )
        .returning(ImportItem.id)
        .execution_options(synchronize_session=False)
    )
    return len(list(session.scalars(stmt)))


def requeue_stale_imports(
    session: Session, older_than_seconds: float, max_attempts: int, limit: int
) -> list[tuple[uuid.UUID, str]]:
    """(event, key) of pending items untouched past the bound (their message was lost): counted as sent again."""
    stmt = (
        update(ImportItem)
        .where(ImportItem.id.in_(_stale_pending_imports(older_than_seconds, limit, False, max_attempts)))
        .values(attempts=ImportItem.attempts + 1, updated_at=func.now())
        .returning(ImportItem.event_id, ImportItem.source_key)
        .execution_options(synchronize_session=False)
    )
    return sorted((event_id, key) for event_id, key in session.execute(stmt))
