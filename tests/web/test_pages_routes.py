"""The page routes without a browser: rendering, the code look-ups, static files and headers."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.routes.pages import static_version
from photomatch.accounts.service import create_photographer
from photomatch.config import Settings
from photomatch.db import make_engine, make_session_factory, session_scope
from photomatch.events.service import create_event


@pytest.fixture
def client(api_settings: Settings, make_web_app: Callable[[Settings], FastAPI]) -> Iterator[TestClient]:
    with TestClient(make_web_app(api_settings), follow_redirects=False) as c:
        yield c


@pytest.fixture
def event(api_settings: Settings) -> dict[str, str]:
    """An event whose name needs HTML escaping."""
    engine = make_engine(api_settings.database_url, pool_size=1, max_overflow=0)
    with session_scope(make_session_factory(engine)) as session:
        photographer, _ = create_photographer(session, "Pia", "pia@example.com")
        ev = create_event(session, photographer, "Anna & Ben <script>", settings=api_settings)
        info = {"slug": ev.slug, "code": ev.access_code, "name": ev.name, "retention_until": str(ev.retention_until)}
    engine.dispose()
    return info


def test_landing_and_photographer_pages_render_with_safe_headers(client: TestClient) -> None:
    for path in ("/", "/app"):
        response = client.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert response.headers["referrer-policy"] == "no-referrer"
        assert f"/static/site.css?v={static_version()}" in response.text
        assert 'name="viewport"' in response.text
    assert 'action="/join"' in client.get("/").text
    assert "/static/photographer.js" in client.get("/app").text


def test_the_landing_form_redirects_to_the_event_of_a_code(client: TestClient, event: dict[str, str]) -> None:
    # People type codes in lower case and with a dash.
    typed = event["code"][:3].lower() + "-" + event["code"][3:].lower()
    response = client.get("/join", params={"code": typed})
    assert response.status_code == 303
    assert response.headers["location"] == f"/e/{event['slug']}?code={event['code']}"

    response = client.get("/join", params={"code": "NOPE99"})
    assert response.status_code == 404
    assert "No event has the code NOPE99" in response.text
    assert "Please enter the event code" in client.get("/join").text


def test_the_attendee_page_shows_the_event_name_escaped(client: TestClient, event: dict[str, str]) -> None:
    response = client.get(f"/e/{event['slug']}", params={"code": event["code"]})
    assert response.status_code == 200
    assert "Anna &amp; Ben &lt;script&gt;" in response.text
    assert "<script>" not in response.text.replace("<script src=", "")
    assert 'capture="user"' in response.text and 'accept="image/*"' in response.text

    # Without the code, or for a slug that does not exist, the same anonymous page: no name, no existence.
    anonymous = client.get(f"/e/{event['slug']}")
    missing = client.get("/e/no-such-event")
    wrong = client.get(f"/e/{event['slug']}", params={"code": "WRONG1"})
    for page in (anonymous, missing, wrong):
        assert page.status_code == 200 and "Anna" not in page.text and "Find your photos" in page.text
    assert missing.text.replace("no-such-event", event["slug"]) == anonymous.text
    # The consent text and the retention date come with the page the code opens.
    assert "I agree to have my selfie compared" in response.text
    assert f'data-retention="{event["retention_until"]}"' in response.text


def test_resolve_finds_the_event_of_a_code(client: TestClient, event: dict[str, str]) -> None:
    response = client.get("/api/resolve", params={"code": event["code"].lower()})
    assert response.status_code == 200
    assert response.json() == {
        "slug": event["slug"],
        "name": event["name"],
        "retention_until": event["retention_until"],
    }
    assert client.get("/api/resolve", params={"code": "ZZZZZZ"}).status_code == 404
    assert client.get("/api/resolve").status_code == 422


def test_static_files_are_served_with_cache_headers(client: TestClient) -> None:
    response = client.get("/static/site.css", params={"v": static_version()})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    assert "immutable" in response.headers["cache-control"]
    assert client.get("/static/attendee.js").headers["cache-control"] == "no-cache"
    assert client.get("/static/attendee.js").headers["content-type"].startswith("text/javascript")
    for bad in ("/static/nope.js", "/static/..%2Fpages.py", "/static/.hidden.js", "/static/site.css.map"):
        assert client.get(bad).status_code == 404, bad
