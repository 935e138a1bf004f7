"""Signed attendee links: a token that opens one event's search without typing its access code."""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime, timedelta
from datetime import time as dtime

from itsdangerous import BadSignature, URLSafeSerializer

from photomatch.models import Event

# Separates these signatures from every other use of secret_key (local download URLs, ...).
_SALT = "photomatch.search.attendee-link"


def _serializer(secret_key: str, event: Event) -> URLSafeSerializer:
    # The access code is mixed into the signing key, never into the payload (which anyone can
    # base64-decode): a token cannot leak the code, and a new code would revoke every old link.
    key = hmac.new(secret_key.encode(), f"{_SALT}\n{event.access_code}".encode(), hashlib.sha256).hexdigest()
    return URLSafeSerializer(key, salt=_SALT)


def link_expiry(event: Event) -> int:
    """Unix time at which an event's links stop working: the end of its retention date (UTC)."""
    end = datetime.combine(event.retention_until + timedelta(days=1), dtime.min, tzinfo=UTC)
    return int(end.timestamp())


def make_token(event: Event, secret_key: str) -> str:
    """A URL-safe token for `event`, valid until its retention date."""
    return str(_serializer(secret_key, event).dumps({"e": str(event.id), "x": link_expiry(event)}))


def verify_token(token: str, event: Event, secret_key: str, *, now: float | None = None) -> bool:
    """Whether `token` was made for `event` (with its current access code) and has not expired."""
    try:
        payload = _serializer(secret_key, event).loads(token)
    except BadSignature:
        return False
    if not isinstance(payload, dict) or payload.get("e") != str(event.id):
        return False
    expires = payload.get("x")
    return isinstance(expires, int) and (now if now is not None else time.time()) < expires
