"""Deleting an event removes every row and object it owns; retention deletes faces on the date and
photos after the grace period, and touches no other event."""

from __future__ import annotations

import io
import uuid
from datetime import date, timedelta

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image
from sqlalchemy.orm import Session

from photomatch.accounts.service import create_photographer
from photomatch.config import Settings
from photomatch.db import commit
from photomatch.events.service import create_event
from photomatch.lifecycle import delete_event, enforce_retention
from photomatch.models import Event, Face, FaceTombstone, Photo
from photomatch.photos import ingest
from photomatch.photos.repository import faces as face_rows
from photomatch.photos.thumbnails import thumbnail_keys
from photomatch.storage import Storage
from tests.support.transactions import boundary

TABLES = {"photos": Photo, "faces": Face, "face_tombstones": FaceTombstone}


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest) -> Storage:
    return request.getfixturevalue("local_storage" if request.param == "local" else "s3_storage")  # type: ignore[no-any-return]


def jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG")
    return out.getvalue()


def unit(seed: int) -> list[float]:
    v = np.random.default_rng(seed).normal(size=128)
    return list(v / np.linalg.norm(v))


def album(session: Session, storage: Storage, name: str, seed: int) -> Event:
    """An event with two photos, their thumbnails, a face each and one opt-out tombstone."""
    photographer, _ = create_photographer(session, name, f"{name}-{uuid.uuid4().hex[:6]}@example.com")
    event = create_event(session, photographer, name, settings=Settings(environment="test"))
    for i in range(2):
        photo_id = ingest.ingest_stream(
            session, storage, event, io.BytesIO(jpeg(seed + i)), filename=f"{i}.jpg"
        ).photo_id
        assert photo_id is not None
        for key in thumbnail_keys(event.id, photo_id):
            storage.put(key, b"thumb", "image/jpeg")
        face = {
            "photo_id": photo_id, "event_id": event.id, "box": [0, 0, 10, 10], "landmarks": [0.0] * 10,
            "probability": 0.99, "size_px": 10, "sharpness": 50.0, "model": event.embedder,
            "embedding": unit(seed + i),
        }  # fmt: skip
        face_rows.replace_faces(session, photo_id, [face])
        session.execute(sa.update(Photo).where(Photo.id == photo_id).values(status="done", face_count=1))
    session.add(FaceTombstone(event_id=event.id, photo_id=photo_id, model=event.embedder, embedding=unit(seed + 9)))
    session.flush()
    return event


def rows(session: Session, event_id: uuid.UUID) -> dict[str, int]:
    counts = {name: session.scalar(sa.select(sa.func.count()).select_from(t).where(t.event_id == event_id)) or 0
              for name, t in TABLES.items()}  # fmt: skip
    counts["events"] = session.scalar(sa.select(sa.func.count()).select_from(Event).where(Event.id == event_id)) or 0
    return counts


def test_deleting_an_event_removes_every_row_and_object_it_owns(db_session: Session, storage: Storage) -> None:
    doomed, kept = album(db_session, storage, "doomed", 0), album(db_session, storage, "kept", 10)
    assert rows(db_session, doomed.id) == {"photos": 2, "faces": 2, "face_tombstones": 1, "events": 1}
    kept_keys = set(storage.list_keys(f"events/{kept.id}/"))
    assert len(list(storage.list_keys(f"events/{doomed.id}/"))) == 6  # 2 originals + 4 thumbnails

    doomed_id = doomed.id
    delete_event(db_session, storage, doomed)
    assert rows(db_session, doomed_id) == {"photos": 0, "faces": 0, "face_tombstones": 0, "events": 0}
    # The files go only once the boundary commits: a rolled-back deletion keeps them.
    assert len(list(storage.list_keys(f"events/{doomed_id}/"))) == 6
    commit(db_session)
    assert list(storage.list_keys(f"events/{doomed_id}/")) == []
    assert rows(db_session, kept.id) == {"photos": 2, "faces": 2, "face_tombstones": 1, "events": 1}
    assert set(storage.list_keys(f"events/{kept.id}/")) == kept_keys


def test_retention_deletes_faces_on_the_date_and_photos_after_the_grace(db_session: Session, storage: Storage) -> None:
    expired, current = album(db_session, storage, "expired", 20), album(db_session, storage, "current", 30)
    today = date.today()
    db_session.execute(sa.update(Event).where(Event.id == expired.id).values(retention_until=today - timedelta(days=1)))
    db_session.execute(
        sa.update(Event).where(Event.id == current.id).values(retention_until=today + timedelta(days=100))
    )

    first = enforce_retention(boundary(db_session), storage, today=today, photo_grace_days=30)
    assert first.faces_purged == [expired.id] and first.photos_purged == []
    assert rows(db_session, expired.id) == {"photos": 2, "faces": 0, "face_tombstones": 0, "events": 1}
    assert len(list(storage.list_keys(f"events/{expired.id}/"))) == 6  # the photographer still has the photos

    later = enforce_retention(boundary(db_session), storage, today=today + timedelta(days=31), photo_grace_days=30)
    assert later.photos_purged == [expired.id]
    assert rows(db_session, expired.id) == {"photos": 0, "faces": 0, "face_tombstones": 0, "events": 1}
    assert list(storage.list_keys(f"events/{expired.id}/")) == []
    # The current event was never touched; a rerun finds nothing to do.
    assert rows(db_session, current.id) == {"photos": 2, "faces": 2, "face_tombstones": 1, "events": 1}
    assert (
        enforce_retention(
            boundary(db_session), storage, today=today + timedelta(days=31), photo_grace_days=30
        ).faces_purged
        == []
    )
