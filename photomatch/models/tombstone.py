"""A face an attendee removed from an event (opt-out): reprocessing the photo must not bring it back.

The tombstone keeps the embedding of the removed face itself, already part of the event's data,
never the selfie's: the opt-out stores nothing new about the person. A reprocessed photo yields the
same embedding for the same face (to float16 and device noise), so a face of that photo within
TOMBSTONE_RADIUS of a tombstone is dropped before it is saved.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pgvector.sqlalchemy import HALFVEC
from sqlalchemy import BigInteger, ForeignKey, Identity, String, func
from sqlalchemy.orm import Mapped, mapped_column

from photomatch.db import Base

# Same face, same photo, reprocessed: distances measured below 0.02 (CPU vs CPU, float16 storage).
# Different faces of one photo are rarely closer than 0.3 even for twins; 0.15 separates the two.
TOMBSTONE_RADIUS = 0.15


class FaceTombstone(Base):
    """One removed face of one photo."""

    __tablename__ = "face_tombstones"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    photo_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"), index=True)
    model: Mapped[str] = mapped_column(String(64))
    embedding: Mapped[list[float]] = mapped_column(HALFVEC())
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
