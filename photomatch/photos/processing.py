"""Worker side of the pipeline: claim a batch of photos, analyse it in one engine call, save the faces.

The task runs three steps, each its own transaction where it touches the database:
`claim_photos` (commit: the photos show as processing), `analyze_photos` (no database: storage
reads, decoding and the engine), `save_outcomes` (commit: faces replaced, status done or failed).
Nothing here imports torch; the task hands in the engine.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import func
from sqlalchemy.orm import Session

from photomatch.config import get_settings
from photomatch.events import repository as event_rows
from photomatch.faces.types import Analyzer, DeviceOutOfMemory, Face
from photomatch.imaging import ImageError, LoadedImage, host_pixels, load_image
from photomatch.logs import get_logger
from photomatch.metrics import BATCH_PHOTOS, FACES_STORED, FACES_TOO_SMALL, PHOTO_FAILURES, PHOTOS_PROCESSED, timed
from photomatch.models import TOMBSTONE_RADIUS, PhotoStatus
from photomatch.photos.repository import faces as face_rows
from photomatch.photos.repository import photos as photo_rows
from photomatch.photos.repository import tombstones as tombstone_rows
from photomatch.photos.thumbnails import store_thumbnails
from photomatch.storage import ObjectNotFound, Storage

log = get_logger(__name__)


@dataclass
class ClaimedPhoto:
    """A photo this task now processes."""

    id: uuid.UUID
    event_id: uuid.UUID
    storage_key: str
    # The event's models: (embedder, second embedder or ""); one engine serves each pair.
    embedder: tuple[str, str]


@dataclass
class PhotoOutcome:
    """What processing learnt about one photo: its faces, or why it failed."""

    photo_id: uuid.UUID
    event_id: uuid.UUID
    faces: list[Face] = field(default_factory=list)  # the embedded ones: what the photo stores
    # Faces found but too small to identify (Face.embedded False): counted, not stored.
    too_small: int = 0
    failure: str | None = None
    width: int | None = None
    height: int | None = None
    captured_at: datetime | None = None
    # (small, medium) keys of thumbnails rendered from this decode, already stored.
    thumbnails: tuple[str, str] | None = None


def claim_photos(
    session: Session, photo_ids: Sequence[uuid.UUID], *, max_attempts: int, lease: uuid.UUID | None = None
) -> list[ClaimedPhoto]:
    """Mark the still-pending photos among `photo_ids` processing by the worker holding `lease`
    (photomatch.photos.leases); photos out of attempts fail instead."""
    exhausted = photo_rows.fail_exhausted(session, photo_ids, max_attempts)
    for photo_id in exhausted:
        log.warning("photos.process.too_many_attempts", photo_id=photo_id)
    rows = photo_rows.claim(session, photo_ids, max_attempts, lease)
    embedders = event_rows.embedders_of(session, [event_id for _, event_id, _ in rows])
    skipped = len(photo_ids) - len(rows) - len(exhausted)
    if skipped:
        # Done, failed or deleted: a duplicate delivery of a finished batch lands here.
        log.info("photos.process.skipped", photos=skipped)
    return [ClaimedPhoto(pid, eid, key, embedders[eid]) for pid, eid, key in rows]


def _decode(fetched: Future[bytes], photo: ClaimedPhoto, decode: Callable[[bytes], LoadedImage]) -> LoadedImage | str:
    """The decoded photo, or a failure reason `<reason>: <message>` for a permanent problem.

    Its bytes were asked for ahead (`fetched`); the "fetch" stage is the time spent waiting for them.
    """
    try:
        with timed("fetch"):
            data = fetched.result()
    except ObjectNotFound:
        log.warning("photos.process.missing_original", photo_id=photo.id, key=photo.storage_key)
        return f"missing_original: no object at {photo.storage_key}"
    try:
        with timed("decode"):
            return decode(data)
    except ImageError as e:
        log.info("photos.process.decode_failed", photo_id=photo.id, reason=e.reason)
        return f"{e.reason}: {e}"


def _analyze(engine: Analyzer, images: list[LoadedImage]) -> list[list[Face] | str]:
    """One batched engine call; if it raises, each image alone, so one bad photo cannot sink a batch.

    When every image fails alone too, the problem is the worker (weights, device), not the photos:
    the error propagates, the photos stay processing, and the reconciler retries them later.
    """
    try:
        return list(engine.analyze([img.rgb for img in images]))
    except DeviceOutOfMemory:
        raise  # the engine already split the batch down to one image: the worker's memory, not a photo
    except Exception:
        if len(images) == 1:
            raise
        log.exception("photos.process.batch_failed", images=len(images), then="one_by_one")
    results: list[list[Face] | str] = []
    first_error: Exception | None = None
    for img in images:
        try:
            results.append(engine.analyze([img.rgb])[0])
        except DeviceOutOfMemory:
            raise
        except Exception as e:
            first_error = first_error or e
            results.append(f"analysis_error: {type(e).__name__}: {e}")
    if first_error is not None and all(isinstance(r, str) for r in results):
        raise first_error
    return results


def fail_unavailable(session: Session, claimed: Sequence[ClaimedPhoto], error: BaseException) -> list[uuid.UUID]:
    """Storage stayed unreachable through every retry: fail the batch with a reason rather than leave it
    processing; `photos retry` (or the photographer page) queues them again once storage is back."""
    reason = f"storage_unavailable: the photo store could not be reached ({type(error).__name__}); retry later"
    failed = photo_rows.fail_pending(session, [c.id for c in claimed], reason)
    for photo_id in failed:
        log.warning("photos.process.storage_unavailable", photo_id=photo_id, error=type(error).__name__)
        PHOTO_FAILURES.labels("storage_unavailable").inc()
    return failed


def analyze_photos(
    claimed: Sequence[ClaimedPhoto],
    storage: Storage,
    engine_for: Callable[[tuple[str, str]], Analyzer],
    *,
    max_pixels: int | None = None,
) -> list[PhotoOutcome]:
    """Decode the photos and detect and embed the decodable ones, one engine call per model and chunk.

    A chunk holds decoded photos up to `max_pixels` in total (Settings.process_max_batch_pixels):
    sixteen 24 MP photos decoded at once held 1.2 GB, so a batch of big photos is analysed in
    several calls, each chunk's pixels released before the next is decoded.
    """
    settings = get_settings()
    budget = max_pixels or settings.process_max_batch_pixels
    inline_thumbnails = settings.process_thumbnails_inline
    outcomes: list[PhotoOutcome] = []
    pending: dict[tuple[str, str], list[tuple[PhotoOutcome, LoadedImage]]] = {}

    def flush(embedder: tuple[str, str]) -> None:
        items = pending.pop(embedder, [])
        if not items:
            return
        results = _analyze(engine_for(embedder), [img for _, img in items])
        for (outcome, _), result in zip(items, results, strict=True):
            if isinstance(result, str):
                outcome.failure = result
            else:
                outcome.faces = [f for f in result if f.embedded]
                outcome.too_small = len(result) - len(outcome.faces)

    # Every original is asked for at once and read while earlier photos decode and the engine runs:
    # from S3 each read is tens of milliseconds of waiting, which a GPU worker cannot afford.
    with ThreadPoolExecutor(max_workers=max(1, settings.process_fetch_threads)) as pool:
        fetched = [pool.submit(storage.get_bytes, photo.storage_key) for photo in claimed]
        try:
            for photo, data in zip(claimed, fetched, strict=True):
                outcome = PhotoOutcome(photo.id, photo.event_id)
                outcomes.append(outcome)
                # The engine decodes where it runs (a GPU's nvJPEG); an engine without a decoder, Pillow.
                image = _decode(data, photo, getattr(engine_for(photo.embedder), "decode", load_image))
                if isinstance(image, str):
                    outcome.failure = image
                    continue
                outcome.width, outcome.height, outcome.captured_at = image.width, image.height, image.captured_at
                if inline_thumbnails:  # from the pixels already decoded for the faces
                    with timed("thumbnails"):
                        pixels = host_pixels(image.rgb)
                        outcome.thumbnails = store_thumbnails(storage, photo.event_id, photo.id, pixels)
                held = sum(img.width * img.height for _, img in pending.get(photo.embedder, []))
                if held and held + image.width * image.height > budget:
                    flush(photo.embedder)
                pending.setdefault(photo.embedder, []).append((outcome, image))
        finally:
            for f in fetched:  # a task that failed leaves no reads queued
                f.cancel()
    for embedder in list(pending):
        flush(embedder)
    return outcomes


def _face_rows(outcome: PhotoOutcome) -> list[dict[str, Any]]:
    rows = []
    for face in outcome.faces:
        d = face.detection
        if face.embedding is None or face.model is None or face.detector is None:
            raise ValueError("faces must be detected and embedded by the engine before they are saved")
        rows.append(
            {
                "photo_id": outcome.photo_id,
                "event_id": outcome.event_id,
                "box": [float(v) for v in d.box],
                "landmarks": [float(c) for point in d.landmarks for c in point],
                "probability": float(d.probability),
                "size_px": round(d.size),
                "sharpness": float(face.sharpness),
                "model": face.model,
                "detector": face.detector,
                "embedding": face.embedding,
                "second_model": face.second_model if face.second_embedding is not None else None,
                "second_embedding": face.second_embedding,
            }
        )
    return rows


def _without_removed(faces: list[Face], removed: list[tuple[str, np.ndarray]]) -> list[Face]:
    """The faces that are not one an attendee removed (opt-out) from this photo."""
    if not removed:
        return faces
    kept = []
    for face in faces:
        vector = np.asarray(face.embedding, dtype=np.float32)
        same = (m == face.model and float(np.linalg.norm(vector - t)) < TOMBSTONE_RADIUS for m, t in removed)
        if not any(same):
            kept.append(face)
    return kept


def save_outcomes(session: Session, outcomes: Sequence[PhotoOutcome]) -> None:
    """Replace each photo's faces and set its final status, all in the caller's one transaction.

    Rows are locked first, so a second run of the same task waits and then replaces the faces
    again: the photo ends with exactly one set, whichever run commits last.
    """
    photos = {p.id: p for p in photo_rows.get_photos(session, [o.photo_id for o in outcomes], for_update=True)}
    tombstones = tombstone_rows.tombstones_of(session, list(photos))
    for outcome in outcomes:
        photo = photos.get(outcome.photo_id)
        if photo is None:  # deleted meanwhile (event purged)
            continue
        if outcome.width is not None:
            photo.width, photo.height, photo.captured_at = outcome.width, outcome.height, outcome.captured_at
        if outcome.thumbnails is not None:
            photo.thumb_small_key, photo.thumb_medium_key = outcome.thumbnails
        photo.processed_at = func.now()  # type: ignore[assignment]
        if outcome.failure is not None:
            face_rows.replace_faces(session, photo.id, [])
            photo.status, photo.failure_reason, photo.face_count = PhotoStatus.FAILED, outcome.failure, None
        else:
            outcome.faces = _without_removed(outcome.faces, tombstones.get(photo.id, []))
            face_rows.replace_faces(session, photo.id, _face_rows(outcome))
            photo.status, photo.failure_reason, photo.face_count = PhotoStatus.DONE, None, len(outcome.faces)
    session.flush()


def record_outcomes(outcomes: Sequence[PhotoOutcome]) -> None:
    """Log and count a committed batch: one line per photo, and the worker metrics (photos by status,
    faces, failures by reason)."""
    BATCH_PHOTOS.observe(len(outcomes))
    for o in outcomes:
        if o.failure is None:
            log.info(
                "photos.process.done",
                photo_id=o.photo_id,
                event_id=o.event_id,
                faces=len(o.faces),
                too_small=o.too_small,
            )
            PHOTOS_PROCESSED.labels("done").inc()
            FACES_STORED.inc(len(o.faces))
            FACES_TOO_SMALL.inc(o.too_small)
        else:
            reason = o.failure.split(":", 1)[0]
            log.info("photos.process.failed", photo_id=o.photo_id, event_id=o.event_id, reason=reason)
            PHOTOS_PROCESSED.labels("failed").inc()
            PHOTO_FAILURES.labels(reason).inc()


# --- thumbnails --------------------------------------------------------------------------------


def make_thumbnails(session: Session, storage: Storage, photo_ids: Sequence[uuid.UUID]) -> int:
    """Render and store small and medium previews of photos that lack them; returns how many were made.

    Rendering happens before any row is written, so row locks are held only for the final updates.
    Undecodable photos are skipped: the face task records why they failed.
    """
    made: list[tuple[uuid.UUID, str, str]] = []
    for photo in photo_rows.get_photos(session, photo_ids):
        if photo.status == PhotoStatus.FAILED or photo.thumb_small_key is not None:
            continue
        try:
            image = load_image(storage.get_bytes(photo.storage_key))
        except (ImageError, ObjectNotFound) as e:
            log.info("photos.thumbnails.skipped", photo_id=photo.id, error=type(e).__name__)
            continue
        made.append((photo.id, *store_thumbnails(storage, photo.event_id, photo.id, image.rgb)))
    for photo_id, small_key, medium_key in made:
        photo_rows.set_thumbnails(session, photo_id, small_key, medium_key)
    session.flush()
    return len(made)
