"""Photo routes for photographers: upload, presigned upload + commit, import, status, failures, retry.

Routes commit before they enqueue (a worker must find the rows it is sent), and a broker that is
down does not fail an upload: the photos are safely stored as uploaded and the reconciler queues
them later; responses say so with "queued": false.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Body, File, HTTPException, Query, UploadFile, status
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from api.deps import DbSession, OwnedEvent, SettingsDep, StorageDep
from photomatch.config import Settings
from photomatch.photos import queue, service
from photomatch.photos.service import IngestResult, Outcome, PhotoError

log = logging.getLogger(__name__)

router = APIRouter(prefix="/events/{slug}", tags=["photos"])

MAX_FILES_PER_REQUEST = 1000


class FileResult(BaseModel):
    """What happened to one file."""

    filename: str
    status: Literal["created", "duplicate", "rejected"]
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

    event: str
    total: int
    counts: dict[str, int] = Field(description="photos per status: uploaded, processing, done, failed")
    faces: int
    remaining: int
    photos_per_second: float = Field(description="over photos finished in the last window_seconds")
    eta_seconds: float | None = Field(description="null while nothing finished recently")
    window_seconds: int


class FailedItem(BaseModel):
    """A failed photo and why."""

    id: uuid.UUID
    filename: str
    reason: str
    attempts: int
    failed_at: datetime | None


class FailedPage(BaseModel):
    """One page of failed photos."""

    total: int
    photos: list[FailedItem]


class RetryRequest(BaseModel):
    """Which failed photos to retry; all of them when omitted."""

    photo_ids: list[uuid.UUID] | None = Field(default=None, max_length=100_000)


class RetryResult(BaseModel):
    """The photos put back into the queue."""

    retried: int
    photo_ids: list[uuid.UUID]
    queued: bool


def _file_result(r: IngestResult) -> FileResult:
    return FileResult(
        filename=r.filename, status=r.outcome.value, photo_id=r.photo_id, reason=r.reason, message=r.message
    )


def _commit_and_enqueue(session: Session, settings: Settings, ids: list[uuid.UUID]) -> bool:
    """Commit the request's writes, then queue processing of `ids`; False if the broker was unreachable."""
    session.commit()
    if not ids:
        return True
    try:
        queue.enqueue_processing(ids, settings=settings)
    except Exception:
        # The rows are committed as uploaded: the reconciler will queue them once Redis is back.
        log.exception("photos.enqueue.failed photos=%d", len(ids))
        return False
    return True


def _upload_result(session: Session, settings: Settings, results: list[IngestResult]) -> UploadResult:
    created = [r.photo_id for r in results if r.outcome == Outcome.CREATED and r.photo_id is not None]
    queued = _commit_and_enqueue(session, settings, created)
    return UploadResult(
        created=len(created),
        duplicates=sum(r.outcome == Outcome.DUPLICATE for r in results),
        rejected=sum(r.outcome == Outcome.REJECTED for r in results),
        queued=queued,
        results=[_file_result(r) for r in results],
    )


@router.post("/photos")
def upload_photos(
    event: OwnedEvent,
    session: DbSession,
    storage: StorageDep,
    settings: SettingsDep,
    files: Annotated[list[UploadFile], File(description="one or more JPEG, PNG or WebP files (field `files`)")],
) -> UploadResult:
    """Upload photos (multipart, many per request); each is streamed to storage and queued for processing.

    A file whose bytes the event already has is skipped as a duplicate; a file that is not a JPEG,
    PNG or WebP is rejected. Either way the other files of the request are unaffected.
    """
    if len(files) > MAX_FILES_PER_REQUEST:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"at most {MAX_FILES_PER_REQUEST} files per request")
    # Starlette has spooled each part to a temporary file; it is read from there in chunks.
    results = [
        service.ingest_stream(session, storage, event, f.file, filename=f.filename, settings=settings) for f in files
    ]
    return _upload_result(session, settings, results)


@router.post("/uploads")
def presign_uploads(
    event: OwnedEvent, storage: StorageDep, settings: SettingsDep, body: PresignRequest
) -> PresignResult:
    """Presigned URLs to upload files straight to S3; commit them with POST /events/{slug}/uploads/commit."""
    if not storage.supports_presigned_upload:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "this server keeps photos in local storage, which has no direct uploads; "
            f"upload through POST /events/{event.slug}/photos instead",
        )
    uploads: list[PresignedUpload] = []
    rejected: list[FileResult] = []
    for f in body.files:
        try:
            up = service.presign_upload(storage, event, f.filename, f.content_type, expires=settings.s3_presign_seconds)
        except PhotoError as e:
            rejected.append(FileResult(filename=f.filename, status="rejected", reason=e.reason, message=str(e)))
            continue
        uploads.append(
            PresignedUpload(filename=up.filename, key=up.key, url=up.url, method=up.method, headers=up.headers)
        )
    return PresignResult(expires_in=settings.s3_presign_seconds, uploads=uploads, rejected=rejected)


@router.post("/uploads/commit")
def commit_uploads(
    event: OwnedEvent, session: DbSession, storage: StorageDep, settings: SettingsDep, body: CommitRequest
) -> UploadResult:
    """Register files uploaded with presigned URLs: each is hashed, de-duplicated and queued."""
    results = [
        service.commit_upload(session, storage, event, item.key, filename=item.filename, settings=settings)
        for item in body.uploads
    ]
    return _upload_result(session, settings, results)


@router.post("/import", status_code=status.HTTP_202_ACCEPTED)
def import_prefix(event: OwnedEvent, storage: StorageDep, settings: SettingsDep, body: ImportRequest) -> ImportResult:
    """Import every JPEG, PNG and WebP object under a prefix of the storage bucket (copied by workers)."""
    try:
        keys = service.importable_keys(storage, body.prefix)
    except PhotoError as e:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(e)) from None
    if not keys:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no JPEG, PNG or WebP objects under {body.prefix!r}")
    try:
        tasks = queue.enqueue_import(event.id, keys, settings=settings)
    except Exception:
        log.exception("photos.enqueue.import_failed event=%s", event.id)
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the task queue is unavailable; try again") from None
    return ImportResult(prefix=body.prefix, found=len(keys), tasks=tasks)


@router.get("/status")
def event_status(event: OwnedEvent, session: DbSession, settings: SettingsDep) -> StatusResult:
    """Counts per status, faces found, recent photos/s and the ETA for the photos still pending."""
    st = service.event_status(session, event, window_seconds=settings.status_window_seconds)
    return StatusResult(event=event.slug, **st.__dict__)


@router.get("/photos/failed")
def failed_photos(
    event: OwnedEvent,
    session: DbSession,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> FailedPage:
    """Failed photos with their reasons, most recent first."""
    total, photos = service.list_failed(session, event, limit=limit, offset=offset)
    return FailedPage(total=total, photos=[FailedItem(**p.__dict__) for p in photos])


@router.post("/photos/retry")
def retry_photos(
    event: OwnedEvent,
    session: DbSession,
    settings: SettingsDep,
    body: Annotated[RetryRequest | None, Body()] = None,
) -> RetryResult:
    """Put failed photos (all, or the listed ones) back into the queue with a fresh attempt budget."""
    ids = service.retry_failed(session, event, body.photo_ids if body else None)
    queued = _commit_and_enqueue(session, settings, ids)
    return RetryResult(retried=len(ids), photo_ids=ids, queued=queued)
