"""faces without a second vector: a partial index for events that gain a second embedder

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Small by construction: faces processed with both models are never in it. Built concurrently,
    # so a site upgrading with millions of faces keeps ingesting meanwhile.
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_faces_without_second",
            "faces",
            ["event_id"],
            postgresql_where=sa.text("second_model IS NULL"),
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index("ix_faces_without_second", table_name="faces", postgresql_concurrently=True, if_exists=True)
