"""SQL for face rows: a photo's faces replaced at once, and the second model's vectors. Functions only flush."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, and_, delete, insert, select, update
from sqlalchemy.orm import Session

from photomatch.models import Event, Face, FaceTombstone, Photo, PhotoStatus


def replace_faces(session: Session, photo_id: uuid.UUID, rows: Sequence[dict[str, Any]]) -> None:
    """Delete the photo's faces and insert `rows`: run in one transaction, a rerun leaves one set."""
    session.execute(delete(Face).where(Face.photo_id == photo_id).execution_options(synchronize_session=False))
    if rows:
        session.execute(insert(Face), list(rows))


def faces_missing_second(session: Session, photo_ids: Sequence[uuid.UUID]) -> list[tuple[Any, ...]]:
    """(photo id, event id, storage key, event's second model, face id, box, landmarks, probability,
    detector) of each face of these done photos still lacking its event's second vector, by photo."""
    stmt = (
        select(
            Photo.id,
            Photo.event_id,
            Photo.storage_key,
            Event.second_embedder,
            Face.id,
            Face.box,
            Face.landmarks,
            Face.probability,
            Face.detector,
        )
        .join(Event, Event.id == Photo.event_id)
        .join(Face, and_(Face.photo_id == Photo.id, Face.event_id == Photo.event_id))
        .where(
            Photo.id.in_(list(photo_ids)),
            Photo.status == PhotoStatus.DONE,
            Event.second_embedder.is_not(None),
            Face.second_model.is_(None),
        )
        .order_by(Photo.id, Face.id)
    )
    return [tuple(row) for row in session.execute(stmt)]


def set_second_embeddings(session: Session, rows: Sequence[tuple[int, str, np.ndarray]]) -> int:
    """Store (face id, model, vector) on faces that still lack a second vector; returns faces updated.

    A face reprocessed meanwhile has a new id (and its vector already): its old id matches nothing.
    """
    updated = 0
    for face_id, model, vector in rows:
        result = session.execute(
            update(Face)
            .where(Face.id == face_id, Face.second_model.is_(None))
            .values(second_model=model, second_embedding=vector)
            .execution_options(synchronize_session=False)
        )
        updated += int(getattr(result, "rowcount", 0) or 0)
    return updated


def missing_second(event_id: uuid.UUID | None) -> list[ColumnElement[bool]]:
    """Where clauses: faces of done photos whose event has a second embedder they lack (of one event, or all)."""
    # Faces of done photos whose event has a second embedder they lack, read through the partial
    # index on faces without a second vector, which stays small: faces processed under a second
    # embedder are never in it.
    where = [
        Face.second_model.is_(None),
        Event.id == Face.event_id,
        Event.second_embedder.is_not(None),
        Photo.id == Face.photo_id,
        Photo.event_id == Face.event_id,
        Photo.status == PhotoStatus.DONE,
    ]
    return where if event_id is None else [*where, Face.event_id == event_id]


def delete_event_faces(session: Session, event_id: uuid.UUID) -> None:
    """Every face and opt-out tombstone of the event; photos keep no face count."""
    session.execute(delete(Face).where(Face.event_id == event_id))
    session.execute(delete(FaceTombstone).where(FaceTombstone.event_id == event_id))
    session.execute(update(Photo).where(Photo.event_id == event_id).values(face_count=None))
