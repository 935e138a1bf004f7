"""An event: one photographer's album that attendees search with a selfie."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import ForeignKey, String, func
from sqlalchemy.orm import Mapped, mapped_column

from photomatch.db import Base


class Event(Base):
    """An event; its photos' faces are searched only within it, with its one embedder model."""

    __tablename__ = "events"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    photographer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("photographers.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    # The short code attendees type; unique so a code alone identifies the event.
    access_code: Mapped[str] = mapped_column(String(16), unique=True)
    # Face embeddings are biometric data: every event has a date after which it is purged.
    retention_until: Mapped[date]
    # Embeddings of different models live in different spaces, so an event fixes its model at
    # creation (Settings.embedder); changing it means re-processing the event's photos.
    embedder: Mapped[str] = mapped_column(String(64))
    # The second embedder fused with the first in search (Settings.second_embedder), fixed the same
    # way; None for an event with one model (events created before fusion, or with it turned off).
    second_embedder: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
