"""The bad-input sweep: 200+ broken, hostile and odd files uploaded through the raw API mixed with good
photos, processed by a real worker. No 5xx, no worker death; every bad file ends rejected or failed
with a readable reason (or done, where it is a valid image in an odd form); the good photos are
unaffected."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from photomatch.config import Settings
from tests.support.bad_inputs import Item, corpus
from tests.support.celery_worker import CeleryWorker

pytestmark = pytest.mark.slow
READABLE = re.compile(r"^[a-z_]+: \S.*")
PER_REQUEST = 40


@pytest.fixture(scope="module")
def good_photos(dev_faces: Path) -> list[Path]:
    root = dev_faces
    return sorted(root.glob("*/1.jpg"))[:4] + sorted((root / "groups").glob("*.jpg"))[:2]


def test_the_sweep_leaves_no_crash_no_lost_photo_and_readable_reasons(
    client: TestClient, worker: CeleryWorker, settings: Settings, good_photos: list[Path]
) -> None:
    items = list(corpus())
    assert len(items) >= 200
    good = [Item(f"good-{p.parent.name}-{p.name}", p.read_bytes(), True) for p in good_photos]
    mixed = items[:]  # the good photos spread through the bad ones
    for i, g in enumerate(good):
        mixed.insert(i * (len(items) // len(good)), g)
    event = client.post("/events", json={"name": "Sweep"}).json()
    slug = event["slug"]

    outcome: dict[str, dict[str, Any]] = {}
    for start in range(0, len(mixed), PER_REQUEST):
        batch = mixed[start : start + PER_REQUEST]
        files = [("files", (item.name, item.data, "application/octet-stream")) for item in batch]
        response = client.post(f"/events/{slug}/photos", files=files)
        assert response.status_code == 200, response.text
        for item, result in zip(batch, response.json()["results"], strict=True):
            outcome[item.name] = result
    worker_pid = worker.proc.pid if worker.proc else None

    deadline = time.monotonic() + 600
    while (status := client.get(f"/events/{slug}/status").json())["remaining"]:
        assert time.monotonic() < deadline, f"{status}\n{worker.tail()}"
        assert worker.proc is not None and worker.proc.poll() is None, f"the worker died:\n{worker.tail()}"
        time.sleep(1)
    assert worker.proc is not None and worker.proc.poll() is None and worker.proc.pid == worker_pid

    db = sa.create_engine(settings.database_url)
    with db.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT id::text, status, failure_reason, face_count FROM photos WHERE event_id = :e"),
            {"e": event["id"]},
        ).all()
    db.dispose()
    photos = {r.id: r for r in rows}
    done = failed = rejected = 0
    for item in [*good, *items]:
        result = outcome[item.name]
        if result["status"] == "rejected":
            assert not item.name.startswith("good-"), item.name
            assert result["reason"] and result["message"], (item.name, result)
            rejected += 1
            continue
        assert result["status"] in ("created", "duplicate"), (item.name, result)
        row = photos[result["photo_id"]]
        if item.name.startswith("good-"):
            assert row.status == "done" and row.face_count >= 1, (item.name, row)
        elif not item.valid:
            assert row.status == "failed", (item.name, row)
        assert row.status in ("done", "failed"), (item.name, row)
        if row.status == "failed":
            assert READABLE.match(row.failure_reason or ""), (item.name, row.failure_reason)
            failed += 1
        else:
            done += 1
    print(
        f"sweep: {len(items)} odd files + {len(good)} good: {done} done, {failed} failed, {rejected} rejected at upload"
    )
    assert done + failed + rejected == len(items) + len(good)
    assert not [r for r in rows if r.status not in ("done", "failed")]
