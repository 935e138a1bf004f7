"""Every route of the API, tried as an intruder: without credentials, with another photographer's key,
across events, and with tampered or expired links and tokens. Nothing may leak: no photo, URL, count,
name, code, or whether an event exists.

Routes come from the OpenAPI schema, and each must be classified below: a new route fails this test
until someone decides who may call it.
"""

from __future__ import annotations

import io
import time
import uuid
from datetime import date, timedelta
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from api.main import create_app
from photomatch.config import Settings
from photomatch.db import make_engine, make_session_factory, session_scope
from photomatch.events.service import get_event
from photomatch.search.tokens import make_token
from photomatch.storage.local import sign_local_url
from tests.support.accounts import new_photographer

PUBLIC = {("get", "/health"), ("get", "/health/live"), ("get", "/health/ready"), ("get", "/metrics")}
ACCOUNT = {("get", "/events"), ("post", "/events")}
ATTENDEE = {
    ("post", "/events/{slug}/search"),
    ("post", "/events/{slug}/opt-out"),
    ("post", "/events/{slug}/download.zip"),
}
CODE_LOOKUP = {("get", "/api/resolve")}
FILES = {("get", "/files/{key}")}
BODIES: dict[tuple[str, str], Any] = {
    ("post", "/events/{slug}/photos/known"): {"json": {"sha256": ["0" * 64]}},
    ("post", "/events/{slug}/uploads"): {"json": {"files": [{"filename": "a.jpg", "content_type": "image/jpeg"}]}},
    ("post", "/events/{slug}/uploads/commit"): {"json": {"uploads": [{"key": "events/x/originals/y.jpg"}]}},
    ("post", "/events/{slug}/import"): {"json": {"prefix": "imports/x/"}},
    ("post", "/events/{slug}/photos/retry"): {"json": {}},
}


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(out, "JPEG")
    return out.getvalue()


@pytest.fixture(scope="module")
def world(settings: Settings) -> dict[str, Any]:
    owner, intruder = new_photographer(settings, "Olga"), new_photographer(settings, "Ivan")
    with TestClient(create_app(settings), headers=owner) as c:
        a = c.post("/events", json={"name": "Secret wedding of A"}).json()
        upload = c.post(f"/events/{a['slug']}/photos", files=[("files", ("a.jpg", jpeg(), "image/jpeg"))]).json()
        link = c.get(f"/events/{a['slug']}/attendee-link").json()
    with TestClient(create_app(settings), headers=intruder) as c:
        b = c.post("/events", json={"name": "Intruder party"}).json()
    engine = make_engine(settings.database_url, pool_size=1, max_overflow=0)
    with session_scope(make_session_factory(engine)) as session:
        event_a, event_b = get_event(session, a["slug"]), get_event(session, b["slug"])
        assert event_a is not None and event_b is not None
        b_token = make_token(event_b, settings.secret_key)
        event_a.retention_until = date.today() - timedelta(days=1)  # an expired link: signed, then past its date
        expired = make_token(event_a, settings.secret_key)
        session.rollback()
    engine.dispose()
    photo_id = upload["results"][0]["photo_id"]
    secrets = [a["access_code"], a["name"], photo_id, link["url"].split("t=")[1], str(a["id"])]
    return {"owner": owner, "intruder": intruder, "a": a, "b": b, "token": link["url"].split("t=")[1],
            "b_token": b_token, "expired": expired, "photo_id": photo_id, "secrets": secrets}  # fmt: skip


@pytest.fixture(scope="module")
def api(settings: Settings) -> Any:
    with TestClient(create_app(settings)) as c:
        yield c


def operations(api: TestClient) -> set[tuple[str, str]]:
    return {(m, p) for p, ops in api.get("/openapi.json").json()["paths"].items() for m in ops}


def call(api: TestClient, method: str, path: str, slug: str, headers: dict[str, str] | None = None, **kw: Any) -> Any:
    url = path.replace("{slug}", slug)
    return api.request(method.upper(), url, headers=headers or {}, **(BODIES.get((method, path), {}) | kw))


def no_leak(response: Any, world: dict[str, Any]) -> None:
    for secret in world["secrets"]:
        assert secret not in response.text, f"{response.request.method} {response.request.url} leaks {secret!r}"


def test_every_route_is_classified(api: TestClient) -> None:
    owner_routes = {op for op in operations(api) if "{slug}" in op[1]} - ATTENDEE
    assert operations(api) == PUBLIC | ACCOUNT | ATTENDEE | CODE_LOOKUP | FILES | owner_routes


def test_photographer_routes_refuse_strangers_and_other_photographers(api: TestClient, world: dict[str, Any]) -> None:
    owner_routes = sorted({op for op in operations(api) if "{slug}" in op[1]} - ATTENDEE)
    assert len(owner_routes) >= 10
    a, b = world["a"]["slug"], world["b"]["slug"]
    for method, path in owner_routes:
        anonymous = call(api, method, path, a)
        assert anonymous.status_code == 401, (method, path, anonymous.status_code)
        intruder = call(api, method, path, a, world["intruder"])
        missing = call(api, method, path, "no-such-event", world["intruder"])
        # Another's event and no event at all look the same (but for the slug echoed back).
        assert intruder.status_code == missing.status_code == 404, (method, path, intruder.status_code)
        assert intruder.json()["detail"].replace(a, "X") == missing.json()["detail"].replace("no-such-event", "X")
        # The owner of A cannot reach B through A's key either.
        assert call(api, method, path, b, world["owner"]).status_code == 404, (method, path)
        for r in (anonymous, intruder, missing):
            no_leak(r, world)
    # Listing shows only one's own events.
    listed = api.get("/events", headers=world["intruder"]).json()
    assert [e["slug"] for e in listed] == [b]


def test_attendee_routes_need_this_events_code_or_token(api: TestClient, world: dict[str, Any]) -> None:
    a, b = world["a"], world["b"]
    selfie = {"selfie": ("s.jpg", jpeg(), "image/jpeg")}
    attempts = {
        "nothing": ({}, 401),
        "another event's code": ({"code": b["access_code"]}, 403),
        "another event's token": ({"token": world["b_token"]}, 403),
        "a tampered token": (
            {"token": world["token"][:-2] + ("AA" if not world["token"].endswith("AA") else "BB")},
            403,
        ),
        "an expired token": ({"token": world["expired"]}, 403),
    }
    for method, path in sorted(ATTENDEE):
        for what, (creds, status) in attempts.items():
            form: dict[str, Any] = {**creds, "consent": "yes"}
            if path.endswith("download.zip"):
                form["photo_ids"] = [world["photo_id"]]
                r = call(api, method, path, a["slug"], data=form)
            else:
                r = call(api, method, path, a["slug"], data=form, files=selfie)
            assert r.status_code == status, (path, what, r.status_code, r.text)
            no_leak(r, world)
        # The right code for an event that does not exist answers like a wrong one.
        wrong = call(
            api,
            method,
            path,
            a["slug"],
            data={"code": "WRONG1", "consent": "yes", "photo_ids": [world["photo_id"]]},
            files=selfie,
        )
        ghost = call(
            api,
            method,
            path,
            "no-such-event",
            data={"code": a["access_code"], "consent": "yes", "photo_ids": [world["photo_id"]]},
            files=selfie,
        )
        assert (wrong.status_code, wrong.json()) == (ghost.status_code, ghost.json()), path


def test_code_lookup_and_pages_reveal_nothing_without_the_code(api: TestClient, world: dict[str, Any]) -> None:
    a = world["a"]
    assert api.get("/api/resolve", params={"code": "WRONG1"}).status_code == 404
    anonymous = api.get(f"/e/{a['slug']}")
    assert anonymous.status_code == 200
    no_leak(anonymous, world)
    assert api.get(f"/e/{a['slug']}", params={"t": world["b_token"]}).text == anonymous.text
    assert a["name"] in api.get(f"/e/{a['slug']}", params={"t": world["token"]}).text


def test_signed_file_links_cannot_be_tampered_with_or_reused_late(
    api: TestClient, world: dict[str, Any], settings: Settings
) -> None:
    key = f"events/{world['a']['id']}/originals/{world['photo_id']}.jpg"
    now = int(time.time())
    good = sign_local_url(key, 60, secret_key=settings.secret_key, filename="a.jpg")
    assert api.get(good).status_code == 200
    other_key = f"events/{world['a']['id']}/originals/{uuid.uuid4()}.jpg"
    forged = {
        "another key, same signature": good.replace(key, other_key),
        "a longer lifetime": good.replace(f"exp={now + 60}", f"exp={now + 6000}"),
        "a flipped signature": good[:-1] + ("0" if good[-1] != "0" else "1"),
        "another filename": good.replace("fn=a.jpg", "fn=b.jpg"),
        "expired": sign_local_url(key, -1, secret_key=settings.secret_key, filename="a.jpg"),
        "another secret": sign_local_url(key, 60, secret_key="x" * 40, filename="a.jpg"),
    }
    for what, url in forged.items():
        r = api.get(url)
        assert r.status_code == 403, (what, r.status_code)
        no_leak(r, world)
