"""One object of a storage prefix an event imports: Postgres, not Redis, remembers what is still owed.

`POST /events/{slug}/import` lists the prefix and records every image key here as pending before any
task is sent; the import task copies each pending object into the event and marks it done (with the
photo it became, or the photo it duplicates) or rejected (with why). A message Redis loses leaves its
keys pending, and the reconciler sends them again; the photographer sees what is still importing and
what was not imported, and importing the prefix again retries the rejected ones.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Identity,
    Index,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from photomatch.db import Base, checked_enum


class ImportStatus(enum.StrEnum):
    """pending -> done | rejected."""

    PENDING = "pending"
    DONE = "done"
    REJECTED = "rejected"


class ImportItem(Base):
    """A storage object an event imports, and what became of it."""

    __tablename__ = "import_items"
    __table_args__ = (
        # Importing a prefix again updates its rows instead of adding twins.
        UniqueConstraint("event_id", "source_key"),
        # Status counts per event, and the reconciler's pending rows.
        Index("ix_import_items_event_id_status", "event_id", "status"),
        CheckConstraint("attempts >= 0", name="attempts_nonnegative"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    source_key: Mapped[str] = mapped_column(String(1024))
    status: Mapped[ImportStatus] = mapped_column(
        checked_enum(ImportStatus, "import_status"),
        default=ImportStatus.PENDING,
        server_default=ImportStatus.PENDING.value,
    )
    # Why it was not imported (rejected), for the photographer.
    reason: Mapped[str | None] = mapped_column(Text)
    # The photo it became or duplicates; null once that photo is deleted.
    photo_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("photos.id", ondelete="SET NULL"))
    # Times the reconciler sent it again.
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())
