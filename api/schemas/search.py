"""HTTP shapes of the attendee routes; results are built from photomatch.search's dataclasses."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class QueryFace(BaseModel):
    """The selfie face that was searched for."""

    box: list[float] = Field(description="x1, y1, x2, y2 in selfie pixels")
    quality: dict[str, float] = Field(description="probability, size (px), sharpness")


class Thresholds(BaseModel):
    """Minimum probabilities of the two tiers."""

    match: float
    possible: float


class Result(BaseModel):
    """A photo of the person, with links valid for a few minutes."""

    model_config = ConfigDict(from_attributes=True)

    photo_id: uuid.UUID
    face_id: int = Field(description='the face that matched: what "this is me" (me) and "not me" (not_me) name')
    filename: str
    confidence: float = Field(
        ge=0, le=1, description="calibrated probability that the photo shows the person (results are ordered by it)"
    )
    distance: float = Field(description="distance of the photo's closest face to the selfie")
    thumbnail_url: str
    preview_url: str = Field(description="a larger preview (about 1024 px)")
    download_url: str = Field(description="the original, as an attachment")
    face_box: list[float] = Field(description="x1, y1, x2, y2 of the matched face in original pixels")
    width: int | None
    height: int | None
    confirmed: bool = Field(default=False, description='the attendee said "this is me" about this photo')


class SearchResponse(BaseModel):
    """Photos of the selfie's person: confident matches, then possible ones; best first in each."""

    event: str
    model: str
    # The second model fused with `model` for this search (None: the first model alone).
    fused_with: str | None = None
    query: QueryFace
    thresholds: Thresholds
    matches: list[Result]
    possible_matches: list[Result]
    feedback_token: str = Field(
        description="send it back with `me` and `not_me` face ids (and the same selfie) to search again with "
        "those answers; valid for an hour"
    )
    questions: list[Result] = Field(
        default_factory=list,
        description='"Is this you too?": the likeliest photos below the possible tier, to ask the attendee about '
        "(not results until they answer `me`); their face ids may be answered like the results'",
    )


class AttendeeLink(BaseModel):
    """The link attendees open (it carries a signed token instead of the code) and its QR code."""

    url: str = Field(examples=["/e/anna-ben-wedding?t=eyJlIjoi..."])
    absolute_url: str
    code: str
    qr_svg_url: str
    expires_at: datetime


class OptOutResponse(BaseModel):
    """What an opt-out removed."""

    faces: int = Field(description="faces removed from the event's searches")
    photos: int = Field(description="photos they were in (the photos themselves stay)")
