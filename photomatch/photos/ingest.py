"""Photo ingest: streamed uploads, presigned upload + commit, and the copy of one imported object
(the imports themselves: photomatch.photos.imports).

Each file is streamed to storage while it is hashed, then gets a photo row (status uploaded); a file
the event already has is a duplicate, a file that is not an image is rejected. Everything here only
flushes: the request or task around it commits, and the processing it defers is sent after that.
"""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import BinaryIO, cast

from sqlalchemy.orm import Session

from photomatch.config import Settings, get_settings
from photomatch.errors import UserError
from photomatch.logs import get_logger
from photomatch.models import Event
from photomatch.photos.files import (
    SNIFF_BYTES,
    HashingReader,
    ImageType,
    TooLarge,
    clean_filename,
    sniff,
    type_from_name,
)
from photomatch.photos.queue import enqueue_processing
from photomatch.photos.repository import photos as photo_rows
from photomatch.storage import ObjectNotFound, Storage

log = get_logger(__name__)

_CHUNK = 1024 * 1024
# Object keys photomatch writes itself; importing from under them would copy other events' photos.
RESERVED_PREFIX = "events/"
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


class PhotoError(UserError, ValueError):
    """A request about photos that the caller can fix; `reason` is a stable code."""

    status = 400

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message, reason=reason)


class Outcome(enum.StrEnum):
    """What happened to one file offered to an event."""

    CREATED = "created"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


@dataclass
class IngestResult:
    """One file's outcome; `photo_id` is the new photo, or the existing one for a duplicate."""

    filename: str
    outcome: Outcome
    photo_id: uuid.UUID | None = None
    reason: str | None = None
    message: str | None = None


def original_key(event_id: uuid.UUID, photo_id: uuid.UUID, kind: ImageType) -> str:
    """Where a photo's original is stored."""
    return f"events/{event_id}/originals/{photo_id}{kind.extension}"


def _rejected(filename: str, reason: str, message: str) -> IngestResult:
    log.info("photos.ingest.rejected", filename=filename, reason=reason)
    return IngestResult(filename, Outcome.REJECTED, reason=reason, message=message)


def _duplicate(filename: str, photo_id: uuid.UUID, message: str) -> IngestResult:
    return IngestResult(filename, Outcome.DUPLICATE, photo_id=photo_id, reason="duplicate", message=message)


def _read_head(stream: BinaryIO) -> bytes:
    head = b""
    while len(head) < SNIFF_BYTES:
        more = stream.read(SNIFF_BYTES - len(head))
        if not more:
            break
        head += more
    return head


def _check_head(filename: str, head: bytes) -> ImageType | IngestResult:
    if not head:
        return _rejected(filename, "empty_file", "the file is empty")
    kind = sniff(head)
    if kind is None:
        return _rejected(filename, "unsupported_format", "not a JPEG, PNG or WebP image")
    return kind


def _register(
    session: Session,
    storage: Storage,
    event: Event,
    *,
    photo_id: uuid.UUID,
    key: str,
    filename: str,
    reader: HashingReader,
    kind: ImageType,
) -> IngestResult:
    """Insert the row for an object now in storage; a duplicate's object is removed again."""
    values = {
        "id": photo_id,
        "event_id": event.id,
        "storage_key": key,
        "original_filename": filename,
        "sha256": reader.sha256,
        "size_bytes": reader.size,
        "content_type": kind.content_type,
    }
    if photo_rows.insert_photo(session, values):
        log.info("photos.ingest.created", event_id=event.id, photo_id=photo_id, bytes=reader.size)
        return IngestResult(filename, Outcome.CREATED, photo_id=photo_id)
    existing = photo_rows.get_by_sha256(session, event.id, reader.sha256)
    if existing is None:  # only a reused id or key conflicts otherwise; both are generated fresh
        raise RuntimeError(f"photo {photo_id} conflicts with an existing row but no duplicate was found")
    if existing.storage_key != key:
        storage.delete(key)
    log.info("photos.ingest.duplicate", event_id=event.id, existing_id=existing.id)
    return _duplicate(filename, existing.id, "already uploaded")


def ingest_stream(
    session: Session,
    storage: Storage,
    event: Event,
    stream: BinaryIO,
    *,
    filename: str | None,
    settings: Settings | None = None,
) -> IngestResult:
    """Store one uploaded file, hashing it in the same streaming pass, and add its photo row."""
    return _store(session, storage, event, stream, clean_filename(filename), settings or get_settings())


def _store(
    session: Session, storage: Storage, event: Event, stream: BinaryIO, name: str, settings: Settings
) -> IngestResult:
    """Check the head, stream the file into the event's originals while hashing it, add its photo row."""
    head = _read_head(stream)
    kind = _check_head(name, head)
    if isinstance(kind, IngestResult):
        return kind
    photo_id = uuid.uuid4()
    key = original_key(event.id, photo_id, kind)
    reader = HashingReader(stream, head, max_bytes=settings.max_image_bytes)
    try:
        storage.put(key, cast(BinaryIO, reader), kind.content_type)
    except TooLarge as e:
        storage.delete(key)
        return _rejected(name, "image_too_large", str(e))
    return _register(session, storage, event, photo_id=photo_id, key=key, filename=name, reader=reader, kind=kind)


# --- presigned direct-to-S3 uploads ----------------------------------------------------------


@dataclass
class PresignedPhotoUpload:
    """Where a client PUTs one file; it then commits `key`."""

    filename: str
    key: str
    url: str
    method: str
    headers: dict[str, str] = field(default_factory=dict)


def presign_upload(
    storage: Storage, event: Event, filename: str, content_type: str | None, *, expires: int
) -> PresignedPhotoUpload:
    """A presigned PUT for one file, at the key its photo will keep; raises NotSupported on local storage."""
    name = clean_filename(filename)
    kind = type_from_name(name, content_type)
    if kind is None:
        raise PhotoError("unsupported_format", f"{name}: only JPEG, PNG and WebP images are accepted")
    key = original_key(event.id, uuid.uuid4(), kind)
    upload = storage.presigned_upload(key, kind.content_type, expires)
    return PresignedPhotoUpload(name, key, upload.url, upload.method, dict(upload.headers))


def commit_upload(
    session: Session,
    storage: Storage,
    event: Event,
    key: str,
    *,
    filename: str | None = None,
    settings: Settings | None = None,
) -> IngestResult:
    """Register an object a client uploaded with a presigned URL (hashed by streaming it back)."""
    s = settings or get_settings()
    match = re.fullmatch(rf"events/{event.id}/originals/(?P<id>{_UUID})\.(jpg|png|webp)", key)
    name = clean_filename(filename or key.rsplit("/", 1)[-1])
    if match is None:
        return _rejected(name, "invalid_key", "this key was not issued for this event's uploads")
    existing = photo_rows.get_by_storage_key(session, key)
    if existing is not None:  # a repeated commit
        return _duplicate(name, existing.id, "already committed")
    try:
        stream = storage.open(key)
    except ObjectNotFound:
        return _rejected(name, "not_uploaded", "nothing was uploaded under this key (or the upload did not finish)")
    with stream:
        head = _read_head(stream)
        kind = _check_head(name, head)
        if isinstance(kind, IngestResult):
            storage.delete(key)
            return kind
        reader = HashingReader(stream, head, max_bytes=s.max_image_bytes)
        try:
            while reader.read(_CHUNK):
                pass
        except TooLarge as e:
            storage.delete(key)
            return _rejected(name, "image_too_large", str(e))
    photo_id = uuid.UUID(match["id"])
    return _register(session, storage, event, photo_id=photo_id, key=key, filename=name, reader=reader, kind=kind)


# --- import from a storage prefix ------------------------------------------------------------


def importable_keys(storage: Storage, prefix: str) -> list[str]:
    """Keys under `prefix` named like images (JPEG, PNG, WebP); content is checked per object later."""
    prefix = prefix.lstrip("/")
    if not prefix or prefix.startswith(RESERVED_PREFIX) or ".." in prefix.split("/"):
        raise PhotoError(
            "invalid_prefix", f"import from a non-empty prefix outside {RESERVED_PREFIX!r}, e.g. 'imports/wedding/'"
        )
    return [key for key in storage.list_keys(prefix) if type_from_name(key) is not None]


def import_object(
    session: Session, storage: Storage, event: Event, source_key: str, *, settings: Settings | None = None
) -> IngestResult:
    """Copy one object into the event's originals, hashing during the copy, and add its photo row.

    Imports copy rather than reference: the event then owns exactly the objects its retention purge
    deletes, the source may be changed or removed afterwards, and one source can feed two events.
    Reading the object is needed for its sha256 anyway, so the copy costs no extra read.
    """
    s = settings or get_settings()
    name = clean_filename(source_key)
    try:
        stream = storage.open(source_key)
    except ObjectNotFound:
        return _rejected(name, "not_found", f"no object {source_key!r}")
    with stream:
        return _store(session, storage, event, stream, name, s)


# --- what the doors call: ingest, then queue what was created once the transaction commits ---


def created_ids(results: Sequence[IngestResult]) -> list[uuid.UUID]:
    """The photos that `results` created (not duplicates nor rejected files)."""
    return [r.photo_id for r in results if r.outcome == Outcome.CREATED and r.photo_id is not None]


def _queued(session: Session, results: list[IngestResult], settings: Settings | None) -> list[IngestResult]:
    enqueue_processing(session, created_ids(results), settings=settings)
    return results


def upload_files(
    session: Session,
    storage: Storage,
    event: Event,
    files: Sequence[tuple[BinaryIO, str | None]],
    *,
    settings: Settings | None = None,
) -> list[IngestResult]:
    """Ingest uploaded (stream, filename) pairs in order and queue the new photos for processing."""
    results = [ingest_stream(session, storage, event, f, filename=name, settings=settings) for f, name in files]
    return _queued(session, results, settings)


def commit_uploads(
    session: Session,
    storage: Storage,
    event: Event,
    items: Sequence[tuple[str, str | None]],
    *,
    settings: Settings | None = None,
) -> list[IngestResult]:
    """Register (key, filename) pairs uploaded with presigned URLs and queue the new photos."""
    results = [commit_upload(session, storage, event, key, filename=name, settings=settings) for key, name in items]
    return _queued(session, results, settings)
