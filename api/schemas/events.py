"""HTTP shapes of the event routes."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, Field

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")]
# Enough for a big album in one round trip while keeping the IN list and request body small.
MAX_KNOWN_QUERY = 10_000


class EventCreate(BaseModel):
    """A new event; the slug is derived from the name unless given."""

    name: str = Field(min_length=1, max_length=200, examples=["Anna & Ben's wedding"])
    slug: str | None = Field(default=None, max_length=60, examples=["anna-ben-wedding"])
    retention_days: int | None = Field(default=None, ge=1, le=3650, description="default: the server's setting")


class EventOut(BaseModel):
    """An event as its photographer sees it, with the attendee link to share."""

    id: uuid.UUID
    name: str
    slug: str
    access_code: str
    retention_until: date
    embedder: str
    # The second embedder fused with the first in search; None for an event searched with one.
    second_embedder: str | None = None
    created_at: datetime
    attendee_url: str

    @classmethod
    def of(cls, event: object, *, attendee_url: str) -> EventOut:
        """The response for an Event row (its attributes) and its attendee link."""
        fields = {name: getattr(event, name) for name in cls.model_fields if name != "attendee_url"}
        return cls.model_validate({**fields, "attendee_url": attendee_url})


class KnownQuery(BaseModel):
    """SHA-256 digests of files a client is about to upload."""

    sha256: list[Sha256] = Field(max_length=MAX_KNOWN_QUERY)


class KnownResult(BaseModel):
    """The digests from the query that the event already has."""

    known: list[str]
