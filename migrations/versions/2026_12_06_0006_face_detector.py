"""face detector: every face records the detector configuration that found it

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every face stored before this revision was found by MTCNN, the only detector there was.
    op.add_column("faces", sa.Column("detector", sa.String(length=64), nullable=False, server_default="mtcnn"))


def downgrade() -> None:
    op.drop_column("faces", "detector")
