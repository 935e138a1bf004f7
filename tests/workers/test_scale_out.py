"""Two separate face-worker processes share one album through the same Redis and Postgres: every photo
is processed once, by one of them, and no face is stored twice. (The wall-time ratio is measured by
bench/scale_out.py, not here.)"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.main import create_app
from photomatch.config import Settings
from tests.support.accounts import new_photographer
from tests.support.celery_worker import CeleryWorker

pytestmark = pytest.mark.slow


def done_photo_ids(log: Path) -> list[str]:
    """Photos a worker finished, from its JSON log (one photos.process.done line each)."""
    records = (json.loads(line) for line in log.read_text().splitlines() if line.startswith("{"))
    return [r["photo_id"] for r in records if r.get("event") == "photos.process.done"]


@pytest.fixture(scope="module")
def photos(dev_faces: Path) -> list[Path]:
    root = dev_faces
    return sorted((root / "groups").glob("*.jpg"))[:3] + sorted(root.glob("*/1.jpg"))[:5]


@pytest.fixture(scope="module")
def two_workers(settings: Settings) -> Iterator[list[CeleryWorker]]:
    workers = [CeleryWorker(settings, name, queues="faces") for name in ("machine-a", "machine-b")]
    try:
        for w in workers:
            w.start()
        yield workers
    finally:
        for w in workers:
            w.stop()


def test_two_workers_share_an_album_without_duplicates(
    settings: Settings, two_workers: list[CeleryWorker], photos: list[Path]
) -> None:
    one_per_task = settings.model_copy(update={"process_batch_size": 1})  # eight tasks to share
    with TestClient(create_app(one_per_task), headers=new_photographer(settings, "Sam")) as client:
        event = client.post("/events", json={"name": "Shared album"}).json()
        files = [("files", (p.parent.name + p.name, p.read_bytes(), "image/jpeg")) for p in photos]
        assert client.post(f"/events/{event['slug']}/photos", files=files).json()["created"] == len(photos)
        deadline = time.monotonic() + 600
        while (status := client.get(f"/events/{event['slug']}/status").json())["remaining"]:
            assert time.monotonic() < deadline, "\n".join(w.tail() for w in two_workers)
            time.sleep(0.5)
    assert status["counts"]["done"] == len(photos)

    db = sa.create_engine(settings.database_url)
    with db.connect() as conn:
        e = {"e": event["id"]}
        faces = conn.scalar(sa.text("SELECT count(*) FROM faces WHERE event_id = :e"), e)
        assert faces == status["faces"] > 0
        assert conn.scalar(sa.text(
            "SELECT count(*) FROM photos p WHERE p.event_id = :e AND p.face_count <> "
            "(SELECT count(*) FROM faces f WHERE f.photo_id = p.id)"), e) == 0  # fmt: skip
        assert conn.scalar(sa.text(
            "SELECT count(*) FROM (SELECT photo_id, box FROM faces WHERE event_id = :e "
            "GROUP BY photo_id, box HAVING count(*) > 1) d"), e) == 0  # fmt: skip
    db.dispose()

    # Each worker finished some of the photos, and together each photo exactly once.
    ids = [done_photo_ids(w.log_path) for w in two_workers]
    assert all(ids), f"a worker took no photo: {[len(i) for i in ids]}"
    assert sorted(ids[0] + ids[1]) == sorted(set(ids[0] + ids[1])) and len(ids[0] + ids[1]) == len(photos)
