"""worker leases: a claimed photo names the worker holding it, and workers renew a lease while alive

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "worker_leases",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("node", sa.String(length=255), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    )
    op.create_index("ix_worker_leases_node", "worker_leases", ["node"])
    # No foreign key: a lease is deleted when its worker stops, and a claim naming a lease that is
    # gone is exactly what the reconciler looks for. Photos claimed before this revision have none
    # and keep the time bound.
    op.add_column("photos", sa.Column("claimed_by", sa.Uuid(), nullable=True))


def downgrade() -> None:
    op.drop_column("photos", "claimed_by")
    op.drop_index("ix_worker_leases_node", table_name="worker_leases")
    op.drop_table("worker_leases")
