"""An event created without a second embedder gains one: what is queued, embedded, stored and failed.

Real Postgres and storage; the face engine is a small fake whose vector depends on the landmarks it
is given, so the test sees that each face is embedded from its own stored landmarks. The real
engine runs in tests/workers/test_ingest_pipeline.py.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image
from sqlalchemy.orm import Session

from photomatch.accounts.service import create_photographer
from photomatch.config import Settings
from photomatch.events.service import create_event
from photomatch.faces.types import Detection, Face
from photomatch.models import Event, Photo, Photographer, PhotoStatus
from photomatch.models import Face as FaceRow
from photomatch.photos import ingest, processing, second_embedder, service
from photomatch.photos.second_embedder import SecondEmbedderError
from photomatch.storage import LocalStorage

FIRST, SECOND = "dlib-resnet-v1", "sface-2021dec-int8bq"


def jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG")
    return out.getvalue()


def unit(i: int) -> np.ndarray:
    v = np.zeros(128, dtype=np.float32)
    v[i % 128] = 1.0
    return v


def vector(stored: Any) -> np.ndarray:
    return np.asarray(stored.to_numpy() if hasattr(stored, "to_numpy") else stored, dtype=np.float32)


class FirstModelOnly:
    """Processing before the second embedder: two faces per photo, the first model's vectors alone."""

    model_name = FIRST

    def analyze(self, images: Sequence[Any], *, embed: bool = True) -> list[list[Face]]:
        out = []
        for k, _ in enumerate(images):
            faces = []
            for j in range(2):
                x = 3.0 + 10 * j + k
                det = Detection(
                    (x, 2.0, x + 9, 14.0), ((x, 4.0), (x + 4, 4.0), (x + 2, 7.0), (x, 10.0), (x + 4, 10.0)), 0.99
                )
                faces.append(Face(det, 5.0, unit(j), FIRST, detector="mtcnn"))
            out.append(faces)
        return out


class SecondModel:
    """The second model as an engine's only embedder: the vector encodes the face's first landmark."""

    model_name = SECOND

    def __init__(self) -> None:
        self.faces = 0

    def embed_faces(self, image: Any, faces: Sequence[Face]) -> list[Face]:
        assert image.shape == (40, 60, 3)
        self.faces += len(faces)
        return [Face(f.detection, embedding=unit(int(f.detection.landmarks[0][0])), model=SECOND) for f in faces]


@pytest.fixture
def settings(tmp_path: Any) -> Settings:
    return Settings(environment="test", data_dir=tmp_path / "data", second_embedder="")


@pytest.fixture
def event(db_session: Session, settings: Settings) -> Event:
    photographer, _ = create_photographer(db_session, "Ann", f"ann-{uuid.uuid4().hex[:8]}@example.com")
    return create_event(db_session, photographer, "Old wedding", settings=settings)


def processed(session: Session, storage: LocalStorage, event: Event, n: int) -> list[uuid.UUID]:
    ids = [
        ingest.ingest_stream(session, storage, event, io.BytesIO(jpeg(i)), filename=f"{i}.jpg").photo_id
        for i in range(n)
    ]
    claimed = processing.claim_photos(session, [i for i in ids if i], max_attempts=5)
    assert {c.embedder for c in claimed} == {(FIRST, "")}
    processing.save_outcomes(session, processing.analyze_photos(claimed, storage, lambda _: FirstModelOnly()))
    return [i for i in ids if i]


def test_fusing_an_old_event_fills_in_each_face_from_its_own_landmarks(
    db_session: Session, local_storage: LocalStorage, event: Event, settings: Settings
) -> None:
    assert event.second_embedder is None
    ids = processed(db_session, local_storage, event, 3)
    assert service.event_status(db_session, event).second_embedding_pending == 0  # nothing asked yet

    assert second_embedder.add_second_embedder(db_session, event, SECOND, settings=settings) == 3
    db_session.refresh(event)
    assert event.second_embedder == SECOND
    assert service.event_status(db_session, event).second_embedding_pending == 3

    model = SecondModel()
    pending = second_embedder.load_pending(db_session, ids[:2])
    assert [(p.id, p.model, len(p.faces)) for p in pending] == [(i, SECOND, 2) for i in sorted(ids[:2])]
    embedded = second_embedder.embed_pending(pending, local_storage, lambda models: model)
    assert model.faces == 4 and not embedded.unreadable
    assert second_embedder.save_embedded(db_session, embedded) == (4, [])

    rows = db_session.scalars(sa.select(FaceRow).where(FaceRow.photo_id.in_(ids[:2]))).all()
    for row in rows:
        assert row.second_model == SECOND
        assert int(np.argmax(vector(row.second_embedding))) == int(row.landmarks[0])  # its own landmarks
        assert int(np.argmax(vector(row.embedding))) in (0, 1)  # the first model's vector is untouched
    assert service.event_status(db_session, event).second_embedding_pending == 1
    # A duplicate delivery finds nothing left; fusing again queues only the photo still missing.
    assert second_embedder.load_pending(db_session, ids[:2]) == []
    assert second_embedder.add_second_embedder(db_session, event, SECOND, settings=settings) == 1


def test_a_photo_whose_original_is_gone_fails_with_the_reason_instead_of_blocking_the_event(
    db_session: Session, local_storage: LocalStorage, event: Event, settings: Settings
) -> None:
    ids = processed(db_session, local_storage, event, 2)
    second_embedder.add_second_embedder(db_session, event, SECOND, settings=settings)
    gone = db_session.get(Photo, ids[0])
    assert gone is not None
    local_storage.delete(gone.storage_key)
    pending = second_embedder.load_pending(db_session, ids)
    embedded = second_embedder.embed_pending(pending, local_storage, lambda models: SecondModel())
    assert second_embedder.save_embedded(db_session, embedded) == (2, [ids[0]])
    db_session.expire_all()
    gone = db_session.get(Photo, ids[0])
    assert gone is not None and gone.status == PhotoStatus.FAILED and gone.face_count is None
    assert gone.failure_reason is not None and gone.failure_reason.startswith("missing_original: ")
    assert db_session.scalar(sa.select(sa.func.count()).where(FaceRow.photo_id == ids[0])) == 0
    assert service.event_status(db_session, event).second_embedding_pending == 0


def test_the_reconciler_finds_what_is_missing_across_events_and_only_where_one_was_asked_for(
    db_session: Session, local_storage: LocalStorage, event: Event, settings: Settings
) -> None:
    ids = processed(db_session, local_storage, event, 2)
    owner = db_session.get(Photographer, event.photographer_id)
    assert owner is not None
    other = create_event(db_session, owner, "Untouched", settings=settings)
    processed(db_session, local_storage, other, 1)
    assert second_embedder.requeue_missing(db_session) == []  # no event asked for a second model
    second_embedder.add_second_embedder(db_session, event, SECOND, settings=settings)
    assert sorted(second_embedder.requeue_missing(db_session)) == sorted(ids)
    assert [e.slug for e in second_embedder.events_to_fuse(db_session)] == [other.slug]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": "arcface-someday"}, "no fused calibration"),
        (
            {"embedder": "facenet-vggface2"},
            "facenet-vggface2: it cannot be searched \\(calibrated: dlib-resnet-v1\\+sface",
        ),
        ({"second": "other-model"}, "already fuses other-model"),
        ({"model": "", "site": ""}, "no second embedder"),
    ],
)
def test_an_event_that_cannot_take_the_model_says_why_and_keeps_its_state(
    db_session: Session, event: Event, settings: Settings, change: dict[str, str], message: str
) -> None:
    event.embedder = change.get("embedder", event.embedder)
    event.second_embedder = change.get("second", event.second_embedder)
    site = settings.model_copy(update={"second_embedder": change.get("site", SECOND)})
    before = (event.embedder, event.second_embedder)
    with pytest.raises(SecondEmbedderError, match=message):
        second_embedder.add_second_embedder(db_session, event, change.get("model", SECOND) or None, settings=site)
    assert (event.embedder, event.second_embedder) == before
