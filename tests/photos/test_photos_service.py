"""Photo ingest, processing bookkeeping, status, retry and the reconciler, on real Postgres and storage.

The face engine is replaced by a tiny deterministic analyzer here (the real one runs in
tests/workers/test_ingest_pipeline.py); everything else is real.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import threading
import uuid
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image
from sqlalchemy.orm import Session

from photomatch.accounts.service import create_photographer
from photomatch.config import Settings
from photomatch.events.service import create_event
from photomatch.faces.types import Detection, Face
from photomatch.models import Event, Photo, PhotoStatus, WorkerLease
from photomatch.models import Face as FaceRow
from photomatch.photos import ingest as photo_ingest
from photomatch.photos import processing, service
from photomatch.photos.ingest import Outcome, PhotoError
from photomatch.photos.leases import Lease
from photomatch.photos.repository import leases as lease_rows
from photomatch.storage import LocalStorage, NotSupported, ObjectNotFound, S3Storage, Storage

MODEL = "dlib-resnet-v1"
SECOND = "sface-2021dec-int8bq"


def image_bytes(fmt: str = "JPEG", size: tuple[int, int] = (64, 48), seed: int = 0) -> bytes:
    """A small image whose pixels (hence bytes and sha256) depend on `seed`."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture
def settings(tmp_path: Any) -> Settings:
    return Settings(environment="test", data_dir=tmp_path / "data")


@pytest.fixture
def event(db_session: Session, settings: Settings) -> Event:
    photographer, _ = create_photographer(db_session, "Ann", f"ann-{uuid.uuid4().hex[:8]}@example.com")
    return create_event(db_session, photographer, "Wedding", settings=settings)


def ingest(
    session: Session, storage: Storage, event: Event, data: bytes, name: str = "a.jpg"
) -> photo_ingest.IngestResult:
    return photo_ingest.ingest_stream(session, storage, event, io.BytesIO(data), filename=name)


def photo(session: Session, photo_id: uuid.UUID | None) -> Photo:
    assert photo_id is not None
    session.expire_all()
    found = session.get(Photo, photo_id)
    assert found is not None
    return found


# --- ingest ------------------------------------------------------------------------------------


def test_ingest_streams_hashes_and_skips_duplicates(
    db_session: Session, local_storage: LocalStorage, event: Event, settings: Settings
) -> None:
    data = image_bytes()
    first = ingest(db_session, local_storage, event, data, "dir/IMG_1.JPG")
    assert first.outcome == Outcome.CREATED
    row = photo(db_session, first.photo_id)
    assert row.storage_key == f"events/{event.id}/originals/{row.id}.jpg"
    assert row.sha256 == hashlib.sha256(data).hexdigest() and row.size_bytes == len(data)
    assert (row.status, row.attempts, row.face_count) == (PhotoStatus.UPLOADED, 0, None)
    assert row.original_filename == "IMG_1.JPG"
    assert local_storage.get_bytes(row.storage_key) == data

    again = ingest(db_session, local_storage, event, data, "copy.jpg")
    assert (again.outcome, again.photo_id, again.reason) == (Outcome.DUPLICATE, first.photo_id, "duplicate")
    # The second copy's object was removed: only the first original is stored.
    assert list(local_storage.list_keys(f"events/{event.id}/originals/")) == [row.storage_key]

    other_event = create_event(db_session, _owner(db_session, event), "Party", settings=settings)
    elsewhere = ingest(db_session, local_storage, other_event, data)
    assert elsewhere.outcome == Outcome.CREATED and elsewhere.photo_id != first.photo_id


def _owner(session: Session, event: Event) -> Any:
    from photomatch.models import Photographer

    return session.get(Photographer, event.photographer_id)


def test_the_door_checks_bytes_not_names(db_session: Session, local_storage: LocalStorage, event: Event) -> None:
    png = ingest(db_session, local_storage, event, image_bytes("PNG"), "looks-like.jpg")
    webp = ingest(db_session, local_storage, event, image_bytes("WEBP", seed=1), "x.webp")
    assert photo(db_session, png.photo_id).content_type == "image/png"
    assert photo(db_session, png.photo_id).storage_key.endswith(".png")
    assert photo(db_session, webp.photo_id).content_type == "image/webp"

    text = ingest(db_session, local_storage, event, b"hello, I am not a photo", "photo.jpg")
    empty = ingest(db_session, local_storage, event, b"", "empty.jpg")
    assert (text.outcome, text.reason) == (Outcome.REJECTED, "unsupported_format")
    assert (empty.outcome, empty.reason) == (Outcome.REJECTED, "empty_file")

    # A truncated JPEG has the right signature: it passes the door and fails in the worker.
    truncated = ingest(db_session, local_storage, event, image_bytes(seed=2)[:300], "cut.jpg")
    assert truncated.outcome == Outcome.CREATED
    assert len(list(local_storage.list_keys(f"events/{event.id}/"))) == 3


@pytest.mark.parametrize("backend", ["local_storage", "s3_storage"])
def test_oversized_upload_is_rejected_and_not_kept(
    db_session: Session, event: Event, tmp_path: Any, backend: str, request: pytest.FixtureRequest
) -> None:
    storage: Storage = request.getfixturevalue(backend)
    small_limit = Settings(environment="test", data_dir=tmp_path / "d", max_image_bytes=100_000)
    data = image_bytes(size=(1200, 1200))
    assert len(data) > 100_000
    stream = io.BytesIO(data)
    result = photo_ingest.ingest_stream(db_session, storage, event, stream, filename="big.jpg", settings=small_limit)
    assert (result.outcome, result.reason) == (Outcome.REJECTED, "image_too_large")
    assert list(storage.list_keys("events/")) == []
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Photo)) == 0


# --- presigned uploads and imports (S3 over HTTP) ----------------------------------------------


def test_presigned_upload_then_commit(db_session: Session, s3_storage: S3Storage, event: Event) -> None:
    data = image_bytes(seed=3)
    up = photo_ingest.presign_upload(s3_storage, event, "IMG_9.jpg", "image/jpeg", expires=300)
    assert up.key.startswith(f"events/{event.id}/originals/") and up.method == "PUT"
    assert httpx.put(up.url, content=data, headers=up.headers).status_code == 200

    committed = photo_ingest.commit_upload(db_session, s3_storage, event, up.key, filename="IMG_9.jpg")
    assert committed.outcome == Outcome.CREATED
    row = photo(db_session, committed.photo_id)
    # The photo keeps the key it was uploaded to; its id is the one embedded in the key.
    assert row.storage_key == up.key and str(row.id) in up.key
    assert row.sha256 == hashlib.sha256(data).hexdigest()

    repeated = photo_ingest.commit_upload(db_session, s3_storage, event, up.key)
    assert (repeated.outcome, repeated.photo_id) == (Outcome.DUPLICATE, row.id)
    assert s3_storage.exists(up.key)

    second = photo_ingest.presign_upload(s3_storage, event, "same-bytes.jpg", None, expires=300)
    httpx.put(second.url, content=data, headers=second.headers).raise_for_status()
    dup = photo_ingest.commit_upload(db_session, s3_storage, event, second.key)
    assert (dup.outcome, dup.photo_id) == (Outcome.DUPLICATE, row.id)
    assert not s3_storage.exists(second.key)

    never = photo_ingest.presign_upload(s3_storage, event, "never.png", None, expires=300)
    assert photo_ingest.commit_upload(db_session, s3_storage, event, never.key).reason == "not_uploaded"
    foreign = f"events/{uuid.uuid4()}/originals/{uuid.uuid4()}.jpg"
    assert photo_ingest.commit_upload(db_session, s3_storage, event, foreign).reason == "invalid_key"

    not_image = photo_ingest.presign_upload(s3_storage, event, "notes.jpg", None, expires=300)
    httpx.put(not_image.url, content=b"plain text", headers=not_image.headers).raise_for_status()
    assert photo_ingest.commit_upload(db_session, s3_storage, event, not_image.key).reason == "unsupported_format"
    assert not s3_storage.exists(not_image.key)


def test_presign_refuses_other_formats_and_local_storage(
    s3_storage: S3Storage, local_storage: LocalStorage, db_session: Session, event: Event
) -> None:
    with pytest.raises(PhotoError) as err:
        photo_ingest.presign_upload(s3_storage, event, "raw.cr2", "image/x-canon-cr2", expires=60)
    assert err.value.reason == "unsupported_format"
    with pytest.raises(NotSupported):
        photo_ingest.presign_upload(local_storage, event, "a.jpg", "image/jpeg", expires=60)


def test_import_copies_every_image_under_a_prefix(db_session: Session, s3_storage: S3Storage, event: Event) -> None:
    sources = {"imports/party/a.jpg": image_bytes(seed=4), "imports/party/sub/b.PNG": image_bytes("PNG", seed=5)}
    for key, data in sources.items():
        s3_storage.put(key, data, "application/octet-stream")
    s3_storage.put("imports/party/notes.txt", b"not a photo", "text/plain")
    s3_storage.put("imports/other/c.jpg", image_bytes(seed=6), "image/jpeg")

    keys = photo_ingest.importable_keys(s3_storage, "imports/party/")
    assert keys == sorted(sources)
    results = [photo_ingest.import_object(db_session, s3_storage, event, key) for key in keys]
    assert [r.outcome for r in results] == [Outcome.CREATED, Outcome.CREATED]
    for result, (key, data) in zip(results, sorted(sources.items()), strict=True):
        row = photo(db_session, result.photo_id)
        # Copied into the event's own originals; the source is left alone.
        assert row.storage_key.startswith(f"events/{event.id}/originals/")
        assert s3_storage.get_bytes(row.storage_key) == data and s3_storage.exists(key)
        assert row.original_filename == key.rsplit("/", 1)[1]

    again = [photo_ingest.import_object(db_session, s3_storage, event, key) for key in keys]
    assert [r.outcome for r in again] == [Outcome.DUPLICATE, Outcome.DUPLICATE]
    assert len(list(s3_storage.list_keys(f"events/{event.id}/"))) == 2

    for bad in ("events/", f"events/{event.id}/originals/", "", "a/../events/"):
        with pytest.raises(PhotoError):
            photo_ingest.importable_keys(s3_storage, bad)


# --- processing (with a stand-in analyzer) -----------------------------------------------------


class FakeAnalyzer:
    """One face per image whose embedding encodes the image width; raises on images `poison` wide."""

    model_name = MODEL

    def __init__(self, poison: int | None = None) -> None:
        self.poison = poison
        self.calls: list[int] = []

    def analyze(self, images: Sequence[Any], *, embed: bool = True) -> list[list[Face]]:
        self.calls.append(len(images))
        out = []
        for img in images:
            h, w = img.shape[:2]
            if w == self.poison:
                raise RuntimeError("engine cannot cope with this image")
            vector = np.zeros(128, dtype=np.float32)
            vector[w % 128] = 1.0
            second = np.roll(vector, 1)  # the second model's vector: another unit vector
            det = Detection((1.0, 2.0, 11.0, 14.0), ((3.0, 4.0),) * 5, 0.99)
            out.append([Face(det, 5.0, vector, MODEL, second_embedding=second, second_model=SECOND, detector="mtcnn")])
        return out


def process(session: Session, storage: Storage, ids: list[uuid.UUID], analyzer: FakeAnalyzer) -> None:
    claimed = processing.claim_photos(session, ids, max_attempts=5)
    outcomes = processing.analyze_photos(claimed, storage, lambda name: analyzer)
    processing.save_outcomes(session, outcomes)


def test_a_batch_of_big_photos_is_analysed_in_chunks_under_the_pixel_budget(
    db_session: Session, local_storage: LocalStorage, event: Event
) -> None:
    ids = [ingest(db_session, local_storage, event, image_bytes(size=(100, 100), seed=i)).photo_id for i in range(7)]
    claimed = processing.claim_photos(db_session, [i for i in ids if i is not None], max_attempts=5)
    analyzer = FakeAnalyzer()
    # 25,000 pixels per call: two 10,000-pixel photos fit, a third would not.
    outcomes = processing.analyze_photos(claimed, local_storage, lambda name: analyzer, max_pixels=25_000)
    assert analyzer.calls == [2, 2, 2, 1]
    assert [len(o.faces) for o in outcomes] == [1] * 7 and all(o.failure is None for o in outcomes)
    # A single photo above the budget is still analysed, alone.
    analyzer = FakeAnalyzer()
    processing.analyze_photos(claimed[:3], local_storage, lambda name: analyzer, max_pixels=5_000)
    assert analyzer.calls == [1, 1, 1]


class SlowStorage:
    """Storage whose first `together` reads wait until that many are in flight at once (or time out)."""

    def __init__(self, storage: Storage, together: int) -> None:
        self.storage, self.gate = storage, threading.Barrier(together, timeout=10)
        self.missing: set[str] = set()
        self.waiting, self.lock = together, threading.Lock()

    def __getattr__(self, name: str) -> Any:  # put (thumbnails) and the rest: the real storage's
        return getattr(self.storage, name)

    def get_bytes(self, key: str) -> bytes:
        with self.lock:
            self.waiting -= 1
            wait = self.waiting >= 0
        if wait:
            with contextlib.suppress(threading.BrokenBarrierError):
                self.gate.wait()
        if key in self.missing:
            raise ObjectNotFound(key)
        return self.storage.get_bytes(key)


def test_a_batch_reads_its_originals_concurrently_and_in_order(
    db_session: Session, local_storage: LocalStorage, event: Event
) -> None:
    ids = [ingest(db_session, local_storage, event, image_bytes(size=(50 + i, 40), seed=i)).photo_id for i in range(6)]
    claimed = processing.claim_photos(db_session, [i for i in ids if i is not None], max_attempts=5)
    slow = SlowStorage(local_storage, together=4)  # one read at a time would break the barrier
    slow.missing.add(claimed[2].storage_key)
    outcomes = processing.analyze_photos(claimed, slow, lambda name: FakeAnalyzer())  # type: ignore[arg-type]
    assert not slow.gate.broken
    assert [o.photo_id for o in outcomes] == [c.id for c in claimed]
    assert [o.width for o in outcomes] == [50, 51, None, 53, 54, 55]
    assert outcomes[2].failure is not None and outcomes[2].failure.startswith("missing_original")


def test_processing_saves_faces_and_fails_only_the_corrupt_photo(
    db_session: Session, local_storage: LocalStorage, event: Event
) -> None:
    good = [ingest(db_session, local_storage, event, image_bytes(size=(60 + i, 40), seed=i)).photo_id for i in range(3)]
    bad = ingest(db_session, local_storage, event, image_bytes(seed=9)[:200], "cut.jpg").photo_id
    ids = [i for i in [*good, bad] if i is not None]

    claimed = processing.claim_photos(db_session, ids, max_attempts=5)
    assert {c.id for c in claimed} == set(ids) and {c.embedder for c in claimed} == {(MODEL, SECOND)}
    assert photo(db_session, bad).status == PhotoStatus.PROCESSING and photo(db_session, bad).attempts == 1
    analyzer = FakeAnalyzer()
    outcomes = processing.analyze_photos(claimed, local_storage, lambda name: analyzer)
    assert analyzer.calls == [3]  # the decodable photos in one engine call
    processing.save_outcomes(db_session, outcomes)

    failed = photo(db_session, bad)
    assert failed.status == PhotoStatus.FAILED and failed.failure_reason is not None
    assert failed.failure_reason.startswith("corrupt_image: ")
    for i, photo_id in enumerate(good):
        row = photo(db_session, photo_id)
        assert (row.status, row.face_count, row.width, row.height) == (PhotoStatus.DONE, 1, 60 + i, 40)
        assert row.processed_at is not None and row.processing_started_at is not None
    faces = db_session.scalars(sa.select(FaceRow).order_by(FaceRow.id)).all()
    assert len(faces) == 3 and {f.event_id for f in faces} == {event.id}
    assert faces[0].box == [1.0, 2.0, 11.0, 14.0] and len(faces[0].landmarks) == 10 and faces[0].size_px == 10
    assert int(np.argmax(faces[0].embedding)) == 60
    assert faces[0].second_model == SECOND and int(np.argmax(faces[0].second_embedding)) == 61

    # A second delivery of the same batch finds nothing left to claim...
    assert processing.claim_photos(db_session, ids, max_attempts=5) == []
    # ...and saving the same outcomes twice (two racing runs) still leaves one set of faces.
    processing.save_outcomes(db_session, outcomes)
    assert db_session.scalar(sa.select(sa.func.count()).select_from(FaceRow)) == 3


class SmallFaceAnalyzer(FakeAnalyzer):
    """FakeAnalyzer's face, and beside it one found but too small to identify (no vector)."""

    def analyze(self, images: Sequence[Any], *, embed: bool = True) -> list[list[Face]]:
        tiny = Face(Detection((30.0, 30.0, 36.0, 38.0), ((32.0, 33.0),) * 5, 0.8), 2.0, detector="mtcnn")
        return [[*faces, tiny] for faces in super().analyze(images, embed=embed)]


def test_faces_too_small_to_identify_are_counted_not_stored(
    db_session: Session, local_storage: LocalStorage, event: Event
) -> None:
    ids = [ingest(db_session, local_storage, event, image_bytes(size=(80 + i, 40), seed=i)).photo_id for i in range(2)]
    claimed = processing.claim_photos(db_session, [i for i in ids if i is not None], max_attempts=5)
    outcomes = processing.analyze_photos(claimed, local_storage, lambda name: SmallFaceAnalyzer())
    assert [(len(o.faces), o.too_small) for o in outcomes] == [(1, 1), (1, 1)]
    processing.save_outcomes(db_session, outcomes)
    for photo_id in ids:
        assert photo(db_session, photo_id).status == PhotoStatus.DONE and photo(db_session, photo_id).face_count == 1
    faces = db_session.scalars(sa.select(FaceRow)).all()
    assert len(faces) == 2 and all(f.size_px == 10 for f in faces)


def test_one_photo_that_breaks_the_engine_does_not_sink_its_batch(
    db_session: Session, local_storage: LocalStorage, event: Event
) -> None:
    ids = [ingest(db_session, local_storage, event, image_bytes(size=(70 + i, 40), seed=i)).photo_id for i in range(3)]
    analyzer = FakeAnalyzer(poison=71)
    process(db_session, local_storage, [i for i in ids if i], analyzer)
    assert analyzer.calls == [3, 1, 1, 1]
    statuses = [photo(db_session, i).status for i in ids]
    assert statuses == [PhotoStatus.DONE, PhotoStatus.FAILED, PhotoStatus.DONE]
    assert (photo(db_session, ids[1]).failure_reason or "").startswith("analysis_error: RuntimeError")

    # When every photo fails alone too, the worker is broken, not the photos: the error propagates.
    more = [ingest(db_session, local_storage, event, image_bytes(size=(71, 40), seed=10 + i)) for i in range(2)]
    claimed = processing.claim_photos(db_session, [r.photo_id for r in more if r.photo_id], max_attempts=5)
    with pytest.raises(RuntimeError):
        processing.analyze_photos(claimed, local_storage, lambda name: FakeAnalyzer(poison=71))


def test_photos_out_of_attempts_fail_instead_of_looping(
    db_session: Session, local_storage: LocalStorage, event: Event
) -> None:
    photo_id = ingest(db_session, local_storage, event, image_bytes()).photo_id
    assert photo_id is not None
    for attempt in range(1, 4):
        assert len(processing.claim_photos(db_session, [photo_id], max_attempts=3)) == 1  # the worker "dies"
        assert photo(db_session, photo_id).attempts == attempt
    assert processing.claim_photos(db_session, [photo_id], max_attempts=3) == []
    row = photo(db_session, photo_id)
    assert row.status == PhotoStatus.FAILED and (row.failure_reason or "").startswith("too_many_attempts")


def test_thumbnails_are_small_and_medium_jpegs(db_session: Session, local_storage: LocalStorage, event: Event) -> None:
    big = ingest(db_session, local_storage, event, image_bytes(size=(2000, 1500))).photo_id
    tiny = ingest(db_session, local_storage, event, image_bytes(size=(100, 80), seed=1)).photo_id
    assert big is not None and tiny is not None
    assert processing.make_thumbnails(db_session, local_storage, [big, tiny]) == 2
    row = photo(db_session, big)
    assert row.thumb_small_key == f"events/{event.id}/thumbs/{big}-s.jpg"
    keys = (row.thumb_small_key, row.thumb_medium_key)
    sizes = [Image.open(io.BytesIO(local_storage.get_bytes(k or ""))).size for k in keys]
    assert sizes == [(256, 192), (1024, 768)]
    small_tiny = photo(db_session, tiny).thumb_small_key
    assert small_tiny is not None and Image.open(io.BytesIO(local_storage.get_bytes(small_tiny))).size == (100, 80)
    assert processing.make_thumbnails(db_session, local_storage, [big, tiny]) == 0  # already made


# --- status, failures, retry, reconciler -------------------------------------------------------


def _set(session: Session, ids: list[uuid.UUID | None], **values: Any) -> None:
    session.execute(sa.update(Photo).where(Photo.id.in_([i for i in ids if i])).values(**values))
    session.expire_all()


def _ago(seconds: float) -> Any:
    return sa.func.now() - sa.text(f"interval '{seconds} seconds'")


def test_a_dead_workers_batch_is_taken_back_at_once_and_a_live_workers_is_not(
    db_session: Session, local_storage: LocalStorage, event: Event, settings: Settings
) -> None:
    ids = [ingest(db_session, local_storage, event, image_bytes(seed=i)).photo_id for i in range(4)]
    dead_batch, live_batch, slow_live_batch, unleased = ids
    dead, _ = lease_rows.register(db_session, "faces@dead-host")
    live, _ = lease_rows.register(db_session, "faces@live-host")
    silent = settings.worker_lease_seconds + 5
    db_session.execute(sa.update(WorkerLease).where(WorkerLease.id == dead).values(heartbeat_at=_ago(silent)))
    claimed = {"status": PhotoStatus.PROCESSING, "attempts": 1}
    _set(db_session, [dead_batch], **claimed, processing_started_at=_ago(20), claimed_by=dead)
    _set(db_session, [live_batch], **claimed, processing_started_at=_ago(20), claimed_by=live)
    # A slow batch of a live worker, past the old fixed window: taking it back would do it twice.
    _set(db_session, [slow_live_batch], **claimed, processing_started_at=_ago(900), claimed_by=live)
    _set(db_session, [unleased], **claimed, processing_started_at=_ago(20))  # a worker older than leases

    bounds = service.staleness(settings)
    result = service.reconcile(db_session, older_than_seconds=bounds, max_attempts=5, include_uploaded=False)
    assert result.requeued == [dead_batch]
    assert photo(db_session, dead_batch).claimed_by is None
    assert {photo(db_session, i).status for i in (live_batch, slow_live_batch, unleased)} == {PhotoStatus.PROCESSING}
    # A live worker that holds a batch past the hung bound is stuck, not slow; a claim without a
    # lease keeps the time bound.
    _set(db_session, [slow_live_batch], processing_started_at=_ago(settings.claim_hung_seconds + 5))
    _set(db_session, [unleased], processing_started_at=_ago(settings.reconcile_after_seconds + 5))
    again = service.reconcile(db_session, older_than_seconds=bounds, max_attempts=5, include_uploaded=False)
    assert sorted(again.requeued) == sorted([slow_live_batch, unleased])
    assert photo(db_session, live_batch).status == PhotoStatus.PROCESSING


def test_a_restarted_worker_takes_back_its_predecessors_batch_as_it_starts(
    db_session: Session, local_storage: LocalStorage, event: Event, settings: Settings
) -> None:
    ids = [ingest(db_session, local_storage, event, image_bytes(seed=i)).photo_id for i in range(3)]
    killed, _ = lease_rows.register(db_session, "faces@host")  # beat a moment ago: not yet silent
    other, _ = lease_rows.register(db_session, "faces@other-host")
    claimed = {"status": PhotoStatus.PROCESSING, "attempts": 1, "processing_started_at": _ago(3)}
    _set(db_session, ids[:2], **claimed, claimed_by=killed)
    _set(db_session, ids[2:], **claimed, claimed_by=other)

    quiet = settings.model_copy(update={"worker_heartbeat_seconds": 3600.0})
    lease = Lease("faces@host", quiet, lambda: contextlib.nullcontext(db_session))
    assert sorted(lease.start()) == sorted(ids[:2])  # the same name again: its predecessor is gone
    assert lease.id not in (killed, other)
    assert photo(db_session, ids[2]).status == PhotoStatus.PROCESSING  # another live worker's batch stays
    lease.stop()
    assert db_session.get(WorkerLease, lease.id) is None  # released: nothing it held waits for the bound


def test_status_counts_rate_and_eta(db_session: Session, local_storage: LocalStorage, event: Event) -> None:
    ids = [ingest(db_session, local_storage, event, image_bytes(seed=i)).photo_id for i in range(16)]
    done, failed, processing_, uploaded = ids[:10], ids[10:11], ids[11:12], ids[12:]
    _set(db_session, done, status=PhotoStatus.DONE, face_count=2, processing_started_at=_ago(20), processed_at=_ago(5))
    _set(db_session, failed, status=PhotoStatus.FAILED, failure_reason="corrupt_image: x", processed_at=_ago(2))
    _set(db_session, processing_, status=PhotoStatus.PROCESSING, processing_started_at=_ago(1))
    st = service.event_status(db_session, event, window_seconds=300)
    assert st.counts == {"uploaded": 4, "processing": 1, "done": 10, "failed": 1}
    assert (st.total, st.faces, st.remaining) == (16, 20, 5)
    # 11 photos finished since the earliest of them started 20 s ago.
    assert st.photos_per_second == pytest.approx(11 / 20, abs=1e-3)
    assert st.eta_seconds == pytest.approx(5 / (11 / 20), abs=0.2)

    # Nothing finished within the window: no rate, and an unknown ETA rather than a stale one.
    _set(db_session, [*done, *failed], processed_at=_ago(3600), processing_started_at=_ago(3700))
    st = service.event_status(db_session, event, window_seconds=300)
    assert (st.photos_per_second, st.eta_seconds) == (0.0, None)
    _set(db_session, [*processing_, *uploaded], status=PhotoStatus.DONE, processed_at=_ago(4000))
    assert service.event_status(db_session, event, window_seconds=300).eta_seconds == 0.0


def test_failed_photos_are_listed_and_retried(db_session: Session, local_storage: LocalStorage, event: Event) -> None:
    ids = [ingest(db_session, local_storage, event, image_bytes(seed=i), f"{i}.jpg").photo_id for i in range(3)]
    _set(db_session, ids[:2], status=PhotoStatus.FAILED, failure_reason="corrupt_image: broken", attempts=5)
    total, page = service.list_failed(db_session, event, limit=1)
    assert total == 2 and len(page) == 1 and page[0].reason == "corrupt_image: broken" and page[0].attempts == 5

    assert service.retry_failed(db_session, event, [ids[0], ids[2]]) == [ids[0]]  # only failed ones
    db_session.expire_all()
    row = photo(db_session, ids[0])
    assert (row.status, row.failure_reason, row.attempts) == (PhotoStatus.UPLOADED, None, 0)
    assert sorted(service.retry_failed(db_session, event)) == [ids[1]]
    assert service.list_failed(db_session, event)[0] == 0


def test_reconciler_requeues_stuck_photos_and_gives_up_after_max_attempts(
    db_session: Session, local_storage: LocalStorage, event: Event
) -> None:
    ids = [ingest(db_session, local_storage, event, image_bytes(seed=i)).photo_id for i in range(6)]
    lost_upload, dead_worker, hopeless, fresh, fresh_processing, done = ids
    _set(db_session, [lost_upload], updated_at=_ago(600))
    _set(db_session, [dead_worker], status=PhotoStatus.PROCESSING, attempts=1, processing_started_at=_ago(600))
    _set(db_session, [hopeless], status=PhotoStatus.PROCESSING, attempts=5, processing_started_at=_ago(600))
    _set(db_session, [fresh_processing], status=PhotoStatus.PROCESSING, attempts=1, processing_started_at=_ago(10))
    _set(db_session, [done], status=PhotoStatus.DONE, face_count=0, processed_at=_ago(600))

    # While the face queue has a backlog, uploaded photos are assumed to be waiting in it.
    partial = service.reconcile(db_session, older_than_seconds=300, max_attempts=5, include_uploaded=False)
    assert (partial.requeued, partial.failed, partial.thumbnails) == ([dead_worker], [hopeless], [done])

    result = service.reconcile(db_session, older_than_seconds=300, max_attempts=5)
    assert result.requeued == [lost_upload] and result.failed == []
    assert photo(db_session, dead_worker).status == PhotoStatus.UPLOADED
    assert (photo(db_session, hopeless).failure_reason or "").startswith("too_many_attempts")
    assert photo(db_session, fresh).status == PhotoStatus.UPLOADED
    assert photo(db_session, fresh_processing).status == PhotoStatus.PROCESSING
    # Re-queued photos count as freshly queued: the next run leaves them alone for another bound.
    assert service.reconcile(db_session, older_than_seconds=300, max_attempts=5).requeued == []
