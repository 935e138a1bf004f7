"""Hostile or odd input gets a clear 4xx, never a 500 (issue 9's findings, each a case here)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", "/api/resolve?code=%00"),
        ("GET", "/join?code=AB%00CD"),
        ("GET", "/e/a%00b"),
        ("POST", "/events/a%00b/search"),
        ("GET", "/events/a%00b/status"),
    ],
)
def test_a_nul_byte_in_the_path_or_query_is_refused_not_a_500(api_client: TestClient, method: str, url: str) -> None:
    response = api_client.request(method, url)
    assert response.status_code == 400, response.text
    assert response.json()["reason"] == "invalid_characters"


def test_an_event_name_with_a_nul_byte_is_refused(
    api_client: TestClient, make_photographer: Callable[[str], dict[str, str]]
) -> None:
    auth = make_photographer("Nora")
    response = api_client.post("/events", json={"name": "party\u0000time"}, headers=auth)
    assert response.status_code == 422, response.text
    assert "control characters" in response.json()["detail"]
    assert api_client.post("/events", json={"name": "party time"}, headers=auth).status_code == 201


def test_an_offset_past_any_album_is_a_422_not_an_integer_overflow(
    api_client: TestClient, make_photographer: Callable[[str], dict[str, str]]
) -> None:
    auth = make_photographer("Olga")
    slug = api_client.post("/events", json={"name": "Big"}, headers=auth).json()["slug"]
    response = api_client.get(f"/events/{slug}/photos/failed?offset=9223372036854775808", headers=auth)
    assert response.status_code == 422, response.text
    assert api_client.get(f"/events/{slug}/photos/failed?offset=0", headers=auth).status_code == 200


def test_a_validation_error_does_not_echo_the_upload_back(
    api_client: TestClient, make_photographer: Callable[[str], dict[str, str]]
) -> None:
    auth = make_photographer("Echo")
    slug = api_client.post("/events", json={"name": "Echo"}, headers=auth).json()["slug"]
    big = "A" * 1_000_000
    # `files` as a text field instead of a file part: invalid, and 1 MB of it.
    response = api_client.post(f"/events/{slug}/photos", data={"files": big}, headers=auth)
    assert response.status_code == 422
    assert len(response.content) < 2_000 and "AAAA" not in response.text
    assert response.json()["reason"] == "invalid_request" and response.json()["detail"][0]["loc"]
    too_long = api_client.post("/events", json={"name": "x" * 100_000}, headers=auth)
    assert too_long.status_code == 422 and len(too_long.content) < 2_000
