"""The orphan sweep deletes objects no photo row points to, once past the grace period, and nothing else."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from PIL import Image
from sqlalchemy.orm import Session

from photomatch.accounts.service import create_photographer
from photomatch.config import Settings
from photomatch.events.service import create_event
from photomatch.photos import ingest
from photomatch.photos.orphans import sweep_orphans
from photomatch.photos.thumbnails import thumbnail_keys
from photomatch.storage import Storage


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest) -> Storage:
    fixture = "local_storage" if request.param == "local" else "s3_storage"
    return request.getfixturevalue(fixture)  # type: ignore[no-any-return]


def jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG")
    return out.getvalue()


def test_sweep_deletes_only_old_unreferenced_objects(db_session: Session, storage: Storage, tmp_path: object) -> None:
    photographer, _ = create_photographer(db_session, "Ann", f"ann-{uuid.uuid4().hex[:8]}@example.com")
    event = create_event(db_session, photographer, "Wedding", settings=Settings(environment="test"))
    kept = ingest.ingest_stream(db_session, storage, event, io.BytesIO(jpeg(1)), filename="kept.jpg")
    assert kept.photo_id is not None
    small, medium = thumbnail_keys(event.id, kept.photo_id)
    storage.put(small, b"s", "image/jpeg")  # a thumbnail rendered, its row not yet updated: an orphan too
    db_session.flush()

    # What a request that failed after writing leaves behind: an original and thumbnails without a row.
    lost_id = uuid.uuid4()
    lost = [f"events/{event.id}/originals/{lost_id}.jpg", *thumbnail_keys(event.id, lost_id)]
    for key in lost:
        storage.put(key, b"half an upload", "image/jpeg")
    foreign = ["imports/wedding/IMG_0001.jpg", f"events/{event.id}/notes.txt"]  # not ours to judge
    for key in foreign:
        storage.put(key, b"x", "text/plain")
    before = set(storage.list_keys())

    # Within the grace period nothing goes, whatever its state.
    assert sweep_orphans(db_session, storage, grace_seconds=3600).deleted == []
    assert set(storage.list_keys()) == before

    later = datetime.now(UTC) + timedelta(hours=2)
    result = sweep_orphans(db_session, storage, grace_seconds=3600, now=later)
    assert sorted(result.deleted) == sorted([*lost, small])
    assert result.scanned == 5  # kept original, its small thumbnail, the three lost objects
    remaining = set(storage.list_keys())
    assert remaining == before - {*lost, small}
    assert storage.get_bytes(f"events/{event.id}/originals/{kept.photo_id}.jpg") == jpeg(1)
    assert medium not in remaining  # never written
    # Idempotent.
    assert sweep_orphans(db_session, storage, grace_seconds=3600, now=later).deleted == []
