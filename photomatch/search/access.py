"""Who may search an event: its access code or a signed link, and the attendee's consent."""

from __future__ import annotations

import hmac

from photomatch.events.service import normalize_access_code
from photomatch.logs import get_logger
from photomatch.models import Event
from photomatch.search.errors import ConsentRequired, InvalidCredentials, MissingCredentials
from photomatch.search.tokens import verify_token

log = get_logger(__name__)

CONSENT_VALUES = frozenset({"true", "yes", "1", "on"})


def require_consent(value: str | None) -> None:
    """Selfie search is biometric processing (GDPR Art. 9, BIPA): it needs the attendee's explicit yes."""
    if (value or "").strip().lower() not in CONSENT_VALUES:
        raise ConsentRequired(
            "Please agree to have your selfie compared with this event's photos (it is never stored)."
        )


def check_access(event: Event | None, *, code: str | None, token: str | None, secret_key: str) -> None:
    """Pass if `code` is the event's access code or `token` a valid link for it; raise otherwise.

    An event that does not exist (None) fails exactly as a wrong code does, so the answer never
    tells whether a slug exists.
    """
    if not code and not token:
        raise MissingCredentials("Enter the event's access code, or open the link you were given.")
    if event is not None:
        if code and hmac.compare_digest(normalize_access_code(code).encode(), event.access_code.encode()):
            return
        if token and verify_token(token, event, secret_key):
            return
    log.info("search.access.denied", event_id=event.id if event else None, via="code" if code else "token")
    if code:
        raise InvalidCredentials("That access code is not right for this event. Check it and try again.")
    raise InvalidCredentials("This link is not valid for this event, or it has expired. Ask for a new one.")
