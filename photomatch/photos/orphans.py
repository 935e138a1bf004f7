"""Objects no row points to: an upload whose request failed after the write, a presigned upload never
committed, thumbnails of a photo deleted meanwhile. A periodic task deletes them after a grace period
that covers any upload still in flight.

Only keys photomatch itself writes are considered (`events/<event>/originals/<photo>.<ext>` and
`events/<event>/thumbs/<photo>-s|m.jpg`); anything else under the bucket (import prefixes, other
applications' files) is never touched.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice

from sqlalchemy.orm import Session

from photomatch.logs import get_logger
from photomatch.photos.repository import photos as photo_rows
from photomatch.storage import Storage

log = get_logger(__name__)

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_OWNED_KEY = re.compile(rf"events/{_UUID}/(?:originals/(?P<o>{_UUID})\.\w+|thumbs/(?P<t>{_UUID})-[sm]\.jpg)")
_BATCH = 500


@dataclass(frozen=True)
class SweepResult:
    """Objects looked at, and the orphans deleted."""

    scanned: int
    deleted: list[str]


def _owned(storage: Storage, older_than: datetime) -> Iterator[tuple[str, uuid.UUID]]:
    """(key, photo id) of photomatch-written objects last modified before `older_than`."""
    for key, modified in storage.list_objects("events/"):
        match = _OWNED_KEY.fullmatch(key)
        if match is not None and modified < older_than:
            yield key, uuid.UUID(match["o"] or match["t"])


def sweep_orphans(
    session: Session, storage: Storage, *, grace_seconds: float, now: datetime | None = None
) -> SweepResult:
    """Delete objects older than the grace period that no photo row points to."""
    older_than = (now or datetime.now(UTC)) - timedelta(seconds=grace_seconds)
    candidates = _owned(storage, older_than)
    scanned, deleted = 0, []
    while batch := list(islice(candidates, _BATCH)):
        scanned += len(batch)
        referenced = photo_rows.keys_of_photos(session, sorted({pid for _, pid in batch}))
        for key, _ in batch:
            if key not in referenced:
                storage.delete(key)
                deleted.append(key)
    if deleted:
        log.warning("storage.orphans.deleted", objects=len(deleted), scanned=scanned)
    return SweepResult(scanned, deleted)
