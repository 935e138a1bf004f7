"""Signed attendee link tokens."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from photomatch.models import Event
from photomatch.search.tokens import link_expiry, make_token, verify_token

KEY = "test-secret-key-that-is-long-enough-0123456789"


def event(code: str = "ABC234", days: int = 30) -> Event:
    return Event(
        id=uuid.uuid4(),
        slug="wedding",
        access_code=code,
        retention_until=datetime.now(UTC).date() + timedelta(days=days),
        embedder="dlib-resnet-v1",
    )


def test_a_token_opens_its_event_only() -> None:
    a, b = event(), event("XYZ789")
    token = make_token(a, KEY)
    assert verify_token(token, a, KEY)
    assert not verify_token(token, b, KEY)
    assert not verify_token(token, a, KEY + "x")
    assert not verify_token(token[:-2] + "xx", a, KEY)
    assert not verify_token("garbage", a, KEY)


def test_a_token_does_not_reveal_the_code_and_dies_with_it() -> None:
    a = event()
    token = make_token(a, KEY)
    assert a.access_code not in token
    a.access_code = "NEW567"
    assert not verify_token(token, a, KEY)


def test_a_token_expires_after_the_retention_date() -> None:
    a = event(days=1)
    token = make_token(a, KEY)
    end = link_expiry(a)
    assert datetime.fromtimestamp(end, UTC).date() == a.retention_until + timedelta(days=1)
    assert verify_token(token, a, KEY, now=end - 1)
    assert not verify_token(token, a, KEY, now=end)
    assert isinstance(a.retention_until, date)
