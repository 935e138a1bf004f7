"""A photo of an event and its processing status: the truth the pipeline reports from."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from photomatch.db import Base, checked_enum


class PhotoStatus(enum.StrEnum):
    """Where a photo is in the pipeline: uploaded -> processing -> done | failed."""

    UPLOADED = "uploaded"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"


class Photo(Base):
    """An original image in storage plus what processing learned about it."""

    __tablename__ = "photos"
    __table_args__ = (
        # A photographer re-uploading an album must not double its faces: within one event the
        # same bytes are skipped. The same photo in two events is two rows.
        UniqueConstraint("event_id", "sha256"),
        # Lets faces carry event_id with a foreign key that guarantees it matches the photo's.
        UniqueConstraint("id", "event_id"),
        # Progress counts and "requeue the failed ones" are per-event, per-status queries.
        Index("ix_photos_event_id_status", "event_id", "status"),
        CheckConstraint("attempts >= 0", name="attempts_nonnegative"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    storage_key: Mapped[str] = mapped_column(String(512), unique=True)
    original_filename: Mapped[str] = mapped_column(Text)
    # Hex SHA-256 of the original bytes.
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(127))
    # Known after decoding; null until then.
    width: Mapped[int | None]
    height: Mapped[int | None]
    # EXIF DateTimeOriginal when present; photos are listed by it, falling back to created_at.
    captured_at: Mapped[datetime | None]

    status: Mapped[PhotoStatus] = mapped_column(
        checked_enum(PhotoStatus, "status"),
        default=PhotoStatus.UPLOADED,
        server_default=PhotoStatus.UPLOADED.value,
    )
    failure_reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    # Null until processed; 0 is a processed photo without faces.
    face_count: Mapped[int | None]
    thumb_small_key: Mapped[str | None] = mapped_column(String(512))
    thumb_medium_key: Mapped[str | None] = mapped_column(String(512))

    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())
    processing_started_at: Mapped[datetime | None]
    # The worker lease (photomatch.models.worker_lease) of the worker that claimed it last.
    claimed_by: Mapped[uuid.UUID | None]
    processed_at: Mapped[datetime | None]
