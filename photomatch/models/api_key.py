"""An API key of a photographer; only its SHA-256 is stored."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, func
from sqlalchemy.orm import Mapped, mapped_column

from photomatch.db import Base


class ApiKey(Base):
    """A bearer key: the raw key is shown once at creation and never stored.

    `prefix` is a short, non-secret head of the key used to find the row; the request is then
    authenticated by comparing sha256(raw key) with `key_hash` in constant time.
    """

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    photographer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("photographers.id", ondelete="CASCADE"), index=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    # Hex SHA-256 of the whole raw key. A fast hash is enough: keys are long random strings,
    # not passwords, so there is nothing to brute-force.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
