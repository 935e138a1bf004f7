"""Photo routes over HTTP: multipart upload, duplicates, rejections, status, failures, retry, presign, import.

No worker runs here: what the routes enqueue is read back from the real Redis queue.
"""

from __future__ import annotations

import base64
import io
import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
import redis
import sqlalchemy as sa
from fastapi.testclient import TestClient
from PIL import Image

from api.main import create_app
from photomatch.config import Settings
from photomatch.models import Photo, PhotoStatus
from photomatch.storage import S3Storage


def jpeg(seed: int, size: tuple[int, int] = (48, 32)) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def queued(redis_url: str, queue: str) -> list[tuple[str, Any]]:
    """(task name, args) of every message waiting in `queue` (kombu's Redis list)."""
    client = redis.Redis.from_url(redis_url)
    out = []
    for raw in client.lrange(queue, 0, -1):
        message = json.loads(raw)
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        out.append((message["headers"]["task"], args))
    client.close()
    return out


@pytest.fixture
def event_slug(api_client: TestClient, auth: dict[str, str]) -> str:
    response = api_client.post("/events", json={"name": "Summer Party"}, headers=auth)
    assert response.status_code == 201, response.text
    slug: str = response.json()["slug"]
    return slug


@pytest.fixture
def auth(make_photographer: Callable[[str], dict[str, str]]) -> dict[str, str]:
    return make_photographer("Ann")


def upload(client: TestClient, slug: str, auth: dict[str, str], files: list[tuple[str, bytes]]) -> Any:
    parts = [("files", (name, data, "image/jpeg")) for name, data in files]
    return client.post(f"/events/{slug}/photos", files=parts, headers=auth)


def test_upload_many_files_reports_each_and_enqueues_ids_after_commit(
    api_client: TestClient, auth: dict[str, str], event_slug: str, api_settings: Settings
) -> None:
    files = [("a.jpg", jpeg(1)), ("b.jpg", jpeg(2)), ("notes.jpg", b"not an image"), ("a-again.jpg", jpeg(1))]
    response = upload(api_client, event_slug, auth, files)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["created"], body["duplicates"], body["rejected"], body["queued"]) == (2, 1, 1, True)
    statuses = [(r["filename"], r["status"], r["reason"]) for r in body["results"]]
    assert statuses == [
        ("a.jpg", "created", None),
        ("b.jpg", "created", None),
        ("notes.jpg", "rejected", "unsupported_format"),
        ("a-again.jpg", "duplicate", "duplicate"),
    ]
    assert body["results"][3]["photo_id"] == body["results"][0]["photo_id"]

    created = [r["photo_id"] for r in body["results"][:2]]
    # One batch for the face worker, carrying ids only; it renders the thumbnails from its own decode.
    assert queued(api_settings.redis_url, "faces") == [("faces.photos.process", [created])]
    assert queued(api_settings.redis_url, "cpu") == []

    status = api_client.get(f"/events/{event_slug}/status", headers=auth).json()
    assert status["counts"] == {"uploaded": 2, "processing": 0, "done": 0, "failed": 0}
    assert (status["total"], status["remaining"], status["faces"], status["eta_seconds"]) == (2, 2, 0, None)

    # The same album again adds nothing and queues nothing.
    again = upload(api_client, event_slug, auth, files[:2]).json()
    assert (again["created"], again["duplicates"]) == (0, 2)
    assert len(queued(api_settings.redis_url, "faces")) == 1


def test_photo_routes_need_the_owner(
    api_client: TestClient, event_slug: str, make_photographer: Callable[[str], dict[str, str]]
) -> None:
    other = make_photographer("Bob")
    assert upload(api_client, event_slug, other, [("a.jpg", jpeg(1))]).status_code == 404
    assert api_client.get(f"/events/{event_slug}/status", headers=other).status_code == 404
    assert api_client.get(f"/events/{event_slug}/status").status_code == 401
    assert upload(api_client, "no-such-event", other, [("a.jpg", jpeg(1))]).status_code == 404


def test_failed_photos_are_listed_and_retried(
    api_client: TestClient, auth: dict[str, str], event_slug: str, api_settings: Settings, fresh_db: str
) -> None:
    body = upload(api_client, event_slug, auth, [("a.jpg", jpeg(1)), ("b.jpg", jpeg(2))]).json()
    ids = [r["photo_id"] for r in body["results"]]
    engine = sa.create_engine(fresh_db)
    with engine.begin() as conn:
        conn.execute(
            sa.update(Photo)
            .where(Photo.id == uuid.UUID(ids[0]))
            .values(status=PhotoStatus.FAILED, failure_reason="corrupt_image: truncated", attempts=1)
        )
    engine.dispose()
    redis.Redis.from_url(api_settings.redis_url).delete("faces", "cpu")

    failed = api_client.get(f"/events/{event_slug}/photos/failed", headers=auth).json()
    assert failed["total"] == 1
    assert failed["photos"][0]["id"] == ids[0] and failed["photos"][0]["filename"] == "a.jpg"
    assert failed["photos"][0]["reason"] == "corrupt_image: truncated"

    retried = api_client.post(f"/events/{event_slug}/photos/retry", headers=auth).json()
    assert (retried["retried"], retried["photo_ids"], retried["queued"]) == (1, [ids[0]], True)
    assert queued(api_settings.redis_url, "faces") == [("faces.photos.process", [[ids[0]]])]
    assert api_client.get(f"/events/{event_slug}/photos/failed", headers=auth).json()["total"] == 0
    assert (
        api_client.post(f"/events/{event_slug}/photos/retry", headers=auth, json={"photo_ids": []}).json()["retried"]
        == 0
    )


def test_presigned_uploads_need_s3(api_client: TestClient, auth: dict[str, str], event_slug: str) -> None:
    response = api_client.post(f"/events/{event_slug}/uploads", json={"files": [{"filename": "a.jpg"}]}, headers=auth)
    assert response.status_code == 409
    assert "upload through POST" in response.json()["detail"]


def test_import_queues_the_images_under_a_prefix(
    api_client: TestClient, auth: dict[str, str], event_slug: str, api_settings: Settings
) -> None:
    root = api_settings.storage_dir
    assert root is not None
    (root / "imports" / "party").mkdir(parents=True)
    for i in range(3):
        (root / "imports" / "party" / f"{i}.jpg").write_bytes(jpeg(i))
    (root / "imports" / "party" / "readme.txt").write_text("hi")

    response = api_client.post(f"/events/{event_slug}/import", json={"prefix": "imports/party/"}, headers=auth)
    assert response.status_code == 202, response.text
    assert response.json() == {"prefix": "imports/party/", "found": 3, "tasks": 1}
    [(task, (event_id, keys))] = queued(api_settings.redis_url, "cpu")
    assert task == "cpu.photos.import" and keys == [f"imports/party/{i}.jpg" for i in range(3)]
    # Recorded before any worker ran: status counts them as still to come.
    status = api_client.get(f"/events/{event_slug}/status", headers=auth).json()
    assert (status["importing"], status["remaining"], status["import_rejected"]) == (3, 3, 0)
    rejected = api_client.get(f"/events/{event_slug}/imports/rejected", headers=auth).json()
    assert rejected == {"total": 0, "objects": []}

    bad = api_client.post(f"/events/{event_slug}/import", json={"prefix": "events/"}, headers=auth)
    assert bad.status_code == 400 and "outside 'events/'" in bad.json()["detail"]
    empty = api_client.post(f"/events/{event_slug}/import", json={"prefix": "imports/none/"}, headers=auth)
    assert empty.status_code == 404


def test_presigned_upload_and_commit_on_s3(
    s3_settings: Settings,
    fresh_db: str,
    redis_url: str,
    tmp_path: Any,
    make_photographer: Callable[[str], dict[str, str]],
) -> None:
    settings = s3_settings.model_copy(update={"database_url": fresh_db, "redis_url": redis_url, "data_dir": tmp_path})
    S3Storage.from_settings(settings).ensure_bucket()
    auth = make_photographer("Sam")
    with TestClient(create_app(settings)) as client:
        slug = client.post("/events", json={"name": "Direct"}, headers=auth).json()["slug"]
        files = [{"filename": "a.jpg", "content_type": "image/jpeg"}, {"filename": "b.gif"}]
        presigned = client.post(f"/events/{slug}/uploads", json={"files": files}, headers=auth).json()
        assert [r["filename"] for r in presigned["rejected"]] == ["b.gif"]
        [upload] = presigned["uploads"]
        assert httpx.request(upload["method"], upload["url"], content=jpeg(7), headers=upload["headers"]).is_success

        body = {"uploads": [{"key": upload["key"], "filename": "a.jpg"}]}
        committed = client.post(f"/events/{slug}/uploads/commit", json=body, headers=auth).json()
        assert (committed["created"], committed["queued"]) == (1, True)
        photo_id = committed["results"][0]["photo_id"]
        assert photo_id in upload["key"]
        assert queued(redis_url, "faces") == [("faces.photos.process", [[photo_id]])]
        again = client.post(f"/events/{slug}/uploads/commit", json=body, headers=auth).json()
        assert (again["created"], again["duplicates"]) == (0, 1)
        assert client.get(f"/events/{slug}/status", headers=auth).json()["counts"]["uploaded"] == 1


def test_uploads_are_limited_in_count_and_size_and_judged_by_their_bytes(
    api_client: TestClient, auth: dict[str, str], event_slug: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import api.routes.photos as routes
    from photomatch.config import get_settings

    monkeypatch.setattr(routes, "MAX_FILES_PER_REQUEST", 3)
    too_many = upload(api_client, event_slug, auth, [(f"{i}.jpg", jpeg(i)) for i in range(4)])
    assert too_many.status_code == 400 and "at most 3 files" in too_many.json()["detail"]

    big = jpeg(9) + b"\0" * (get_settings().max_image_bytes + 1 - len(jpeg(9)))
    named_png = ("looks-like.png", jpeg(10))  # the name says PNG, the bytes say JPEG: the bytes win
    renamed_text = ("photo.jpg", b"GIF89a but really some text")
    results = upload(api_client, event_slug, auth, [("big.jpg", big), named_png, renamed_text]).json()["results"]
    assert [(r["status"], r["reason"]) for r in results] == [
        ("rejected", "image_too_large"), ("created", None), ("rejected", "unsupported_format"),
    ]  # fmt: skip


def test_thumbnails_can_run_beside_the_face_worker(auth: dict[str, str], api_settings: Settings) -> None:
    """A GPU box keeps its face worker on faces only: thumbnails then go to the cpu queue."""
    from api.main import create_app

    beside = api_settings.model_copy(update={"process_thumbnails_inline": False})
    with TestClient(create_app(beside)) as client:
        slug = client.post("/events", json={"name": "GPU box"}, headers=auth).json()["slug"]
        created = [r["photo_id"] for r in upload(client, slug, auth, [("a.jpg", jpeg(5))]).json()["results"]]
    assert queued(beside.redis_url, "faces") == [("faces.photos.process", [created])]
    assert queued(beside.redis_url, "cpu") == [("cpu.photos.thumbnails", [created])]
