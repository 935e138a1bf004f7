"""Rate limits on the attendee doors: per client, per event and site-wide, with a 429 and a Retry-After;
and they fail open (never a 5xx) when Redis is unreachable."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient
from PIL import Image

from api.main import create_app
from photomatch.accounts.service import create_photographer
from photomatch.config import Settings
from photomatch.db import make_engine, make_session_factory, session_scope
from photomatch.events.service import create_event


@contextmanager
def attendee(settings: Settings, address: str) -> Iterator[TestClient]:
    """A client connecting from `address` (the key of per-client limits)."""
    with TestClient(create_app(settings), client=(address, 40000), follow_redirects=False) as client:
        yield client


def make_event(settings: Settings) -> dict[str, str]:
    engine = make_engine(settings.database_url, pool_size=1, max_overflow=0)
    with session_scope(make_session_factory(engine)) as session:
        photographer, _ = create_photographer(session, "Rita", f"rita-{uuid.uuid4().hex[:8]}@example.com")
        event = create_event(session, photographer, "Limits", settings=settings)
        info = {"slug": event.slug, "code": event.access_code}
    engine.dispose()
    return info


def blank_selfie() -> dict[str, tuple[str, bytes, str]]:
    out = io.BytesIO()
    Image.new("RGB", (32, 32), "gray").save(out, "JPEG")
    return {"selfie": ("s.jpg", out.getvalue(), "image/jpeg")}


def assert_limited(response: object, what: str) -> None:
    status = response.status_code
    headers = response.headers
    assert status == 429, f"{what}: {status}"
    assert 0 < int(headers["retry-after"]) <= 3600, headers


def test_wrong_codes_lock_out_the_guesser_and_only_them(api_settings: Settings) -> None:
    settings = api_settings.model_copy(update={"rate_limit_code_failures": "5/hour"})
    event = make_event(settings)
    with attendee(settings, "203.0.113.7") as guesser:
        for i in range(5):
            assert guesser.get("/api/resolve", params={"code": f"WRONG{i}"}).status_code == 404
        locked = guesser.get("/api/resolve", params={"code": "WRONG9"})
        assert_limited(locked, "sixth wrong code")
        assert locked.json()["reason"] == "rate_limited"
        # Locked out of every code door, even with the right code now.
        assert_limited(guesser.get("/api/resolve", params={"code": event["code"]}), "right code after lockout")
        page = guesser.get("/join", params={"code": event["code"]})
        assert_limited(page, "/join after lockout")
        assert "Too many wrong codes" in page.text  # the landing page, not JSON
        search = guesser.post(f"/events/{event['slug']}/search", data={"code": event["code"]}, files=blank_selfie())
        assert_limited(search, "search with a code after lockout")
    with attendee(settings, "198.51.100.20") as neighbour:
        assert neighbour.get("/api/resolve", params={"code": event["code"]}).status_code == 200


def test_code_entry_is_limited_per_client_even_with_right_codes(api_settings: Settings) -> None:
    settings = api_settings.model_copy(update={"rate_limit_code_entry": "3/minute"})
    event = make_event(settings)
    with attendee(settings, "203.0.113.8") as client:
        for _ in range(3):
            assert client.get("/api/resolve", params={"code": event["code"]}).status_code == 200
        assert_limited(client.get("/api/resolve", params={"code": event["code"]}), "fourth lookup")


def test_site_wide_wrong_code_budget_bounds_many_addresses(api_settings: Settings) -> None:
    settings = api_settings.model_copy(update={"rate_limit_site_code_failures": "4/hour"})
    event = make_event(settings)
    for i in range(4):
        with attendee(settings, f"192.0.2.{i + 1}") as client:
            assert client.get("/api/resolve", params={"code": "NOPE22"}).status_code == 404
    # The budget is spent: an address that guessed wrong is refused before its code is looked at,
    # even the right one, and so is an address that guesses wrong now, after its one try.
    with attendee(settings, "192.0.2.1") as guesser:
        assert_limited(guesser.get("/api/resolve", params={"code": event["code"]}), "a guesser in the pause")
    with attendee(settings, "192.0.2.50") as newcomer:
        assert newcomer.get("/api/resolve", params={"code": "NOPE23"}).status_code == 404
        assert_limited(newcomer.get("/api/resolve", params={"code": event["code"]}), "a new guesser's second try")
        page = newcomer.get("/join", params={"code": event["code"]})
        assert_limited(page, "/join for a new guesser")
        assert "paused" in page.text


def test_wrong_guesses_by_many_addresses_never_refuse_a_right_code(api_settings: Settings) -> None:
    # The probe: 101 addresses spend the site's wrong-code budget. An attendee arriving afterwards
    # with the right code still gets in through every door, because a right code from an address
    # with no wrong code that day is checked before the site's budget.
    settings = api_settings.model_copy(update={"rate_limit_site_code_failures": "4/hour"})
    event = make_event(settings)
    for i in range(6):
        with attendee(settings, f"10.30.0.{i + 1}") as client:
            client.get("/api/resolve", params={"code": "Y00000"})
    with attendee(settings, "192.0.2.99") as honest:
        assert honest.get("/api/resolve", params={"code": event["code"]}).status_code == 200
        assert honest.get("/join", params={"code": event["code"]}).status_code == 303
        page = honest.get(f"/e/{event['slug']}", params={"code": event["code"]})
        assert page.status_code == 200 and "Limits" in page.text  # the event's own page, by name
        form = {"code": event["code"], "consent": "yes"}
        search = honest.post(f"/events/{event['slug']}/search", data=form, files=blank_selfie())
        assert search.status_code == 422, search.text  # searched (no face in the blank selfie), not refused
        # Attendee links (tokens) are not code guessing and keep working.
        assert honest.get(f"/e/{event['slug']}").status_code == 200


def test_searches_are_limited_per_client_and_per_event(api_settings: Settings) -> None:
    settings = api_settings.model_copy(update={"rate_limit_search": "3/minute", "rate_limit_event_search": "5/minute"})
    event = make_event(settings)
    form = {"code": event["code"], "consent": "yes"}
    with attendee(settings, "203.0.113.9") as first:
        for _ in range(3):
            assert first.post(f"/events/{event['slug']}/search", data=form, files=blank_selfie()).status_code == 422
        assert_limited(first.post(f"/events/{event['slug']}/search", data=form, files=blank_selfie()), "client")
    with attendee(settings, "203.0.113.10") as second:
        # The event counted the 3 answered searches (the refused one stopped at the client's limit):
        # two more fit, then the event's limit refuses this new client too.
        for _ in range(2):
            assert second.post(f"/events/{event['slug']}/search", data=form, files=blank_selfie()).status_code == 422
        assert_limited(second.post(f"/events/{event['slug']}/search", data=form, files=blank_selfie()), "event")
    with attendee(settings, "203.0.113.12") as third:
        other = make_event(settings)  # another event is unaffected
        agreed = {"code": other["code"], "consent": "yes"}
        assert third.post(f"/events/{other['slug']}/search", data=agreed, files=blank_selfie()).status_code == 422


def test_limits_fail_open_when_redis_is_down(api_settings: Settings) -> None:
    event = make_event(api_settings)
    broken = api_settings.model_copy(update={"redis_url": "redis://127.0.0.1:9/0"})
    with attendee(broken, "203.0.113.11") as client:
        for _ in range(3):
            assert client.get("/api/resolve", params={"code": event["code"]}).status_code == 200
        assert client.get("/api/resolve", params={"code": "WRONG1"}).status_code == 404
