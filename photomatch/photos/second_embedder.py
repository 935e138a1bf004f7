"""A second embedder added to an event made without one: its faces get that model's vectors, in place.

Events created before photomatch fused two embedders (migration 0003) hold faces by the first model
alone and are searched under that model's calibration, which on crowded albums finds far fewer of a
person's photos (README "Search"). `photomatch event fuse` records the second embedder on the event
and queues its done photos; a face task reads each original again, aligns every stored face from its
stored landmarks into the new model's frame and fills in the second vector. Nothing is detected
again: the faces, their ids and the faces attendees removed stay exactly as they were.

While that runs the event stays searchable: a search whose candidates lack the second vector is
ranked by the first model alone (photomatch.search.ranking), as before. Truth is in Postgres: the
faces still without their event's second vector are the work left (`remaining`), and the reconciler
queues their photos again when a message was lost.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import groupby

import numpy as np
from sqlalchemy.orm import Session

from photomatch.config import Settings, get_settings
from photomatch.events import repository as event_rows
from photomatch.faces.types import Analyzer, Detection, Face
from photomatch.imaging import ImageError, LoadedImage, load_image
from photomatch.logs import get_logger
from photomatch.models import Event
from photomatch.photos.queue import enqueue_second_embedding
from photomatch.photos.repository import faces as face_rows
from photomatch.photos.repository import photos as photo_rows
from photomatch.search.calibration import site_calibrations
from photomatch.storage import ObjectNotFound, Storage

log = get_logger(__name__)


class SecondEmbedderError(ValueError):
    """The event cannot take this second embedder; the message says why."""


def add_second_embedder(
    session: Session, event: Event, model: str | None = None, *, settings: Settings | None = None
) -> int:
    """Fuse `model` (default: the site's Settings.second_embedder) into the event's search from now on,
    and queue its done photos for that model's vectors; returns the photos queued.

    Running it again for the same model queues whatever is still missing (a resume, not a redo).
    """
    s = settings or get_settings()
    model = model or s.second_embedder
    if not model:
        raise SecondEmbedderError("no second embedder given, and the site has none (PHOTOMATCH_SECOND_EMBEDDER)")
    cals = site_calibrations(s)
    if not cals.fuses(event.embedder, model):
        known = ", ".join("+".join(c.embedders) for c in cals.calibrations if c.fused)
        raise SecondEmbedderError(
            f"no fused calibration for {model!r} with event {event.slug}'s {event.embedder}: "
            f"it cannot be searched (calibrated: {known})"
        )
    if event.second_embedder not in (None, model):
        raise SecondEmbedderError(f"event {event.slug} already fuses {event.second_embedder}")
    event_rows.set_second_embedder(session, event.id, model)
    ids = photo_rows.photos_missing_second(session, event.id, limit=None)
    enqueue_second_embedding(session, ids, settings=s)
    log.info("photos.second_embedder.added", event_id=event.id, model=model, photos=len(ids))
    return len(ids)


def events_to_fuse(session: Session, settings: Settings | None = None) -> list[Event]:
    """Events that could gain the site's second embedder: those of a first model calibrated with it, without one."""
    s = settings or get_settings()
    cals = site_calibrations(s)
    return [
        e
        for e in event_rows.events_without_second(session)
        if s.second_embedder and cals.fuses(e.embedder, s.second_embedder)
    ]


def remaining(session: Session, event: Event) -> int:
    """Done photos of the event that still have a face without its second vector (0 without one)."""
    if not event.second_embedder:
        return 0
    return photo_rows.count_photos_missing_second(session, event.id)


def requeue_missing(session: Session, *, limit: int = 10_000, settings: Settings | None = None) -> list[uuid.UUID]:
    """The reconciler's part: queue again done photos whose faces still lack their event's second vector.

    Call it only while the face queue is empty: then a photo still missing its vector lost its message.
    """
    ids = photo_rows.photos_missing_second(session, None, limit=limit)
    enqueue_second_embedding(session, ids, settings=settings)
    if ids:
        log.warning("photos.second_embedder.requeued", photos=len(ids))
    return ids


# --- the face task's three steps ---------------------------------------------------------------


@dataclass
class PendingPhoto:
    """A done photo whose faces (face id, detection, the detector that found it) still lack the event's
    second vector."""

    id: uuid.UUID
    event_id: uuid.UUID
    storage_key: str
    model: str
    faces: list[tuple[int, Detection, str]] = field(default_factory=list)


def load_pending(session: Session, photo_ids: Sequence[uuid.UUID]) -> list[PendingPhoto]:
    """What is left to embed among these photos (a duplicate message finds nothing)."""
    out = []
    rows = face_rows.faces_missing_second(session, photo_ids)
    for (photo_id, event_id, key, model), faces in groupby(rows, key=lambda r: r[:4]):
        pending = PendingPhoto(photo_id, event_id, key, model)
        for *_, face_id, box, landmarks, probability, detector in faces:
            points = tuple((float(landmarks[i]), float(landmarks[i + 1])) for i in range(0, 10, 2))
            det = Detection(tuple(float(v) for v in box), points, float(probability))  # type: ignore[arg-type]
            pending.faces.append((face_id, det, detector))
        out.append(pending)
    return out


@dataclass
class Embedded:
    """The vectors computed for one batch, and the photos whose original could not be read."""

    vectors: list[tuple[int, str, np.ndarray]] = field(default_factory=list)
    unreadable: dict[uuid.UUID, str] = field(default_factory=dict)


def embed_pending(
    pending: Sequence[PendingPhoto], storage: Storage, engine_for: Callable[[tuple[str, str]], Analyzer]
) -> Embedded:
    """Each photo decoded once, its faces aligned from their landmarks and embedded by the second model."""
    out = Embedded()
    for photo in pending:
        engine = engine_for((photo.model, ""))  # the second model as an engine's only embedder
        try:
            data = storage.get_bytes(photo.storage_key)
            image: LoadedImage = getattr(engine, "decode", load_image)(data)
        except ObjectNotFound:
            out.unreadable[photo.id] = f"missing_original: no object at {photo.storage_key}"
            continue
        except ImageError as e:
            out.unreadable[photo.id] = f"{e.reason}: {e}"
            continue
        # Aligned for the detector that found each face (its landmarks), whatever the site runs now.
        faces = engine.embed_faces(image.rgb, [Face(det, detector=detector) for _, det, detector in photo.faces])
        for (face_id, _, _), face in zip(photo.faces, faces, strict=True):
            assert face.embedding is not None and face.model == photo.model
            out.vectors.append((face_id, photo.model, face.embedding))
    return out


def save_embedded(session: Session, embedded: Embedded) -> tuple[int, list[uuid.UUID]]:
    """Store the vectors; fail the photos whose original is gone. Returns (faces updated, photos failed)."""
    updated = face_rows.set_second_embeddings(session, embedded.vectors)
    failed: list[uuid.UUID] = []
    for photo_id, reason in embedded.unreadable.items():
        failed += photo_rows.fail_done(session, [photo_id], reason)
        log.warning("photos.second_embedder.unreadable", photo_id=photo_id, reason=reason.split(":", 1)[0])
    session.flush()
    return updated, failed
