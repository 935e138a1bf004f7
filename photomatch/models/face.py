"""A detected face with its embedding; the rows selfie search scans."""

from __future__ import annotations

import uuid
from datetime import datetime

from pgvector.sqlalchemy import HALFVEC
from sqlalchemy import (
    REAL,
    BigInteger,
    CheckConstraint,
    ForeignKeyConstraint,
    Identity,
    Index,
    String,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from photomatch.db import Base


class Face(Base):
    """One face in one photo: geometry in original-image pixels, quality, and a unit embedding."""

    __tablename__ = "faces"
    __table_args__ = (
        # event_id is copied from the photo so a search touches only faces; the composite key
        # guarantees the copy matches its photo and cascades the photo's deletion.
        ForeignKeyConstraint(
            ["photo_id", "event_id"],
            ["photos.id", "photos.event_id"],
            ondelete="CASCADE",
        ),
        # Search is "faces of this event made by this model": an exact scan over this btree.
        # Measured with `uv run python bench/search_strategy.py` (README "Search strategy"): an
        # HNSW index, even with pgvector 0.8 iterative scans, returned a third to two thirds of
        # an event's true top 100 and was slower, and with both indexes present the planner chose
        # HNSW for a big event; so there is deliberately no ANN index.
        Index("ix_faces_event_id_model", "event_id", "model"),
        Index("ix_faces_photo_id", "photo_id"),
        # Faces still owed their event's second vector (an event that gained a second embedder):
        # what `photomatch event fuse` and the reconciler look for. Faces made with both models, all
        # of them since migration 0003, are never in it.
        Index("ix_faces_without_second", "event_id", postgresql_where=text("second_model IS NULL")),
        CheckConstraint("cardinality(box) = 4", name="box_has_4"),
        CheckConstraint("cardinality(landmarks) = 10", name="landmarks_has_10"),
        # Stored vectors are unit length, so cosine, inner product and L2 orderings agree.
        # The tolerance covers float16 rounding.
        CheckConstraint("abs(l2_norm(embedding) - 1) < 0.01", name="embedding_unit_length"),
        CheckConstraint(
            "(second_model IS NULL) = (second_embedding IS NULL)"
            " AND (second_embedding IS NULL OR abs(l2_norm(second_embedding) - 1) < 0.01)",
            name="second_embedding_with_model",
        ),
    )

    # A bigint, not a UUID: faces are the most numerous rows and are never addressed from outside
    # without their photo.
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    photo_id: Mapped[uuid.UUID]
    event_id: Mapped[uuid.UUID]
    # x1, y1, x2, y2 in pixels of the original image.
    box: Mapped[list[float]] = mapped_column(ARRAY(REAL))
    # Five (x, y) points: eyes, nose, mouth corners, flattened.
    landmarks: Mapped[list[float]] = mapped_column(ARRAY(REAL))
    probability: Mapped[float] = mapped_column(REAL)
    # Shorter side of the box, in original pixels: small faces match less reliably.
    size_px: Mapped[int]
    # Not every engine computes a sharpness score.
    sharpness: Mapped[float | None] = mapped_column(REAL)
    # The embedder that made `embedding`: 128-d dlib-resnet-v1 or 512-d facenet-vggface2.
    model: Mapped[str] = mapped_column(String(64))
    # The detector configuration that found the face (photomatch.faces.detection.DETECTOR_CONFIGS).
    detector: Mapped[str] = mapped_column(String(64), server_default="mtcnn")
    # Undimensioned because the dimension depends on `model`. Half precision halves storage and
    # scan I/O; its ~3 significant digits are far finer than match thresholds (~0.1 in distance).
    embedding: Mapped[list[float]] = mapped_column(HALFVEC())
    # The same face by the event's second embedder (Event.second_embedder), fused in search; never
    # scanned by itself, only read for the faces the first model's scan returns.
    second_model: Mapped[str | None] = mapped_column(String(64))
    second_embedding: Mapped[list[float] | None] = mapped_column(HALFVEC())
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
