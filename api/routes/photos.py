"""Photo routes for photographers: upload, presigned upload + commit, import, status, failures, retry.

The processing these routes queue is sent once their transaction commits. A broker that is down
does not fail an upload: the photos are safely stored as uploaded and the reconciler queues them
later; responses say so with "queued": false.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, File, Query, UploadFile, status

from api.deps import DbSession, OwnedEvent, SettingsDep, StorageDep, UnitOfWork, Work
from api.problems import NoDirectUploads, QueueUnavailable, TooManyFiles
from api.schemas.photos import (
    MAX_FILES_PER_REQUEST,
    CommitRequest,
    FailedItem,
    FailedPage,
    FileResult,
    ImportRequest,
    ImportResult,
    PresignedUpload,
    PresignRequest,
    PresignResult,
    RejectedImportItem,
    RejectedImportPage,
    RetryRequest,
    RetryResult,
    StatusResult,
    UploadResult,
)
from photomatch.photos import imports, ingest, service
from photomatch.photos.ingest import IngestResult, Outcome, PhotoError

router = APIRouter(prefix="/events/{slug}", tags=["photos"])

# One page of a listing (failed photos, rejected imports).
PageLimit = Annotated[int, Query(ge=1, le=1000)]
PageOffset = Annotated[int, Query(ge=0, le=100_000_000)]


def _upload_result(work: UnitOfWork, results: list[IngestResult]) -> UploadResult:
    queued = work.commit()
    return UploadResult(
        created=len(ingest.created_ids(results)),
        duplicates=sum(r.outcome == Outcome.DUPLICATE for r in results),
        rejected=sum(r.outcome == Outcome.REJECTED for r in results),
        queued=queued,
        results=[FileResult.model_validate(r) for r in results],
    )


@router.post("/photos")
def upload_photos(
    event: OwnedEvent,
    work: Work,
    storage: StorageDep,
    settings: SettingsDep,
    files: Annotated[list[UploadFile], File(description="one or more JPEG, PNG or WebP files (field `files`)")],
) -> UploadResult:
    """Upload photos (multipart, many per request); each is streamed to storage and queued for processing.

    A file whose bytes the event already has is skipped as a duplicate; a file that is not a JPEG,
    PNG or WebP is rejected. Either way the other files of the request are unaffected.
    """
    if len(files) > MAX_FILES_PER_REQUEST:
        raise TooManyFiles(f"at most {MAX_FILES_PER_REQUEST} files per request")
    # Starlette has spooled each part to a temporary file; it is read from there in chunks.
    results = ingest.upload_files(
        work.session, storage, event, [(f.file, f.filename) for f in files], settings=settings
    )
    return _upload_result(work, results)


@router.post("/uploads")
def presign_uploads(
    event: OwnedEvent, storage: StorageDep, settings: SettingsDep, body: PresignRequest
) -> PresignResult:
    """Presigned URLs to upload files straight to S3; commit them with POST /events/{slug}/uploads/commit."""
    if not storage.supports_presigned_upload:
        raise NoDirectUploads(
            "this server keeps photos in local storage, which has no direct uploads; "
            f"upload through POST /events/{event.slug}/photos instead"
        )
    uploads: list[PresignedUpload] = []
    rejected: list[FileResult] = []
    for f in body.files:
        try:
            up = ingest.presign_upload(storage, event, f.filename, f.content_type, expires=settings.s3_presign_seconds)
        except PhotoError as e:
            rejected.append(FileResult(filename=f.filename, status="rejected", reason=e.reason, message=str(e)))
            continue
        uploads.append(PresignedUpload.model_validate(up))
    return PresignResult(expires_in=settings.s3_presign_seconds, uploads=uploads, rejected=rejected)


@router.post("/uploads/commit")
def commit_uploads(
    event: OwnedEvent, work: Work, storage: StorageDep, settings: SettingsDep, body: CommitRequest
) -> UploadResult:
    """Register files uploaded with presigned URLs: each is hashed, de-duplicated and queued."""
    items = [(item.key, item.filename) for item in body.uploads]
    return _upload_result(work, ingest.commit_uploads(work.session, storage, event, items, settings=settings))


@router.post("/import", status_code=status.HTTP_202_ACCEPTED)
def import_prefix(
    event: OwnedEvent, work: Work, storage: StorageDep, settings: SettingsDep, body: ImportRequest
) -> ImportResult:
    """Import every JPEG, PNG and WebP object under a prefix of the storage bucket (copied by workers).

    Status counts the objects still `importing`; those that could not be imported are listed at
    `/imports/rejected`. Importing the prefix again retries them.
    """
    found, tasks = imports.start_import(work.session, storage, event, body.prefix, settings=settings)
    if not work.commit():
        raise QueueUnavailable("the task queue is unavailable; try again")
    return ImportResult(prefix=body.prefix, found=found, tasks=tasks)


@router.get("/status")
def event_status(event: OwnedEvent, session: DbSession, settings: SettingsDep) -> StatusResult:
    """Counts per status, faces found, recent photos/s and the ETA for the photos still pending."""
    st = service.event_status(session, event, window_seconds=settings.status_window_seconds)
    return StatusResult.model_validate({"event": event.slug, **vars(st)})


@router.get("/photos/failed")
def failed_photos(
    event: OwnedEvent,
    session: DbSession,
    limit: PageLimit = 100,
    offset: PageOffset = 0,
) -> FailedPage:
    """Failed photos with their reasons, most recent first."""
    total, photos = service.list_failed(session, event, limit=limit, offset=offset)
    return FailedPage(total=total, photos=[FailedItem.model_validate(p) for p in photos])


@router.get("/imports/rejected")
def rejected_imports(
    event: OwnedEvent,
    session: DbSession,
    limit: PageLimit = 100,
    offset: PageOffset = 0,
) -> RejectedImportPage:
    """Objects of imported prefixes that were not imported, with the reason, most recent first."""
    total, items = imports.list_rejected(session, event, limit=limit, offset=offset)
    return RejectedImportPage(total=total, objects=[RejectedImportItem.model_validate(i) for i in items])


@router.post("/photos/retry")
def retry_photos(
    event: OwnedEvent,
    work: Work,
    settings: SettingsDep,
    body: Annotated[RetryRequest | None, Body()] = None,
) -> RetryResult:
    """Put failed photos (all, or the listed ones) back into the queue with a fresh attempt budget."""
    ids = service.retry_failed(work.session, event, body.photo_ids if body else None, settings=settings)
    return RetryResult(retried=len(ids), photo_ids=ids, queued=work.commit())
