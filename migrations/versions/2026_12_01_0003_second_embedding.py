"""second embedding: each face may carry a second model's vector, fused with the first in search

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import pgvector.sqlalchemy
import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing events keep searching with their one model (NULL) until their photos are reprocessed.
    op.add_column("events", sa.Column("second_embedder", sa.String(length=64), nullable=True))
    op.add_column("faces", sa.Column("second_model", sa.String(length=64), nullable=True))
    op.add_column("faces", sa.Column("second_embedding", pgvector.sqlalchemy.HALFVEC(), nullable=True))
    op.create_check_constraint(
        op.f("ck_faces_second_embedding_with_model"),
        "faces",
        "(second_model IS NULL) = (second_embedding IS NULL)"
        " AND (second_embedding IS NULL OR abs(l2_norm(second_embedding) - 1) < 0.01)",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_faces_second_embedding_with_model"), "faces", type_="check")
    op.drop_column("faces", "second_embedding")
    op.drop_column("faces", "second_model")
    op.drop_column("events", "second_embedder")
