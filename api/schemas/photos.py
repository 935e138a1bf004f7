"""HTTP shapes of the photo routes; built from photomatch.photos' dataclasses with from_attributes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

# Enough for a big album in one request while keeping a request's bookkeeping bounded.
MAX_FILES_PER_REQUEST = 1000


class FileResult(BaseModel):
    """What happened to one file."""

    model_config = ConfigDict(from_attributes=True)

    filename: str
    # IngestResult calls it `outcome`; the API has always said `status`.
    status: Literal["created", "duplicate", "rejected"] = Field(validation_alias=AliasChoices("status", "outcome"))
    photo_id: uuid.UUID | None = Field(default=None, description="the new photo, or the existing one for a duplicate")
    reason: str | None = Field(default=None, description="stable code, e.g. unsupported_format, duplicate")
    message: str | None = None


class UploadResult(BaseModel):
    """Per-file results, in request order, with totals."""

    created: int
    duplicates: int
    rejected: int
    queued: bool = Field(description="false if the task queue was unreachable; the reconciler queues them later")
    results: list[FileResult]


class PresignFile(BaseModel):
    """A file the client is about to upload straight to S3."""

    filename: str = Field(min_length=1, max_length=255, examples=["IMG_0001.JPG"])
    content_type: str | None = Field(default=None, examples=["image/jpeg"])


class PresignRequest(BaseModel):
    """Files to upload."""

    files: list[PresignFile] = Field(min_length=1, max_length=MAX_FILES_PER_REQUEST)


class PresignedUpload(BaseModel):
    """Send the file with `method` to `url` with `headers`, then commit `key`."""

    model_config = ConfigDict(from_attributes=True)

    filename: str
    key: str
    url: str
    method: str
    headers: dict[str, str]


class PresignResult(BaseModel):
    """Upload URLs (valid `expires_in` seconds) and the files refused up front."""

    expires_in: int
    uploads: list[PresignedUpload]
    rejected: list[FileResult]


class CommitItem(BaseModel):
    """An uploaded key, with the name to remember the file by."""

    key: str = Field(min_length=1, max_length=512)
    filename: str | None = Field(default=None, max_length=255)


class CommitRequest(BaseModel):
    """Keys returned by POST /uploads whose upload has finished."""

    uploads: list[CommitItem] = Field(min_length=1, max_length=MAX_FILES_PER_REQUEST)


class ImportRequest(BaseModel):
    """A storage prefix whose images should be copied into the event."""

    prefix: str = Field(min_length=1, max_length=512, examples=["imports/anna-ben-wedding/"])


class ImportResult(BaseModel):
    """How many images were found and queued for import."""

    prefix: str
    found: int
    tasks: int


class StatusResult(BaseModel):
    """Pipeline progress of an event."""

    model_config = ConfigDict(from_attributes=True)

    event: str
    total: int
    counts: dict[str, int] = Field(description="photos per status: uploaded, processing, done, failed")
    faces: int
    remaining: int
    photos_per_second: float = Field(description="over photos finished in the last window_seconds")
    eta_seconds: float | None = Field(description="null while nothing finished recently")
    window_seconds: int
    second_embedding_pending: int = Field(
        0, description="done photos still being given the event's second embedder's vectors (event fuse)"
    )
    importing: int = Field(0, description="objects of imported prefixes still to be copied in (part of remaining)")
    import_rejected: int = Field(0, description="objects of imported prefixes that were not imported")


class FailedItem(BaseModel):
    """A failed photo and why."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    filename: str
    reason: str
    attempts: int
    failed_at: datetime | None


class FailedPage(BaseModel):
    """One page of failed photos."""

    total: int
    photos: list[FailedItem]


class RejectedImportItem(BaseModel):
    """An object of an imported prefix that was not imported, and why."""

    model_config = ConfigDict(from_attributes=True)

    key: str
    reason: str
    rejected_at: datetime


class RejectedImportPage(BaseModel):
    """One page of rejected import objects."""

    total: int
    objects: list[RejectedImportItem]


class RetryRequest(BaseModel):
    """Which failed photos to retry; all of them when omitted."""

    photo_ids: list[uuid.UUID] | None = Field(default=None, max_length=100_000)


class RetryResult(BaseModel):
    """The photos put back into the queue."""

    retried: int
    photo_ids: list[uuid.UUID]
    queued: bool
