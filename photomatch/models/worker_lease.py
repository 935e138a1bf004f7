"""A running worker's lease: who holds the photos it claimed, and whether it is still alive.

Every worker process registers one as it starts and renews it (heartbeat_at) every few seconds; a
photo it claims names the lease (photos.claimed_by). The reconciler then tells a batch whose worker
died (its lease stopped beating, or a restarted worker with the same name replaced it) from one a
live worker is still working on: the first is queued again at once, the second is left alone.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import String, func
from sqlalchemy.orm import Mapped, mapped_column

from photomatch.db import Base


class WorkerLease(Base):
    """One worker process, from its start to its stop."""

    __tablename__ = "worker_leases"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # Celery's node name (`faces@host`): one live worker per name, so a new lease under the same
    # name means the previous holder is gone.
    node: Mapped[str] = mapped_column(String(255), index=True)
    started_at: Mapped[datetime] = mapped_column(server_default=func.now())
    heartbeat_at: Mapped[datetime] = mapped_column(server_default=func.now())
