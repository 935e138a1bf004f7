"""The whole pipeline with real services: API -> storage + Postgres -> Redis -> a real Celery worker -> faces.

One worker subprocess (`celery worker -Q faces,cpu --pool=solo`) and one database serve the whole
module; the full dev-faces album (232 identity images + 15 groups) runs once, the other tests use
a handful of photos. Takes a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
import sqlalchemy as sa
from fastapi.testclient import TestClient

from photomatch.config import Settings, get_settings
from photomatch.db import make_engine
from photomatch.imaging import load_image
from photomatch.models import Face, Photo, PhotoStatus
from tests.support.celery_worker import CeleryWorker

pytestmark = pytest.mark.slow

REQUEST_FILES = 32  # files per upload request: two face batches of the default 16
ALBUM_TIMEOUT = 600.0


# --- fixtures: database, worker, API ------------------------------------------------------------


@pytest.fixture(scope="module")
def album(dev_faces: Path) -> list[Path]:
    """Every identity image and group photo."""
    return sorted(p for p in dev_faces.glob("*/*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


@pytest.fixture(scope="module")
def db(settings: Settings) -> Iterator[sa.Engine]:
    engine = make_engine(settings.database_url, pool_size=2)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    """The face engine in this process, to compare the worker's results with direct calls.

    One torch thread here and one in the worker (OMP_NUM_THREADS=1): the engine gains little from a
    second thread on small photos, so the direct run and the worker overlap on the two cores.
    """
    import torch

    from photomatch.faces.engine import FaceEngine

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield FaceEngine(get_settings())
    torch.set_num_threads(threads)


# --- helpers -------------------------------------------------------------------------------------


def new_event(client: TestClient, name: str) -> str:
    response = client.post("/events", json={"name": name})
    assert response.status_code == 201, response.text
    slug: str = response.json()["slug"]
    return slug


def upload(client: TestClient, slug: str, files: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
    """Upload in requests of REQUEST_FILES; the per-file results in order."""
    results: list[dict[str, Any]] = []
    for start in range(0, len(files), REQUEST_FILES):
        chunk = files[start : start + REQUEST_FILES]
        parts = [("files", (name, data, "application/octet-stream")) for name, data in chunk]
        response = client.post(f"/events/{slug}/photos", files=parts)
        assert response.status_code == 200, response.text
        assert response.json()["queued"] is True
        results += response.json()["results"]
    return results


def wait_until(predicate: Callable[[], bool], timeout: float, worker: CeleryWorker, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; worker log:\n{worker.tail()}")
        time.sleep(0.5)


def wait_processed(client: TestClient, slug: str, worker: CeleryWorker, timeout: float = 120) -> dict[str, Any]:
    """Wait until no photo of the event is uploaded or processing; return the final status."""
    status: dict[str, Any] = {}

    def finished() -> bool:
        status.update(client.get(f"/events/{slug}/status").json())
        return status["remaining"] == 0

    wait_until(finished, timeout, worker, f"event {slug} to finish processing")
    return status


def wait_thumbnails(db: sa.Engine, photo_ids: list[str], worker: CeleryWorker) -> None:
    ids = [uuid.UUID(i) for i in photo_ids]

    def done() -> bool:
        with db.connect() as conn:
            missing = conn.scalar(sa.select(sa.func.count()).where(Photo.id.in_(ids), Photo.thumb_small_key.is_(None)))
        return missing == 0

    wait_until(done, 120, worker, "thumbnails")


def photo_rows(db: sa.Engine, photo_ids: list[str]) -> dict[str, Any]:
    with db.connect() as conn:
        rows = conn.execute(sa.select(Photo).where(Photo.id.in_([uuid.UUID(i) for i in photo_ids])))
        return {str(r.id): r for r in rows}


def faces_of(db: sa.Engine, photo_id: str) -> list[Any]:
    with db.connect() as conn:
        rows = conn.execute(sa.select(Face).where(Face.photo_id == uuid.UUID(photo_id)))
        return sorted(rows, key=lambda r: tuple(r.box))


@dataclass
class AlbumRun:
    slug: str
    files: list[tuple[str, bytes]]
    ids: list[str]
    direct: list[tuple[int, int, list[Any]]]  # per file: width, height and the engine's faces


def analyze_directly(engine: Any, paths: list[Path]) -> list[tuple[int, int, list[Any]]]:
    """The engine called directly on the files, in batches like the worker's."""
    out: list[tuple[int, int, list[Any]]] = []
    for start in range(0, len(paths), 16):
        images = [load_image(p) for p in paths[start : start + 16]]
        faces = engine.analyze([img.rgb for img in images])
        out += [(img.width, img.height, f) for img, f in zip(images, faces, strict=True)]
    return out


@pytest.fixture(scope="module")
def album_run(client: TestClient, worker: CeleryWorker, album: list[Path], engine: Any) -> AlbumRun:
    """The dev-faces album uploaded through the API and processed by the worker, once per module."""
    with ThreadPoolExecutor(1) as pool:
        # The direct run overlaps the worker's (see `engine`).
        direct = pool.submit(analyze_directly, engine, album)
        slug = new_event(client, "Dev faces")
        files = [(f"{p.parent.name}-{p.name}", p.read_bytes()) for p in album]
        started = time.monotonic()
        results = upload(client, slug, files)
        assert [r["status"] for r in results] == ["created"] * len(files)
        wait_processed(client, slug, worker, ALBUM_TIMEOUT)
        seconds = time.monotonic() - started
        print(f"\nworker: {len(files)} photos uploaded and processed in {seconds:.1f}s")
        return AlbumRun(slug, files, [r["photo_id"] for r in results], direct.result())


# --- tests ---------------------------------------------------------------------------------------


def test_every_photo_reaches_done_with_the_faces_the_engine_finds(
    album_run: AlbumRun, album: list[Path], client: TestClient, db: sa.Engine, engine: Any, worker: CeleryWorker
) -> None:
    status = client.get(f"/events/{album_run.slug}/status").json()
    n = len(album)
    assert status["counts"] == {"uploaded": 0, "processing": 0, "done": n, "failed": 0}
    assert status["photos_per_second"] > 0 and status["eta_seconds"] == 0

    rows = photo_rows(db, album_run.ids)
    direct_faces = 0
    for path, photo_id, (width, height, faces) in zip(album, album_run.ids, album_run.direct, strict=True):
        row = rows[photo_id]
        assert (row.status, row.width, row.height, row.attempts) == (PhotoStatus.DONE, width, height, 1)
        assert row.face_count == len(faces), path
        stored = faces_of(db, photo_id)
        assert len(stored) == len(faces), path
        for got, want in zip(stored, sorted(faces, key=lambda f: tuple(f.detection.box)), strict=True):
            assert got.model == want.model == engine.model_name
            assert got.detector == want.detector == engine.detector_name  # which detector found it
            np.testing.assert_allclose(got.box, want.detection.box, atol=1e-2)
            np.testing.assert_allclose(np.asarray(got.embedding, dtype=np.float32), want.embedding, atol=2e-3)
        direct_faces += len(faces)
    assert status["faces"] == direct_faces > n  # group photos hold several faces each

    wait_thumbnails(db, album_run.ids, worker)


def test_uploading_the_same_album_twice_adds_nothing(
    album_run: AlbumRun, client: TestClient, db: sa.Engine, settings: Settings
) -> None:
    def snapshot() -> tuple[Any, ...]:
        with db.connect() as conn:
            photos = conn.scalar(sa.select(sa.func.count()).select_from(Photo))
            faces = conn.scalar(sa.select(sa.func.count()).select_from(Face))
            attempts = conn.scalar(sa.select(sa.func.sum(Photo.attempts)))
        assert settings.storage_dir is not None
        objects = sum(1 for p in settings.storage_dir.rglob("*") if p.is_file())
        return photos, faces, attempts, objects

    before = snapshot()
    results = upload(client, album_run.slug, album_run.files)
    assert {r["status"] for r in results} == {"duplicate"}
    assert [r["photo_id"] for r in results] == album_run.ids
    queues = redis.Redis.from_url(settings.redis_url)
    assert queues.llen("faces") == 0
    assert snapshot() == before


def test_a_corrupt_file_fails_with_a_reason_and_the_others_are_unaffected(
    client: TestClient, worker: CeleryWorker, album: list[Path], engine: Any
) -> None:
    slug = new_event(client, "One bad file")
    good = [p for p in album if p.parent.name == "groups"][:3]
    whole = good[0].read_bytes()
    files = [
        ("g0.jpg", whole),
        ("truncated.jpg", whole[: len(whole) // 3]),
        ("g1.jpg", good[1].read_bytes()),
        ("garbage.jpg", b"\xff\xd8\xff\xe0" + os.urandom(5000)),
        ("g2.jpg", good[2].read_bytes()),
    ]
    results = upload(client, slug, files)
    assert [r["status"] for r in results] == ["created"] * 5
    status = wait_processed(client, slug, worker)
    assert status["counts"] == {"uploaded": 0, "processing": 0, "done": 3, "failed": 2}

    failed = client.get(f"/events/{slug}/photos/failed").json()
    reasons = {p["filename"]: p["reason"] for p in failed["photos"]}
    assert set(reasons) == {"truncated.jpg", "garbage.jpg"}
    assert all(r.startswith(("corrupt_image: ", "unsupported_format: ")) for r in reasons.values()), reasons
    expected = sum(len(faces) for faces in engine.analyze([load_image(p).rgb for p in good]))
    assert status["faces"] == expected

    # Retrying a photo that is still broken fails it again, with the same reason.
    assert client.post(f"/events/{slug}/photos/retry").json()["retried"] == 2
    status = wait_processed(client, slug, worker)
    assert status["counts"]["failed"] == 2 and status["counts"]["done"] == 3


def test_an_import_whose_message_redis_lost_is_sent_again_and_every_object_accounted_for(
    client: TestClient, worker: CeleryWorker, settings: Settings, album: list[Path]
) -> None:
    """A prefix of three photos and a text file named like one: the import is recorded in Postgres, so
    when Redis loses its message the reconciler sends it again; the photos are processed, the text file
    is listed as not imported with its reason, and the sources stay where they were."""
    from photomatch.queue import RECONCILE_TASK, producer

    slug = new_event(client, "Imported")
    assert settings.storage_dir is not None
    folder = settings.storage_dir / "imports" / "card-1"
    folder.mkdir(parents=True)
    for p in album[:3]:
        (folder / f"{p.parent.name}-{p.name}").write_bytes(p.read_bytes())
    (folder / "notes.jpg").write_text("not a photo")
    worker.stop()
    try:
        response = client.post(f"/events/{slug}/import", json={"prefix": "imports/card-1/"})
        assert response.status_code == 202 and response.json()["found"] == 4
        status = client.get(f"/events/{slug}/status").json()
        assert (status["importing"], status["remaining"], status["total"]) == (4, 4, 0)
        queues = redis.Redis.from_url(settings.redis_url)
        assert queues.llen("cpu") == 1
        queues.delete("cpu")  # Redis loses the import task
    finally:
        worker.start()
    time.sleep(3)
    assert client.get(f"/events/{slug}/status").json()["importing"] == 4  # nothing left to deliver

    producer(settings).send_task(RECONCILE_TASK, kwargs={"older_than_seconds": 0})
    status = wait_processed(client, slug, worker)
    assert status["counts"]["done"] == 3 and (status["importing"], status["import_rejected"]) == (0, 1)
    rejected = client.get(f"/events/{slug}/imports/rejected").json()
    assert rejected["total"] == 1 and rejected["objects"][0]["key"] == "imports/card-1/notes.jpg"
    assert rejected["objects"][0]["reason"].startswith("unsupported_format: ")
    expected = sorted([f"{p.parent.name}-{p.name}" for p in album[:3]] + ["notes.jpg"])
    assert sorted(p.name for p in folder.iterdir()) == expected


def test_a_photo_whose_message_redis_lost_is_picked_up_by_the_reconciler(
    client: TestClient, worker: CeleryWorker, settings: Settings, album: list[Path], db: sa.Engine
) -> None:
    slug = new_event(client, "Lost messages")
    worker.stop()
    try:
        results = upload(client, slug, [(p.name, p.read_bytes()) for p in album[3:5]])
        queues = redis.Redis.from_url(settings.redis_url)
        assert queues.llen("faces") == 1 and queues.llen("cpu") == 0  # thumbnails come with the faces
        # Redis loses the queued messages (a crash without persistence, an eviction...).
        queues.delete("faces", "cpu")
    finally:
        worker.start()
    time.sleep(3)
    assert client.get(f"/events/{slug}/status").json()["counts"]["uploaded"] == 2  # nothing left to deliver

    from photomatch.queue import RECONCILE_TASK, producer

    producer(settings).send_task(RECONCILE_TASK, kwargs={"older_than_seconds": 0})
    status = wait_processed(client, slug, worker)
    assert status["counts"]["done"] == 2
    ids = [r["photo_id"] for r in results]
    assert {row.attempts for row in photo_rows(db, ids).values()} == {1}
    wait_thumbnails(db, ids, worker)


def test_an_event_made_before_the_second_embedder_gains_it_in_place(
    client: TestClient, worker: CeleryWorker, settings: Settings, dev_faces: Path, db: sa.Engine, engine: Any
) -> None:
    """`photomatch event fuse` on an event whose faces have the first model alone: the worker fills in
    the second vectors from the stored landmarks (equal to processing's), a lost message is re-queued
    by the reconciler, and search then fuses both models."""
    people = (d for d in sorted(dev_faces.iterdir()) if d.is_dir() and d.name != "groups")
    person = next(d for d in people if len(list(d.iterdir())) >= 5)
    photos, selfie = sorted(person.iterdir())[:4], sorted(person.iterdir())[4]
    slug = new_event(client, "Before fusion")
    with db.begin() as conn:  # as migration 0003 left every event created before it
        conn.execute(sa.text("UPDATE events SET second_embedder = NULL WHERE slug = :s"), {"s": slug})
    ids = [r["photo_id"] for r in upload(client, slug, [(p.name, p.read_bytes()) for p in photos])]
    wait_processed(client, slug, worker)
    assert all(f.second_model is None for i in ids for f in faces_of(db, i))
    code = client.get(f"/events/{slug}").json()["access_code"]

    def search() -> dict[str, Any]:
        form = {"consent": "yes", "code": code}
        response = client.post(f"/events/{slug}/search", data=form, files={"selfie": ("s.jpg", selfie.read_bytes())})
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    assert search()["fused_with"] is None

    env = {
        "PHOTOMATCH_DATABASE_URL": settings.database_url,
        "PHOTOMATCH_REDIS_URL": str(settings.redis_url),
        "PHOTOMATCH_DATA_DIR": str(settings.data_dir),
    }
    worker.stop()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "cli", "event", "fuse", slug],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert f"event {slug}: 4 photos queued" in done.stdout
        assert client.get(f"/events/{slug}/status").json()["second_embedding_pending"] == 4
        redis.Redis.from_url(str(settings.redis_url)).delete("faces")  # Redis loses the message
    finally:
        worker.start()

    from photomatch.queue import RECONCILE_TASK, producer

    producer(settings).send_task(RECONCILE_TASK, kwargs={"older_than_seconds": 0})
    wait_until(
        lambda: client.get(f"/events/{slug}/status").json()["second_embedding_pending"] == 0,
        120,
        worker,
        "the second embedder's vectors",
    )
    for path, photo_id in zip(photos, ids, strict=True):
        direct = sorted(engine.analyze([load_image(path).rgb])[0], key=lambda f: tuple(f.detection.box))
        stored = faces_of(db, photo_id)
        assert len(stored) == len(direct) > 0
        for got, want in zip(stored, direct, strict=True):
            assert got.second_model == want.second_model == "sface-2021dec-int8bq"
            np.testing.assert_allclose(
                np.asarray(got.second_embedding, dtype=np.float32), want.second_embedding, atol=3e-3
            )
    found = search()
    assert found["fused_with"] == "sface-2021dec-int8bq"
    assert {r["photo_id"] for r in found["matches"]} & set(ids)
