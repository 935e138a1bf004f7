"""initial schema: photographers, api keys, events, photos, faces

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import pgvector.sqlalchemy
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # pgvector provides the halfvec type of faces.embedding.
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")

    op.create_table(
        "photographers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("email = lower(email)", name=op.f("ck_photographers_email_lowercase")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_photographers")),
        sa.UniqueConstraint("email", name=op.f("uq_photographers_email")),
    )

    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("photographer_id", sa.Uuid(), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["photographer_id"],
            ["photographers.id"],
            name=op.f("fk_api_keys_photographer_id_photographers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_keys_prefix")),
    )
    op.create_index(op.f("ix_api_keys_photographer_id"), "api_keys", ["photographer_id"])

    op.create_table(
        "events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("photographer_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("slug", sa.String(length=80), nullable=False),
        sa.Column("access_code", sa.String(length=16), nullable=False),
        sa.Column("retention_until", sa.Date(), nullable=False),
        sa.Column("embedder", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["photographer_id"],
            ["photographers.id"],
            name=op.f("fk_events_photographer_id_photographers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("access_code", name=op.f("uq_events_access_code")),
        sa.UniqueConstraint("slug", name=op.f("uq_events_slug")),
    )
    op.create_index(op.f("ix_events_photographer_id"), "events", ["photographer_id"])

    op.create_table(
        "photos",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("storage_key", sa.String(length=512), nullable=False),
        sa.Column("original_filename", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("content_type", sa.String(length=127), nullable=False),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("captured_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "uploaded",
                "processing",
                "done",
                "failed",
                name="status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            server_default="uploaded",
            nullable=False,
        ),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("face_count", sa.Integer(), nullable=True),
        sa.Column("thumb_small_key", sa.String(length=512), nullable=True),
        sa.Column("thumb_medium_key", sa.String(length=512), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("processing_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_photos_attempts_nonnegative")),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_photos_event_id_events"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_photos")),
        sa.UniqueConstraint("event_id", "sha256", name=op.f("uq_photos_event_id_sha256")),
        sa.UniqueConstraint("id", "event_id", name=op.f("uq_photos_id_event_id")),
        sa.UniqueConstraint("storage_key", name=op.f("uq_photos_storage_key")),
    )
    op.create_index("ix_photos_event_id_status", "photos", ["event_id", "status"])

    op.create_table(
        "faces",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("photo_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("box", postgresql.ARRAY(sa.REAL()), nullable=False),
        sa.Column("landmarks", postgresql.ARRAY(sa.REAL()), nullable=False),
        sa.Column("probability", sa.REAL(), nullable=False),
        sa.Column("size_px", sa.Integer(), nullable=False),
        sa.Column("sharpness", sa.REAL(), nullable=True),
        sa.Column("model", sa.String(length=64), nullable=False),
        # Undimensioned: 128-d (dlib-resnet-v1) and 512-d (facenet-vggface2) vectors share it.
        sa.Column("embedding", pgvector.sqlalchemy.HALFVEC(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("abs(l2_norm(embedding) - 1) < 0.01", name=op.f("ck_faces_embedding_unit_length")),
        sa.CheckConstraint("cardinality(box) = 4", name=op.f("ck_faces_box_has_4")),
        sa.CheckConstraint("cardinality(landmarks) = 10", name=op.f("ck_faces_landmarks_has_10")),
        sa.ForeignKeyConstraint(
            ["photo_id", "event_id"],
            ["photos.id", "photos.event_id"],
            name=op.f("fk_faces_photo_id_photos"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_faces")),
    )
    # No ANN (HNSW/IVFFlat) index yet: search starts as an exact scan of one event's faces; the
    # index strategy is chosen by measurement later (see photomatch/models/face.py).
    op.create_index("ix_faces_event_id_model", "faces", ["event_id", "model"])
    op.create_index("ix_faces_photo_id", "faces", ["photo_id"])


def downgrade() -> None:
    op.drop_table("faces")
    op.drop_table("photos")
    op.drop_table("events")
    op.drop_table("api_keys")
    op.drop_table("photographers")
    # The extension is left in place: other schemas in the database may use it.
