"""Attendee search over HTTP: access control, event isolation, selfie errors, zip download, link + QR.

Photos are uploaded through the API and processed in this process by the pipeline's own functions
(photomatch.photos.processing), without a Celery worker: test_search_accuracy.py covers the worker.
"""

from __future__ import annotations

import io
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
import sqlalchemy as sa
from fastapi.testclient import TestClient
from PIL import Image, ImageFilter

from api.main import create_app
from photomatch.config import Settings
from photomatch.db import make_engine, make_session_factory, session_scope
from photomatch.faces.engine import get_engine_for
from photomatch.photos import processing
from photomatch.search import feedback, ranking
from photomatch.storage import get_storage
from tests.support.accounts import new_photographer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def faces_dir(dev_faces: Path) -> Path:
    return dev_faces


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    """Anonymous: each photographer's requests carry their own headers, attendees' none."""
    with TestClient(create_app(settings)) as c:
        yield c


photographer = new_photographer  # the shared helper, under this module's name


def process(settings: Settings, photo_ids: list[str]) -> None:
    """What the face and thumbnail tasks do, run here: claim, analyse, save, thumbnails."""
    engine = make_engine(settings.database_url, pool_size=1, max_overflow=0)
    factory = make_session_factory(engine)
    storage = get_storage(settings)
    ids = [uuid.UUID(i) for i in photo_ids]
    with session_scope(factory) as session:
        claimed = processing.claim_photos(session, ids, max_attempts=5)
    outcomes = processing.analyze_photos(claimed, storage, get_engine_for)
    with session_scope(factory) as session:
        processing.save_outcomes(session, outcomes)
    with session_scope(factory) as session:
        processing.make_thumbnails(session, storage, ids)
    engine.dispose()


@dataclass
class World:
    """Two events of one photographer sharing a photo, one of another photographer."""

    auth: dict[str, str]
    other_auth: dict[str, str]
    a: dict[str, Any]
    b: dict[str, Any]
    a_photos: dict[str, str]  # file name -> photo id
    b_photos: dict[str, str]
    selfie: bytes
    faces_dir: Path


@pytest.fixture(scope="module")
def world(client: TestClient, settings: Settings, faces_dir: Path) -> World:
    auth, other_auth = photographer(settings, "Pia"), photographer(settings, "Otto")
    events = []
    for name in ("Event A", "Event B"):
        response = client.post("/events", json={"name": name}, headers=auth)
        assert response.status_code == 201, response.text
        events.append(response.json())
    a, b = events
    # Obama is the selfie's person: in two of A's photos and (the very same file) one of B's.
    files_a = ["obama/1.jpg", "obama/2.jpg", "john_salley/1.jpg", "john_savage/1.jpg"]
    files_b = ["obama/1.jpg", "john_salley/2.jpg"]
    ids = []
    photos = []
    for event, files in ((a, files_a), (b, files_b)):
        parts = [("files", (f.replace("/", "-"), (faces_dir / f).read_bytes(), "image/jpeg")) for f in files]
        response = client.post(f"/events/{event['slug']}/photos", files=parts, headers=auth)
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        ids += [r["photo_id"] for r in results]
        photos.append({f: r["photo_id"] for f, r in zip(files, results, strict=True)})
    # Nobody consumes the queue here; empty it so other modules' workers never see these ids.
    redis.Redis.from_url(settings.redis_url).flushall()
    process(settings, ids)
    return World(auth, other_auth, a, b, photos[0], photos[1], (faces_dir / "obama/3.jpg").read_bytes(), faces_dir)


def search(client: TestClient, slug: str, selfie: bytes | None, **form: Any) -> Any:
    form.setdefault("consent", "yes")
    files = {"selfie": ("selfie.jpg", selfie, "image/jpeg")} if selfie is not None else None
    # A multipart body even without a file: the endpoint takes nothing else.
    return client.post(f"/events/{slug}/search", data=form, files=files or {"_": ("", b"", "text/plain")})


def result_ids(body: dict[str, Any]) -> list[str]:
    return [r["photo_id"] for r in body["matches"] + body["possible_matches"]]


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


# --- search -----------------------------------------------------------------------------------


def test_a_selfie_finds_the_persons_photos_with_working_links(client: TestClient, world: World) -> None:
    response = search(client, world.a["slug"], world.selfie, code=world.a["access_code"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["event"] == world.a["slug"] and body["model"] == world.a["embedder"]
    assert body["fused_with"] == world.a["second_embedder"] == "sface-2021dec-int8bq"
    assert set(body["thresholds"]) == {"match", "possible"}
    assert len(body["query"]["box"]) == 4 and set(body["query"]["quality"]) == {"probability", "size", "sharpness"}
    obama = {world.a_photos["obama/1.jpg"], world.a_photos["obama/2.jpg"]}
    assert set(result_ids(body)) == obama
    assert [r["photo_id"] for r in body["matches"]] and set(r["photo_id"] for r in body["matches"]) <= obama
    best = body["matches"][0]
    assert body["thresholds"]["match"] <= best["confidence"] <= 1 and best["distance"] < 0.6
    assert best["filename"].startswith("obama-") and best["width"] > 0 and len(best["face_box"]) == 4
    # Best first: the most likely photo of the person first.
    confidences = [r["confidence"] for r in body["matches"]]
    assert confidences == sorted(confidences, reverse=True)
    thumb = client.get(best["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(thumb.content)).size) <= 256
    download = client.get(best["download_url"])
    assert download.status_code == 200 and "attachment" in download.headers["content-disposition"]


# --- answers: "this is me" / "not me" -------------------------------------------------------------


def test_answers_keep_the_confirmed_photo_and_drop_the_rejected_one(client: TestClient, world: World) -> None:
    code = world.a["access_code"]
    first = search(client, world.a["slug"], world.selfie, code=code).json()
    shown = first["matches"] + first["possible_matches"]
    assert len(shown) >= 2 and all(isinstance(r["face_id"], int) for r in shown) and first["feedback_token"]
    keep, drop = shown[-1], shown[0]  # confirm the one it was least sure of, reject the surest
    again = search(
        client, world.a["slug"], world.selfie, code=code,
        feedback_token=first["feedback_token"], me=[keep["face_id"]], not_me=[drop["face_id"]],
    )  # fmt: skip
    assert again.status_code == 200, again.text
    body = again.json()
    assert body["matches"][0]["photo_id"] == keep["photo_id"] and body["matches"][0]["confirmed"] is True
    assert drop["photo_id"] not in result_ids(body)
    # The next round's token still allows the earlier answers (the visit's faces accumulate).
    third = search(
        client, world.a["slug"], world.selfie, code=code,
        feedback_token=body["feedback_token"], me=[keep["face_id"]], not_me=[drop["face_id"]],
    )  # fmt: skip
    assert third.status_code == 200 and drop["photo_id"] not in result_ids(third.json())


def test_questions_below_the_possible_tier_may_be_answered_and_become_results(
    client: TestClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, slug = world.a["access_code"], world.a["slug"]
    # This small event's other photos are far below the possible tier: with no floor they are asked about.
    monkeypatch.setattr(ranking, "QUESTION_FLOOR", 0.0)
    first = search(client, slug, world.selfie, code=code).json()
    assert first["questions"], [(r["filename"], r["confidence"]) for r in first["matches"] + first["possible_matches"]]
    asked = first["questions"][0]
    assert asked["photo_id"] not in result_ids(first) and asked["confidence"] < first["thresholds"]["possible"]
    again = search(client, slug, world.selfie, code=code, feedback_token=first["feedback_token"], me=[asked["face_id"]])
    assert again.status_code == 200, again.text
    body = again.json()
    assert body["matches"][0]["photo_id"] == asked["photo_id"] and body["matches"][0]["confirmed"] is True
    assert asked["photo_id"] not in [q["photo_id"] for q in body["questions"]]


def test_answers_the_token_does_not_allow_are_refused(client: TestClient, world: World, settings: Settings) -> None:
    code = world.a["access_code"]
    first = search(client, world.a["slug"], world.selfie, code=code).json()
    token, face = first["feedback_token"], first["matches"][0]["face_id"]
    other_selfie = (world.faces_dir / "john_salley" / "1.jpg").read_bytes()

    def refine(slug: str, access: str, selfie: bytes, **form: Any) -> Any:
        return search(client, slug, selfie, code=access, **form)

    cases = {
        "forged": refine(world.a["slug"], code, world.selfie, feedback_token=token[:-4] + "AAAA", me=[face]),
        "never shown": refine(world.a["slug"], code, world.selfie, feedback_token=token, me=[face + 10_000]),
        "no token": refine(world.a["slug"], code, world.selfie, me=[face]),
        "another event": refine(world.b["slug"], world.b["access_code"], world.selfie, feedback_token=token, me=[face]),
        "another selfie": refine(world.a["slug"], code, other_selfie, feedback_token=token, me=[face]),
        "not an id": refine(world.a["slug"], code, world.selfie, feedback_token=token, me=["x"]),
        "both answers": refine(world.a["slug"], code, world.selfie, feedback_token=token, me=[face], not_me=[face]),
    }
    expired = feedback.issue(
        settings.secret_key, uuid.UUID(world.a["id"]), world.selfie, [face], now=time.time() - 7200
    )
    cases["expired"] = refine(world.a["slug"], code, world.selfie, feedback_token=expired, me=[face])
    reasons = {name: (r.status_code, r.json()["reason"]) for name, r in cases.items()}
    assert reasons == {
        "forged": (400, "invalid_feedback_token"),
        "never shown": (400, "feedback_unknown_face"),
        "no token": (400, "feedback_token_required"),
        "another event": (400, "invalid_feedback_token"),
        "another selfie": (400, "feedback_other_selfie"),
        "not an id": (400, "invalid_feedback"),
        "both answers": (400, "invalid_feedback"),
        "expired": (400, "feedback_token_expired"),
    }


def test_results_never_include_another_events_photos(client: TestClient, world: World) -> None:
    on_a = result_ids(search(client, world.a["slug"], world.selfie, code=world.a["access_code"]).json())
    on_b = result_ids(search(client, world.b["slug"], world.selfie, code=world.b["access_code"]).json())
    assert on_b == [world.b_photos["obama/1.jpg"]]
    assert set(on_a).isdisjoint(world.b_photos.values()) and set(on_b).isdisjoint(world.a_photos.values())


def test_missing_or_wrong_credentials_are_refused(client: TestClient, world: World) -> None:
    slug = world.a["slug"]
    missing = search(client, slug, world.selfie)
    assert missing.status_code == 401 and "access code" in missing.json()["detail"]
    assert search(client, slug, world.selfie, code="WRONG1").status_code == 403
    assert search(client, slug, world.selfie, code=world.b["access_code"]).status_code == 403
    assert search(client, slug, world.selfie, token="not-a-token").status_code == 403
    # A slug that does not exist answers as a wrong code does: existence never leaks.
    unknown = search(client, "no-such-event", world.selfie, code=world.a["access_code"])
    wrong = search(client, slug, world.selfie, code="WRONG1")
    assert (unknown.status_code, unknown.json()) == (wrong.status_code, wrong.json())
    # No consent, no search, even with the right code.
    refused = search(client, slug, world.selfie, code=world.a["access_code"], consent="no")
    assert refused.status_code == 422 and refused.json()["reason"] == "consent_required"
    # Codes are typed by people: case and dashes do not matter.
    code = world.a["access_code"]
    assert search(client, slug, world.selfie, code=f"{code[:3].lower()}-{code[3:]}").status_code == 200


def test_an_attendee_link_opens_its_event_and_no_other(client: TestClient, world: World) -> None:
    response = client.get(f"/events/{world.a['slug']}/attendee-link", headers=world.auth)
    assert response.status_code == 200, response.text
    link = response.json()
    assert link["url"].startswith(f"/e/{world.a['slug']}?t=") and link["code"] == world.a["access_code"]
    assert link["absolute_url"].endswith(link["url"])
    token = link["url"].split("?t=", 1)[1]
    assert world.a["access_code"] not in token
    ok = search(client, world.a["slug"], world.selfie, token=token)
    assert ok.status_code == 200 and result_ids(ok.json())
    assert search(client, world.b["slug"], world.selfie, token=token).status_code == 403

    qr = client.get(link["qr_svg_url"], headers=world.auth)
    assert qr.status_code == 200 and qr.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in qr.content
    # Photographer-only: no key, or another photographer's key.
    assert client.get(f"/events/{world.a['slug']}/attendee-link").status_code == 401
    assert client.get(f"/events/{world.a['slug']}/attendee-link", headers=world.other_auth).status_code == 404
    assert client.get(link["qr_svg_url"], headers=world.other_auth).status_code == 404


def test_selfies_without_a_usable_face_get_distinct_messages(client: TestClient, world: World) -> None:
    code = world.a["access_code"]
    selfie = Image.open(io.BytesIO(world.selfie))
    gradient = Image.fromarray(np.tile(np.linspace(0, 255, 640, dtype=np.uint8), (480, 1)))
    small = selfie.resize((selfie.width // 12, selfie.height // 12), Image.Resampling.LANCZOS)
    blurred = selfie.filter(ImageFilter.GaussianBlur(12))
    messages = {}
    for name, data in (("none", jpeg(gradient)), ("small", jpeg(small)), ("blurred", jpeg(blurred))):
        response = search(client, world.a["slug"], data, code=code)
        assert response.status_code == 422, (name, response.text)
        messages[name] = response.json()["detail"]
    assert messages["none"].startswith("No face found in your selfie")
    assert "too small" in messages["small"] and "blurred" in messages["blurred"]
    not_an_image = search(client, world.a["slug"], b"%PDF-1.4 not a photo", code=code)
    assert not_an_image.status_code == 422 and "selfie" in not_an_image.json()["detail"]
    no_file = search(client, world.a["slug"], None, code=code)
    assert no_file.status_code == 422 and "selfie" in no_file.json()["detail"]


def test_thresholds_can_be_adjusted_within_bounds(client: TestClient, world: World, settings: Settings) -> None:
    slug, code = world.a["slug"], world.a["access_code"]
    # Thresholds are minimum probabilities: higher is stricter.
    strict = search(client, slug, world.selfie, code=code, match_threshold=0.999, possible_threshold=0.999)
    assert strict.status_code == 200 and strict.json()["thresholds"] == {"match": 0.999, "possible": 0.999}
    loose = search(client, slug, world.selfie, code=code, possible_threshold=settings.search_threshold_min)
    assert len(result_ids(loose.json())) >= len(result_ids(strict.json()))
    for bad in ({"match_threshold": 0}, {"possible_threshold": 1.5}, {"match_threshold": "abc"}):
        response = search(client, slug, world.selfie, code=code, **bad)
        assert response.status_code == 422, bad
    crossed = search(client, slug, world.selfie, code=code, match_threshold=0.3, possible_threshold=0.6)
    assert crossed.status_code == 422 and crossed.json()["reason"] == "invalid_thresholds"


def test_a_too_large_selfie_gets_413(settings: Settings, world: World) -> None:
    small_cap = settings.model_copy(update={"search_max_selfie_bytes": 50_000})
    with TestClient(create_app(small_cap)) as c:
        big = search(c, world.a["slug"], world.selfie + b"\0" * 100_000, code=world.a["access_code"])
        assert big.status_code == 413 and "larger than" in big.json()["detail"]


# --- zip download -----------------------------------------------------------------------------


def test_the_zip_holds_the_chosen_originals_of_this_event_only(
    client: TestClient, world: World, faces_dir: Path
) -> None:
    slug, code = world.a["slug"], world.a["access_code"]
    wanted = [world.a_photos["obama/1.jpg"], world.a_photos["obama/2.jpg"], world.b_photos["john_salley/2.jpg"]]
    response = client.post(f"/events/{slug}/download.zip", data={"code": code, "photo_ids": wanted})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert f"{slug}-photos.zip" in response.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.namelist() == ["obama-1.jpg", "obama-2.jpg"]  # B's photo is ignored
        assert archive.read("obama-1.jpg") == (faces_dir / "obama/1.jpg").read_bytes()

    only_b = client.post(f"/events/{slug}/download.zip", data={"code": code, "photo_ids": wanted[2:]})
    assert only_b.status_code == 404
    no_code = client.post(f"/events/{slug}/download.zip", data={"photo_ids": wanted[:1]})
    assert no_code.status_code == 401
    wrong = client.post(f"/events/{slug}/download.zip", data={"code": "WRONG1", "photo_ids": wanted[:1]})
    assert wrong.status_code == 403


def test_opt_out_removes_the_face_for_good_and_keeps_the_photos(
    client: TestClient, world: World, settings: Settings
) -> None:
    """Last in the module: it removes Obama's faces from event A."""
    slug, code = world.a["slug"], world.a["access_code"]
    found = search(client, slug, world.selfie, code=code)
    assert found.status_code == 200
    mine = set(result_ids(found.json()))
    assert {world.a_photos["obama/1.jpg"], world.a_photos["obama/2.jpg"]} <= mine
    total_before = client.get(f"/events/{slug}/status", headers=world.auth).json()["total"]
    faces_before = client.get(f"/events/{slug}/status", headers=world.auth).json()["faces"]

    no_consent = client.post(
        f"/events/{slug}/opt-out", data={"code": code}, files={"selfie": ("s.jpg", world.selfie, "image/jpeg")}
    )
    assert no_consent.status_code == 422 and no_consent.json()["reason"] == "consent_required"
    wrong = client.post(
        f"/events/{slug}/opt-out", data={"code": "WRONG1", "consent": "yes"},
        files={"selfie": ("s.jpg", world.selfie, "image/jpeg")},
    )  # fmt: skip
    assert wrong.status_code == 403
    removed = client.post(
        f"/events/{slug}/opt-out", data={"code": code, "consent": "yes"},
        files={"selfie": ("s.jpg", world.selfie, "image/jpeg")},
    )  # fmt: skip
    assert removed.status_code == 200, removed.text
    assert removed.json()["photos"] >= 2 and removed.json()["faces"] == removed.json()["photos"]

    after = search(client, slug, world.selfie, code=code).json()
    assert not mine & set(result_ids(after)), "opted-out faces still found"
    status = client.get(f"/events/{slug}/status", headers=world.auth).json()
    assert status["total"] == total_before  # the photographer keeps every photo
    assert status["faces"] == faces_before - removed.json()["faces"]

    # Reprocessing the photos (a retry, a model upgrade) must not bring the faces back.
    db = sa.create_engine(settings.database_url)
    with db.begin() as conn:
        conn.execute(
            sa.text("UPDATE photos SET status = 'uploaded', attempts = 0 WHERE event_id = :e"), {"e": world.a["id"]}
        )
        ids = [str(i) for i in conn.scalars(sa.text("SELECT id FROM photos WHERE event_id = :e"), {"e": world.a["id"]})]
    db.dispose()
    process(settings, ids)
    again = search(client, slug, world.selfie, code=code).json()
    assert not mine & set(result_ids(again)), "a reprocess brought opted-out faces back"
    assert client.get(f"/events/{slug}/status", headers=world.auth).json()["faces"] == status["faces"]
