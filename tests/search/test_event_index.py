"""A big event gets an HNSW index of its own, which its searches walk; small events are scanned
exactly; an index never brings in another event's faces or a photo that is not done, and it goes
with its event. (Its speed and recall at 100k and 1M faces: bench/search.py.)"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from photomatch import ann
from photomatch.accounts.service import create_photographer
from photomatch.config import Settings
from photomatch.db import commit
from photomatch.events.service import create_event
from photomatch.lifecycle import delete_event, enforce_retention
from photomatch.models import Event, Face, Photo
from photomatch.search import repository
from photomatch.storage import Storage
from tests.support.transactions import boundary

MODEL = "dlib-resnet-v1"


@pytest.fixture
def engine(fresh_db: str) -> Iterator[Engine]:
    e = sa.create_engine(fresh_db, poolclass=NullPool)
    yield e
    e.dispose()


def people(rng: np.random.Generator, n_faces: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors of ~n/5 people, five appearances each on average: (embeddings, person of each)."""
    centres = rng.normal(size=(max(1, n_faces // 5), 128))
    person = rng.integers(len(centres), size=n_faces)
    v = centres[person] + rng.normal(scale=0.4, size=(n_faces, 128))
    return v / np.linalg.norm(v, axis=1, keepdims=True), person


def album(session: Session, name: str, n_faces: int, seed: int) -> tuple[Event, np.ndarray]:
    """An event of `n_faces` faces in done photos of four faces each (committed); its embeddings."""
    photographer, _ = create_photographer(session, name, f"{name}-{uuid.uuid4().hex[:6]}@example.com")
    event = create_event(session, photographer, name, settings=Settings(environment="test"))
    emb, _ = people(np.random.default_rng(seed), n_faces)
    photos = [uuid.uuid4() for _ in range((n_faces + 3) // 4)]
    session.execute(
        sa.insert(Photo),
        [{"id": p, "event_id": event.id, "storage_key": f"k/{p}", "original_filename": f"{i}.jpg",
          "sha256": uuid.uuid4().hex * 2, "size_bytes": 1, "content_type": "image/jpeg", "status": "done",
          "width": 100, "height": 100, "face_count": 4} for i, p in enumerate(photos)],
    )  # fmt: skip
    session.execute(
        sa.insert(Face),
        [{"photo_id": photos[i // 4], "event_id": event.id, "box": [0, 0, 10, 10], "landmarks": [0.0] * 10,
          "probability": 0.99, "size_px": 80, "sharpness": 50.0, "model": MODEL, "embedding": list(v)}
         for i, v in enumerate(emb)],
    )  # fmt: skip
    session.commit()
    return event, emb


class Plans:
    """The plan Postgres chose for each search scan run while it is installed."""

    def __init__(self, engine: Engine) -> None:
        self.seen: list[str] = []
        self.engine = engine
        sa.event.listen(engine, "before_cursor_execute", self.explain)

    def explain(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if "<->" in statement and statement.lstrip().startswith("SELECT faces.id"):
            cursor.execute("EXPLAIN " + statement, parameters)
            self.seen.append("\n".join(r[0] for r in cursor.fetchall()))

    def close(self) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self.explain)


def scan(session: Session, event: Event, query: np.ndarray, *, exact: bool = False, limit: int = 50) -> Any:
    result = repository.scan_event(session, event.id, MODEL, query, radius=2.0, limit=limit, exact=exact)
    session.rollback()
    return result


def test_a_big_event_is_searched_through_its_own_index_and_a_small_one_exactly(engine: Engine) -> None:
    with Session(engine) as session:
        big, big_emb = album(session, "big", 400, seed=1)
        small, _ = album(session, "small", 120, seed=2)
        run = ann.index_big_events(boundary(session), engine, min_faces=300, build_memory="64MB")
        assert [(e, m) for e, m, _ in run.built] == [(big.id, MODEL)] and run.busy == []
        assert ann.event_index(session, small.id, MODEL) is None
        index = ann.event_index(session, big.id, MODEL)
        assert index is not None and index.name == ann.index_name(big.id, MODEL) and index.faces == 400
        # A second run finds nothing to do.
        assert ann.index_big_events(boundary(session), engine, min_faces=300, build_memory="64MB").built == []

        plans = Plans(engine)
        query = big_emb[7] + np.random.default_rng(3).normal(scale=0.01, size=128)
        indexed = scan(session, big, query)
        exact = scan(session, big, query, exact=True)
        scan(session, small, query)
        plans.close()
        assert index.name in plans.seen[0], plans.seen[0]
        assert ann.PREFIX not in plans.seen[1] and ann.PREFIX not in plans.seen[2]
        # On 400 faces an ef_search of 400 visits them all: the index's answer is the exact one.
        assert indexed.nearest_face.tolist() == exact.nearest_face.tolist()
        np.testing.assert_allclose(indexed.nearest, exact.nearest, atol=1e-6)
        assert indexed.event_faces == exact.event_faces == 400
        assert np.all(np.diff(indexed.nearest) >= 0)


def test_an_indexed_search_returns_only_the_events_done_photos(engine: Engine) -> None:
    with Session(engine) as session:
        big, big_emb = album(session, "big", 400, seed=4)
        other, other_emb = album(session, "other", 400, seed=4)  # the very same vectors, another event
        ann.index_big_events(boundary(session), engine, min_faces=300, build_memory="64MB")
        assert ann.event_index(session, other.id, MODEL) is not None
        query = big_emb[0]
        first_photo = session.scalars(sa.select(Face.photo_id).where(Face.event_id == big.id).order_by(Face.id)).first()
        session.execute(sa.update(Photo).where(Photo.id == first_photo).values(status="failed"))
        session.commit()

        result = scan(session, big, query, limit=1000)
        big_faces = set(session.scalars(sa.select(Face.id).where(Face.event_id == big.id)))
        failed_faces = set(session.scalars(sa.select(Face.id).where(Face.photo_id == first_photo)))
        assert len(failed_faces) == 4
        assert set(result.nearest_face.tolist()) == big_faces - failed_faces


def test_index_builds_skip_an_event_another_run_is_building(engine: Engine) -> None:
    with Session(engine) as session:
        big, _ = album(session, "big", 320, seed=5)
        key = ann.lock_key(big.id, MODEL)
        with engine.connect() as other_run:
            other_run.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            run = ann.index_big_events(boundary(session), engine, min_faces=300, build_memory="64MB")
            assert run.built == [] and run.busy == [(big.id, MODEL)]
            other_run.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        assert ann.index_big_events(boundary(session), engine, min_faces=300, build_memory="64MB").built != []


def test_an_events_index_goes_with_its_faces(engine: Engine, local_storage: Storage) -> None:
    storage = local_storage
    with Session(engine) as session:
        doomed, _ = album(session, "doomed", 300, seed=6)
        expired, _ = album(session, "expired", 300, seed=7)
        kept, _ = album(session, "kept", 300, seed=8)
        ann.index_big_events(boundary(session), engine, min_faces=300, build_memory="64MB")

        def indexes() -> set[str]:
            rows = session.execute(sa.text("SELECT relname FROM pg_class WHERE relname LIKE 'faces_ann_%'"))
            session.rollback()
            return set(rows.scalars())

        assert indexes() == {ann.index_name(e.id, MODEL) for e in (doomed, expired, kept)}
        delete_event(session, storage, doomed)
        commit(session)
        assert indexes() == {ann.index_name(e.id, MODEL) for e in (expired, kept)}
        session.execute(
            sa.update(Event).where(Event.id == expired.id).values(retention_until=date.today() - timedelta(days=1))
        )
        session.commit()
        enforce_retention(boundary(session), storage, today=date.today(), photo_grace_days=30)
        assert indexes() == {ann.index_name(kept.id, MODEL)}


def test_the_scan_brings_each_faces_second_model_distance(engine: Engine) -> None:
    """Fused search reads the second model's distance for the faces the first model's scan returns,
    exactly and through an index alike; a face without that model's vector reads as NaN."""
    second_model = "sface-2021dec-int8bq"
    with Session(engine) as session:
        big, big_emb = album(session, "fused", 400, seed=6)
        second, _ = people(np.random.default_rng(7), 400)
        ids = session.scalars(sa.select(Face.id).where(Face.event_id == big.id).order_by(Face.id)).all()
        for face_id, v in zip(ids[1:], second[1:], strict=True):  # the first face has no second vector
            session.execute(
                sa.update(Face).where(Face.id == face_id).values(second_model=second_model, second_embedding=list(v))
            )
        session.commit()
        row_of = {face_id: i for i, face_id in enumerate(ids)}
        q1, q2 = big_emb[3], second[3]
        results = [repository.scan_event(
            session, big.id, MODEL, q1, radius=2.0, limit=400, second=(second_model, q2), exact=True
        )]  # fmt: skip
        ann.index_big_events(boundary(session), engine, min_faces=300, build_memory="64MB")
        results.append(
            repository.scan_event(session, big.id, MODEL, q1, radius=2.0, limit=400, second=(second_model, q2))
        )
        for result in results:
            assert result.nearest_second is not None and result.near_second is not None
            expected = [np.nan if f == ids[0] else np.linalg.norm(second[row_of[f]] - q2) for f in result.nearest_face]
            np.testing.assert_allclose(result.nearest_second, expected, atol=2e-3)  # halfvec precision
            assert np.isnan(result.nearest_second[result.nearest_face.tolist().index(ids[0])])
            assert np.all(np.diff(result.nearest) >= 0)  # still ordered by the first model
        # A model name the faces were not made by gives no distances at all.
        other = repository.scan_event(session, big.id, MODEL, q1, radius=2.0, limit=50, second=("other", q2))
        assert other.nearest_second is not None and np.isnan(other.nearest_second).all()


def test_a_re_measure_reads_exactly_the_faces_asked_for_and_only_the_events_own(engine: Engine) -> None:
    """Expansion re-measures the first scan's faces by id (`among`): exact distances to the new query,
    in distance order, without walking the event's index, and never a face of another event."""
    with Session(engine) as session:
        big, big_emb = album(session, "big", 400, seed=8)
        other, _ = album(session, "other", 400, seed=9)
        ann.index_big_events(boundary(session), engine, min_faces=300, build_memory="64MB")
        first = scan(session, big, big_emb[5], limit=100)
        stranger = session.scalars(sa.select(Face.id).where(Face.event_id == other.id).limit(1)).one()
        ids = session.scalars(sa.select(Face.id).where(Face.event_id == big.id).order_by(Face.id)).all()
        row_of = {face_id: i for i, face_id in enumerate(ids)}
        expanded = big_emb[5] + big_emb[6]
        expanded /= np.linalg.norm(expanded)

        plans = Plans(engine)
        among = np.append(first.nearest_face, stranger)
        again = repository.scan_event(session, big.id, MODEL, expanded, radius=2.0, limit=50, among=among)
        session.rollback()
        plans.close()
        assert ann.index_name(big.id, MODEL) not in plans.seen[0], plans.seen[0]
        assert sorted(again.nearest_face.tolist()) == sorted(first.nearest_face.tolist())  # all asked, not 50
        expected = [np.linalg.norm(big_emb[row_of[f]] - expanded) for f in again.nearest_face]
        np.testing.assert_allclose(again.nearest, expected, atol=2e-3)  # halfvec precision
        assert np.all(np.diff(again.nearest) >= 0) and again.event_faces == len(first.nearest_face)
