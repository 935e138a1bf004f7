"""SQL of selfie search: a per-event scan of faces by pgvector distance, and the photos it returns.

Most events are scanned exactly: the btree on faces(event_id, model) gives the event's faces and
`embedding <-> query` is computed for those only, so recall is perfect and no other event's face is
ever read. A big event has an HNSW index of its own (photomatch.ann), and the same query
walks that instead; bench/search.py measures both and the size where one overtakes the other.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pgvector import HalfVector
from pgvector.sqlalchemy import HALFVEC
from sqlalchemy import BigInteger, String, any_, bindparam, case, cast, delete, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter

from photomatch import ann
from photomatch.models import Face, FaceTombstone, Photo, PhotoStatus


class _Redacted(str):
    """A bound value that prints as a placeholder.

    SQLAlchemy writes bound parameters into its log lines (echo, or any logger at INFO) and into
    error messages; the selfie's vector must appear in neither. psycopg still sends the text.
    """

    def __repr__(self) -> str:
        return "'<redacted query vector>'"


def query_vector_param(query: np.ndarray, name: str = "query_vector") -> object:
    """The query as a halfvec SQL expression whose bound text never shows up in logs."""
    text = _Redacted(HalfVector._to_db(np.asarray(query, dtype=np.float32)))
    return cast(bindparam(name, value=text, type_=String()), HALFVEC())


@dataclass
class FaceRows:
    """Faces of one event near a query, as parallel arrays ordered by distance."""

    face: np.ndarray
    photo: list[uuid.UUID]
    distance: np.ndarray
    box: np.ndarray  # (n, 4)
    probability: np.ndarray
    size: np.ndarray
    sharpness: np.ndarray


@dataclass
class Scan:
    """One exact scan of an event for a query: its candidates, its nearest distances, its size."""

    near: FaceRows  # the faces within the radius, with their geometry and quality
    nearest: np.ndarray  # the distances of the event's `limit` nearest faces, sorted
    nearest_face: np.ndarray  # their face ids
    event_faces: int  # faces of the event made by the model, in photos that are done
    # With a second query vector: the same faces' distances to it (NaN where a face has none).
    near_second: np.ndarray | None = None
    nearest_second: np.ndarray | None = None


def scan_event(
    session: Session,
    event_id: uuid.UUID,
    model: str,
    query: np.ndarray,
    *,
    radius: float,
    limit: int,
    exact: bool = False,
    indexed_limit: int | None = None,
    ef_search: int = 600,
    second: tuple[str, np.ndarray] | None = None,
    among: Sequence[int] | np.ndarray | None = None,
) -> Scan:
    """The `limit` faces of `event_id` (by `model`, in done photos) nearest to `query`, in one scan.

    Only those within `radius` are candidates (geometry and quality are read for them); the others'
    distances feed the query's impostor cohort, and the event's size comes with them. No embedding
    is read: decoding a thousand vectors cost ~100 ms a scan (the former bench/search_latency.py); expansion
    reads its few hits' vectors with `face_embeddings`.

    An event with its own HNSW index is searched through it (approximately, `indexed_limit` faces
    at most) unless `exact`; its size is then Postgres' count of the index's entries, since
    counting exactly would read them all.

    `second` (a second model and the query's vector by it) adds each returned face's distance by
    that model, computed for those `limit` faces only (an outer query), never used to order.

    `among` (face ids) measures only those faces, exactly, by primary key: the re-measure of a
    previous scan's faces from an expanded query. `event_faces` then counts them.
    """
    if among is not None:
        exact, limit = True, len(among)
    index = None if exact else ann.event_index(session, event_id, model)
    if index and indexed_limit:
        limit = min(limit, indexed_limit)
    # The index is on the column cast to the model's dimension (photomatch.ann).
    vectors = cast(Face.embedding, HALFVEC(len(query))) if index else Face.embedding
    distance = vectors.l2_distance(query_vector_param(query))
    columns = [
        Face.id,
        Face.photo_id,
        distance.label("distance"),
        Face.box,
        Face.probability,
        Face.size_px,
        Face.sharpness,
    ]
    stmt = (
        select(*columns, *([] if index else [func.count().over().label("event_faces")]))
        # The composite join matches faces(photo_id, event_id) -> photos(id, event_id): even a
        # face row with a stale event_id could not bring in another event's photo.
        .join(Photo, (Photo.id == Face.photo_id) & (Photo.event_id == Face.event_id))
        .where(Face.event_id == event_id, Face.model == model, Photo.status == PhotoStatus.DONE)
        .where(*([] if among is None else [Face.id == any_(_ids_param(among))]))
        # The index yields faces in distance order; a second sort key would make Postgres sort them all.
        .order_by(*((distance,) if index else (distance, Face.id)))
        .limit(limit)
    )
    # Events range from a few hundred faces to a million. After a few executions psycopg prepares
    # the statement and Postgres may switch to a generic plan that ignores which event is searched
    # (and so cannot use its partial index): measured on a 50k-face event, 0.42 s instead of 0.02 s
    # (bench/search_strategy.py).
    session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    if index:
        # Iterative scans keep walking the graph until `limit` faces are found, in distance order.
        session.execute(text("SELECT set_config('hnsw.ef_search', :ef, true)"), {"ef": str(ef_search)})
        session.execute(text("SELECT set_config('hnsw.iterative_scan', :mode, true)"), {"mode": ann.ITERATIVE_SCAN})
        session.execute(text("SELECT set_config('hnsw.max_scan_tuples', :n, true)"), {"n": str(max(20_000, 4 * limit))})
    elif exact:
        # Keeps the planner off the event's HNSW index (the btree is still read, by a bitmap scan).
        session.execute(text("SET LOCAL enable_indexscan = off"))
    if second is not None:
        inner = stmt.add_columns(Face.second_model, Face.second_embedding).subquery()
        d2 = inner.c.second_embedding.l2_distance(query_vector_param(second[1], "second_vector"))
        stmt = select(
            *[c for c in inner.c if c.name not in ("second_model", "second_embedding")],
            case((inner.c.second_model == second[0], d2), else_=None).label("second_distance"),
        ).order_by(inner.c.distance, inner.c.id)
    rows = session.execute(stmt).all()
    if exact:
        session.execute(text("RESET enable_indexscan"))
    within = [r for r in rows if r.distance <= radius]
    n = len(within)
    return Scan(
        near=FaceRows(
            face=np.array([r.id for r in within], dtype=np.int64),
            photo=[r.photo_id for r in within],
            distance=np.array([r.distance for r in within], dtype=np.float64),
            box=np.array([r.box for r in within], dtype=np.float64).reshape(n, 4),
            probability=np.array([r.probability for r in within], dtype=np.float64),
            size=np.array([r.size_px for r in within], dtype=np.float64),
            sharpness=np.array([np.nan if r.sharpness is None else r.sharpness for r in within], dtype=np.float64),
        ),
        nearest=np.array([r.distance for r in rows], dtype=np.float64),
        nearest_face=np.array([r.id for r in rows], dtype=np.int64),
        event_faces=(index.faces if index else int(rows[0].event_faces) if rows else 0),
        near_second=None if second is None else _nan_for_none([r.second_distance for r in within]),
        nearest_second=None if second is None else _nan_for_none([r.second_distance for r in rows]),
    )


def _ids_param(ids: Sequence[int] | np.ndarray) -> BindParameter[Any]:
    """Face ids as one bigint[] parameter (a thousand separate parameters would slow the planner)."""
    array: Any = ARRAY(BigInteger)
    return bindparam("among_ids", value=[int(i) for i in ids], type_=array)


def _nan_for_none(values: list[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def face_embeddings(
    session: Session, event_id: uuid.UUID, face_ids: Sequence[int] | np.ndarray, second: bool = False
) -> np.ndarray:
    """The embeddings of these faces of `event_id`, in the order asked (float32, one row each); their
    second model's when `second`."""
    if not len(face_ids):
        return np.zeros((0, 0), dtype=np.float32)
    column = Face.second_embedding if second else Face.embedding
    rows = dict(
        session.execute(select(Face.id, column).where(Face.event_id == event_id, Face.id.in_(list(face_ids)))).all()
    )
    return np.array([np.asarray(_floats(rows[int(i)])) for i in face_ids], dtype=np.float32)


def _floats(vector: object) -> list[float]:
    """A stored halfvec (pgvector's HalfVector) as floats."""
    to_list = getattr(vector, "to_list", None)
    return list(to_list() if to_list is not None else vector)  # type: ignore[arg-type]


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


def faces_of_event(
    session: Session, event_id: uuid.UUID, face_ids: Sequence[int]
) -> dict[int, tuple[uuid.UUID, list[float]]]:
    """(photo id, box) of each listed face that belongs to `event_id` (others are left out)."""
    if not face_ids:
        return {}
    rows = session.execute(
        select(Face.id, Face.photo_id, Face.box).where(Face.event_id == event_id, Face.id.in_(list(face_ids)))
    )
    return {int(i): (p, list(b or [])) for i, p, b in rows}


def remove_faces(session: Session, event_id: uuid.UUID, face_ids: Sequence[int]) -> dict[uuid.UUID, int]:
    """Delete these faces of the event, tombstone each (photo, model, embedding), and lower the photos'
    face counts; returns faces removed per photo."""
    rows = session.execute(
        delete(Face)
        .where(Face.event_id == event_id, Face.id.in_(list(face_ids)))
        .returning(Face.photo_id, Face.model, Face.embedding)
    ).all()
    if not rows:
        return {}
    session.execute(
        insert(FaceTombstone),
        [{"event_id": event_id, "photo_id": p, "model": m, "embedding": e} for p, m, e in rows],
    )
    removed: dict[uuid.UUID, int] = {}
    for photo_id, _, _ in rows:
        removed[photo_id] = removed.get(photo_id, 0) + 1
    for photo_id, n in removed.items():
        session.execute(
            update(Photo).where(Photo.id == photo_id).values(face_count=func.greatest(Photo.face_count - n, 0))
        )
    return removed
