"""SQL of selfie search: an exact per-event scan of faces by pgvector distance, and the photos it returns.

Why exact and not HNSW: see bench/search_strategy.py and the README ("Search strategy"). The scan
uses the btree on faces(event_id, model) and computes `embedding <-> query` for that event's
faces only, so recall is perfect and no other event's face is ever read.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pgvector import HalfVector
from pgvector.sqlalchemy import HALFVEC
from sqlalchemy import String, bindparam, cast, select, text
from sqlalchemy.orm import Session

from photomatch.models import Face, Photo, PhotoStatus


class _Redacted(str):
    """A bound value that prints as a placeholder.

    SQLAlchemy writes bound parameters into its log lines (echo, or any logger at INFO) and into
    error messages; the selfie's vector must appear in neither. psycopg still sends the text.
    """

    def __repr__(self) -> str:
        return "'<redacted query vector>'"


def query_vector_param(query: np.ndarray) -> object:
    """The query as a halfvec SQL expression whose bound text never shows up in logs."""
    text = _Redacted(HalfVector._to_db(np.asarray(query, dtype=np.float32)))
    return cast(bindparam("query_vector", value=text, type_=String()), HALFVEC())


@dataclass
class FaceRows:
    """Faces of one event near a query, as parallel arrays ordered by distance."""

    face: np.ndarray
    photo: list[uuid.UUID]
    distance: np.ndarray
    embedding: np.ndarray  # (n, d) float32; (n, 0) when not requested
    box: np.ndarray  # (n, 4)
    probability: np.ndarray
    size: np.ndarray
    sharpness: np.ndarray


def faces_near(
    session: Session,
    event_id: uuid.UUID,
    model: str,
    query: np.ndarray,
    *,
    radius: float,
    limit: int,
    with_embeddings: bool = False,
) -> FaceRows:
    """Faces of `event_id` made by `model`, in photos that are done, within `radius` of `query`."""
    distance = Face.embedding.l2_distance(query_vector_param(query))
    columns = [Face.id, Face.photo_id, distance.label("distance"), Face.box, Face.probability, Face.size_px]
    columns += [Face.sharpness] + ([Face.embedding] if with_embeddings else [])
    stmt = (
        select(*columns)
        # The composite join matches faces(photo_id, event_id) -> photos(id, event_id): even a
        # face row with a stale event_id could not bring in another event's photo.
        .join(Photo, (Photo.id == Face.photo_id) & (Photo.event_id == Face.event_id))
        .where(
            Face.event_id == event_id,
            Face.model == model,
            Photo.status == PhotoStatus.DONE,
            distance <= radius,
        )
        .order_by(distance, Face.id)
        .limit(limit)
    )
    # Events range from a few hundred faces to tens of thousands. After a few executions psycopg
    # prepares the statement and Postgres may switch to a generic plan that ignores which event
    # is searched: measured on a 50k-face event, 0.42 s instead of 0.02 s (bench/search_strategy.py).
    session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    rows = session.execute(stmt).all()
    n = len(rows)
    dim = len(rows[0].embedding) if with_embeddings and n else 0
    return FaceRows(
        face=np.array([r.id for r in rows], dtype=np.int64),
        photo=[r.photo_id for r in rows],
        distance=np.array([r.distance for r in rows], dtype=np.float64),
        embedding=(
            np.array([r.embedding for r in rows], dtype=np.float32).reshape(n, dim)
            if with_embeddings
            else np.zeros((n, 0), dtype=np.float32)
        ),
        box=np.array([r.box for r in rows], dtype=np.float64).reshape(n, 4),
        probability=np.array([r.probability for r in rows], dtype=np.float64),
        size=np.array([r.size_px for r in rows], dtype=np.float64),
        sharpness=np.array([np.nan if r.sharpness is None else r.sharpness for r in rows], dtype=np.float64),
    )


def photos_of_event(
    session: Session, event_id: uuid.UUID, photo_ids: Sequence[uuid.UUID], *, done_only: bool = True
) -> dict[uuid.UUID, Photo]:
    """The listed photos that belong to `event_id` (others are silently left out)."""
    if not photo_ids:
        return {}
    stmt = select(Photo).where(Photo.event_id == event_id, Photo.id.in_(list(photo_ids)))
    if done_only:
        stmt = stmt.where(Photo.status == PhotoStatus.DONE)
    return {p.id: p for p in session.scalars(stmt)}
