"""The migrated schema on real Postgres + pgvector: tables, constraints, halfvec search, cascades."""

from __future__ import annotations

import math
import random
import uuid
from datetime import date

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from photomatch.db import Base, make_engine, make_session_factory, session_scope
from photomatch.models import Event, Face, Photo, Photographer, PhotoStatus

DLIB = "dlib-resnet-v1"
FACENET = "facenet-vggface2"


def unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector]


def random_unit(dim: int, rng: random.Random) -> list[float]:
    return unit([rng.gauss(0, 1) for _ in range(dim)])


def make_event(session: Session, embedder: str = DLIB) -> Event:
    tag = uuid.uuid4().hex[:8]
    photographer = Photographer(name="Ana", email=f"ana-{tag}@example.com")
    session.add(photographer)
    session.flush()
    event = Event(
        photographer_id=photographer.id,
        name="Wedding",
        slug=f"wedding-{tag}",
        access_code=tag.upper(),
        retention_until=date(2027, 1, 1),
        embedder=embedder,
    )
    session.add(event)
    session.flush()
    return event


def make_photo(session: Session, event: Event, sha256: str | None = None) -> Photo:
    photo_id = uuid.uuid4()
    photo = Photo(
        id=photo_id,
        event_id=event.id,
        storage_key=f"events/{event.id}/photos/{photo_id}.jpg",
        original_filename="IMG_0001.JPG",
        sha256=sha256 or uuid.uuid4().hex * 2,
        size_bytes=1234,
        content_type="image/jpeg",
    )
    session.add(photo)
    session.flush()
    return photo


def make_face(photo: Photo, embedding: list[float], model: str = DLIB) -> Face:
    return Face(
        photo_id=photo.id,
        event_id=photo.event_id,
        box=[10.0, 20.0, 110.0, 140.0],
        landmarks=[float(i) for i in range(10)],
        probability=0.99,
        size_px=100,
        sharpness=12.5,
        model=model,
        embedding=embedding,
    )


def test_migration_creates_vector_extension_and_tables(db_session: Session) -> None:
    extensions = db_session.execute(sa.text("SELECT extname FROM pg_extension")).scalars().all()
    assert "vector" in extensions
    tables = set(sa.inspect(db_session.connection()).get_table_names())
    assert {"photographers", "api_keys", "events", "photos", "faces", "import_items", "alembic_version"} <= tables
    assert db_session.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "0007"
    embedding_type = db_session.execute(
        sa.text(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = 'faces'::regclass AND attname = 'embedding'"
        )
    ).scalar()
    assert embedding_type == "halfvec"


def test_models_match_migrations(db_session: Session) -> None:
    # A model edited without a migration (or the reverse) shows up here as a non-empty diff.
    context = MigrationContext.configure(db_session.connection(), opts={"compare_type": True})
    assert compare_metadata(context, Base.metadata) == []


def test_photo_defaults(db_session: Session) -> None:
    photo = make_photo(db_session, make_event(db_session))
    db_session.refresh(photo)
    assert photo.status is PhotoStatus.UPLOADED
    assert photo.attempts == 0 and photo.face_count is None
    assert photo.created_at.tzinfo is not None
    stored = db_session.execute(sa.text("SELECT status FROM photos WHERE id = :id"), {"id": photo.id}).scalar()
    assert stored == "uploaded"  # the value, not the enum member's name


@pytest.mark.parametrize(("model", "dim"), [(DLIB, 128), (FACENET, 512)])
def test_halfvec_cosine_search_finds_nearest(db_session: Session, model: str, dim: int) -> None:
    rng = random.Random(dim)
    event = make_event(db_session, embedder=model)
    photo = make_photo(db_session, event)
    vectors = [random_unit(dim, rng) for _ in range(20)]
    faces = [make_face(photo, v, model=model) for v in vectors]
    # A face of the other model in the same event must never be compared with this query.
    other_dim = 512 if dim == 128 else 128
    db_session.add_all([*faces, make_face(photo, random_unit(other_dim, rng), model="other")])
    db_session.flush()

    target = faces[7]
    # A noisy copy of one face (noise of norm ~0.1), as a second photo of the same person gives.
    query = unit([v + rng.gauss(0, 0.1 / math.sqrt(dim)) for v in vectors[7]])
    distance = Face.embedding.cosine_distance(query)
    rows = db_session.execute(
        sa.select(Face.id, distance.label("distance"))
        .where(Face.event_id == event.id, Face.model == model)
        .order_by(distance)
        .limit(3)
    ).all()
    assert rows[0].id == target.id
    assert rows[0].distance < 0.05  # random unit vectors sit near distance 1
    assert rows[1].distance > 0.5

    # The same search in raw SQL, as a repository would write it with the <=> operator.
    nearest = db_session.execute(
        sa.text(
            "SELECT id FROM faces WHERE event_id = :e AND model = :m ORDER BY embedding <=> CAST(:q AS halfvec) LIMIT 1"
        ),
        {"e": event.id, "m": model, "q": str(query)},
    ).scalar()
    assert nearest == target.id

    db_session.expire_all()
    stored = db_session.get(Face, target.id)
    assert stored is not None and len(stored.embedding) == dim
    assert max(abs(a - b) for a, b in zip(stored.embedding, vectors[7], strict=True)) < 1e-3


def test_embedding_must_be_unit_length(db_session: Session) -> None:
    photo = make_photo(db_session, make_event(db_session))
    db_session.add(make_face(photo, [0.5] * 128))
    with pytest.raises(IntegrityError, match="ck_faces_embedding_unit_length"):
        db_session.flush()


def test_duplicate_sha256_rejected_within_event_allowed_across(db_session: Session) -> None:
    event, other_event = make_event(db_session), make_event(db_session)
    digest = "ab" * 32
    make_photo(db_session, event, sha256=digest)
    with pytest.raises(IntegrityError, match="uq_photos_event_id_sha256"), db_session.begin_nested():
        make_photo(db_session, event, sha256=digest)
    make_photo(db_session, other_event, sha256=digest)  # the same bytes in another event are fine
    count = db_session.scalar(sa.select(sa.func.count()).select_from(Photo).where(Photo.sha256 == digest))
    assert count == 2


def test_face_event_must_match_its_photo(db_session: Session) -> None:
    photo = make_photo(db_session, make_event(db_session))
    face = make_face(photo, random_unit(128, random.Random(1)))
    face.event_id = make_event(db_session).id
    db_session.add(face)
    with pytest.raises(IntegrityError, match="fk_faces_photo_id_photos"):
        db_session.flush()


def test_deleting_photo_cascades_faces(db_session: Session) -> None:
    rng = random.Random(2)
    event = make_event(db_session)
    photo, kept = make_photo(db_session, event), make_photo(db_session, event)
    db_session.add_all([make_face(photo, random_unit(128, rng)) for _ in range(3)])
    db_session.add(make_face(kept, random_unit(128, rng)))
    db_session.flush()

    db_session.execute(sa.delete(Photo).where(Photo.id == photo.id))
    remaining = db_session.scalars(sa.select(Face.photo_id).where(Face.event_id == event.id)).all()
    assert remaining == [kept.id]


def test_fresh_db_commits_are_visible_to_other_connections(fresh_db: str) -> None:
    engine = make_engine(fresh_db, pool_size=1)
    factory = make_session_factory(engine)
    try:
        with session_scope(factory) as session:
            event_id = make_event(session).id
        with pytest.raises(RuntimeError), session_scope(factory) as session:
            make_photo(session, session.get_one(Event, event_id))
            raise RuntimeError("boom")  # the boundary rolls this photo back
        other = sa.create_engine(fresh_db)
        with other.connect() as conn:
            assert conn.scalar(sa.text("SELECT count(*) FROM events")) == 1
            assert conn.scalar(sa.text("SELECT count(*) FROM photos")) == 0
        other.dispose()
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("model", "vector", "ok"),
    [("sface-2021dec-int8bq", "unit", True), (None, "unit", False), ("sface-2021dec-int8bq", None, False),
     ("sface-2021dec-int8bq", "long", False), (None, None, True)],
)  # fmt: skip
def test_a_second_embedding_needs_its_model_and_unit_length(
    db_session: Session, model: str | None, vector: str | None, ok: bool
) -> None:
    """A face's second vector never lies about its model: both or neither, and unit length."""
    photo = make_photo(db_session, make_event(db_session))
    face = make_face(photo, random_unit(128, random.Random(3)))
    face.second_model = model
    face.second_embedding = {"unit": random_unit(128, random.Random(4)), "long": [0.5] * 128, None: None}[vector]
    db_session.add(face)
    if ok:
        db_session.flush()
    else:
        with pytest.raises(IntegrityError, match="ck_faces_second_embedding_with_model"):
            db_session.flush()
