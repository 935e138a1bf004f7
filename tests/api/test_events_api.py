"""Event routes: create, list, get, ownership and authentication."""

from __future__ import annotations

import io
import re
from collections.abc import Callable

import sqlalchemy as sa
from fastapi.testclient import TestClient
from PIL import Image

from photomatch.config import Settings
from photomatch.storage import get_storage


def test_create_list_and_get_an_event(api_client: TestClient, make_photographer: Callable[[str], dict]) -> None:
    auth = make_photographer("Ann")
    created = api_client.post("/events", json={"name": "Anna & Ben's Wedding"}, headers=auth)
    assert created.status_code == 201, created.text
    event = created.json()
    assert event["slug"] == "anna-bens-wedding"
    assert len(event["access_code"]) == 6 and event["access_code"].isalnum()
    assert event["embedder"] == "dlib-resnet-v1" and event["second_embedder"] == "sface-2021dec-int8bq"
    assert event["attendee_url"].endswith(f"/e/anna-bens-wedding?code={event['access_code']}")

    listed = api_client.get("/events", headers=auth)
    assert listed.status_code == 200
    assert [e["slug"] for e in listed.json()] == ["anna-bens-wedding"]

    got = api_client.get("/events/anna-bens-wedding", headers=auth)
    assert got.status_code == 200
    assert got.json() == event


def test_slugs_are_unique_and_explicit_slugs_are_checked(
    api_client: TestClient, make_photographer: Callable[[str], dict]
) -> None:
    auth = make_photographer("Ann")
    other = make_photographer("Bob")
    slugs = [api_client.post("/events", json={"name": "Summer Party"}, headers=h).json()["slug"] for h in (auth, other)]
    slugs.append(api_client.post("/events", json={"name": "Summer party!"}, headers=auth).json()["slug"])
    assert slugs[0] == "summer-party" and len(set(slugs)) == 3
    # A name already in use gets a random suffix, not a count of the other events that share it.
    assert all(re.fullmatch(r"summer-party-[a-z2-9]{4}", s) for s in slugs[1:]), slugs

    taken = api_client.post("/events", json={"name": "x", "slug": "summer-party"}, headers=auth)
    assert taken.status_code == 409
    assert "not available" in taken.json()["detail"]
    bad = api_client.post("/events", json={"name": "x", "slug": "Not A Slug"}, headers=auth)
    assert bad.status_code == 422
    assert "invalid slug" in bad.json()["detail"]
    ok = api_client.post("/events", json={"name": "x", "slug": "my-day", "retention_days": 7}, headers=auth)
    assert ok.status_code == 201 and ok.json()["slug"] == "my-day"


def test_a_slug_conflict_does_not_tell_one_photographer_about_anothers_event(
    api_client: TestClient, make_photographer: Callable[[str], dict]
) -> None:
    ann, bob = make_photographer("Ann"), make_photographer("Bob")
    assert api_client.post("/events", json={"name": "Clean", "slug": "clean"}, headers=ann).status_code == 201
    # Bob cannot see Ann's event, and asking for its slug answers exactly as a reserved name does.
    assert api_client.get("/events/clean", headers=bob).status_code == 404
    taken = api_client.post("/events", json={"name": "x", "slug": "clean"}, headers=bob)
    reserved = api_client.post("/events", json={"name": "x", "slug": "admin"}, headers=bob)
    assert taken.status_code == reserved.status_code == 409
    assert taken.json()["reason"] == reserved.json()["reason"] == "slug_unavailable"
    assert taken.json()["detail"].replace("clean", "admin") == reserved.json()["detail"]
    assert "taken" not in taken.json()["detail"]
    # A slug made from the name says no more: the same random-suffix form for a taken and a reserved name.
    made = [api_client.post("/events", json={"name": n}, headers=bob).json()["slug"] for n in ("Clean", "Admin")]
    assert re.fullmatch(r"clean-[a-z2-9]{4}", made[0]) and re.fullmatch(r"admin-[a-z2-9]{4}", made[1]), made


def test_requests_without_a_valid_key_get_401(api_client: TestClient, make_photographer: Callable[[str], dict]) -> None:
    make_photographer("Ann")
    for headers in ({}, {"Authorization": "Bearer pm_nope_nope"}, {"X-API-Key": "garbage"}):
        for method, path in (("GET", "/events"), ("POST", "/events"), ("GET", "/events/any")):
            r = api_client.request(method, path, headers=headers, json={"name": "x"})
            assert r.status_code == 401, (method, path, headers)
            assert "API key" in r.json()["detail"]
            assert r.headers["www-authenticate"] == "Bearer"


def test_x_api_key_header_works(api_client: TestClient, make_photographer: Callable[[str], dict]) -> None:
    key = make_photographer("Ann")["Authorization"].removeprefix("Bearer ")
    assert api_client.get("/events", headers={"X-API-Key": key}).status_code == 200


def test_another_photographers_event_is_404(api_client: TestClient, make_photographer: Callable[[str], dict]) -> None:
    ann, bob = make_photographer("Ann"), make_photographer("Bob")
    slug = api_client.post("/events", json={"name": "Ann's"}, headers=ann).json()["slug"]
    assert api_client.get(f"/events/{slug}", headers=bob).status_code == 404
    assert api_client.get("/events", headers=bob).json() == []
    known = api_client.post(f"/events/{slug}/photos/known", json={"sha256": []}, headers=bob)
    assert known.status_code == 404
    missing = api_client.get("/events/no-such-event", headers=ann).json()
    assert missing == {"detail": "no event 'no-such-event'", "reason": "event_not_found"}


def test_known_photos_validates_digests(api_client: TestClient, make_photographer: Callable[[str], dict]) -> None:
    auth = make_photographer("Ann")
    slug = api_client.post("/events", json={"name": "E"}, headers=auth).json()["slug"]
    ok = api_client.post(f"/events/{slug}/photos/known", json={"sha256": ["ab" * 32]}, headers=auth)
    assert ok.status_code == 200 and ok.json() == {"known": []}
    bad = api_client.post(f"/events/{slug}/photos/known", json={"sha256": ["xyz"]}, headers=auth)
    assert bad.status_code == 422


def test_health_and_docs(api_client: TestClient) -> None:
    assert api_client.get("/health").json() == {"status": "ok"}
    assert api_client.get("/docs").status_code == 200
    paths = api_client.get("/openapi.json").json()["paths"]
    assert {"/events", "/events/{slug}", "/files/{key}"} <= set(paths)


def test_unexpected_errors_are_json_without_a_traceback(api_settings) -> None:  # type: ignore[no-untyped-def]
    from api.main import create_app

    app = create_app(api_settings)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/boom")
    assert r.status_code == 500
    assert r.json() == {"detail": "internal server error"}


def test_deleting_an_event_removes_its_rows_and_files(
    api_client: TestClient, make_photographer: Callable[[str], dict], api_settings: Settings
) -> None:
    owner, other = make_photographer("Dora"), make_photographer("Eve")
    event = api_client.post("/events", json={"name": "Gone soon"}, headers=owner).json()
    image = io.BytesIO()
    Image.new("RGB", (40, 30), "teal").save(image, "JPEG")
    uploaded = api_client.post(
        f"/events/{event['slug']}/photos", files=[("files", ("a.jpg", image.getvalue(), "image/jpeg"))], headers=owner
    )
    assert uploaded.json()["created"] == 1
    storage = get_storage(api_settings)
    assert list(storage.list_keys(f"events/{event['id']}/"))

    assert api_client.delete(f"/events/{event['slug']}").status_code == 401
    assert api_client.delete(f"/events/{event['slug']}", headers=other).status_code == 404
    assert api_client.delete(f"/events/{event['slug']}", headers=owner).status_code == 204

    assert api_client.get(f"/events/{event['slug']}", headers=owner).status_code == 404
    assert list(storage.list_keys(f"events/{event['id']}/")) == []
    db = sa.create_engine(api_settings.database_url)
    with db.connect() as conn:
        for table in ("events", "photos"):
            column = "id" if table == "events" else "event_id"
            assert conn.scalar(sa.text(f"SELECT count(*) FROM {table} WHERE {column} = :e"), {"e": event["id"]}) == 0
    db.dispose()
    search = api_client.post(
        f"/events/{event['slug']}/search",
        data={"code": event["access_code"], "consent": "yes"},
        files={"selfie": ("s.jpg", image.getvalue(), "image/jpeg")},
    )
    assert search.status_code == 403  # the code opens nothing any more, like any wrong code
