"""The rate limits of the attendee doors (photomatch.ratelimit), applied per request.

The client is the connection's address as uvicorn reports it; behind a reverse proxy, run uvicorn
with --forwarded-allow-ips set to the proxy so that address is the real client's.
"""

from __future__ import annotations

from fastapi import Request
from sqlalchemy.orm import Session

from api.deps import resources
from photomatch.events.service import get_event, get_event_by_access_code, normalize_access_code
from photomatch.models import Event
from photomatch.ratelimit import RateLimited, RateLimiter
from photomatch.search.access import check_access
from photomatch.search.errors import InvalidCredentials


def client_of(request: Request) -> str:
    """The client's address, the key of per-client limits."""
    return request.client.host if request.client else "unknown"


def limiter_of(request: Request) -> RateLimiter:
    return resources(request).rate_limiter


def before_search(request: Request, slug: str) -> None:
    """Count a search against the client's and the event's limits."""
    limiter = limiter_of(request)
    limiter.hit(limiter.search, client_of(request))
    limiter.hit(limiter.event_search, slug)


def before_code_attempt(request: Request) -> None:
    """Refuse a code attempt while the client is out of wrong-code budget, or while the whole site is
    and this client already guessed wrong today.

    Refusing happens before the code is looked at (a refusal that depended on the code would tell a
    guesser which codes are right). A spent site budget still lets every address that has not guessed
    wrong try once: a right code is never refused because other addresses guessed wrong.
    """
    limiter = limiter_of(request)
    client = client_of(request)
    limiter.check(limiter.code_failure, client)
    try:
        limiter.check(limiter.site_code_failure)
    except RateLimited as paused:
        try:
            limiter.check(limiter.recent_code_failure, client)
        except RateLimited:
            raise paused from None  # retry when the site's budget frees, not in a day


def code_failed(request: Request) -> None:
    """Count a wrong code against the client and the site (after answering would be too late to refuse)."""
    limiter = limiter_of(request)
    client = client_of(request)
    limiter.note(limiter.recent_code_failure, client)
    limiter.hit(limiter.code_failure, client)
    limiter.note(limiter.site_code_failure)


def open_event(request: Request, session: Session, slug: str, code: str | None, token: str | None) -> Event:
    """The event `slug`, if the code or token opens it; wrong codes count against the wrong-code limits.

    An unknown slug answers exactly as a wrong code does (InvalidCredentials): whether an event
    exists never leaks.
    """
    if code:
        before_code_attempt(request)
    event = get_event(session, slug)
    try:
        check_access(event, code=code, token=token, secret_key=resources(request).settings.secret_key)
    except InvalidCredentials:
        if code:
            code_failed(request)
        raise
    assert event is not None
    return event


def lookup_code(request: Request, session: Session, code: str) -> Event | None:
    """The event a typed code opens, under the code-entry and wrong-code limits."""
    limiter = limiter_of(request)
    limiter.hit(limiter.code_entry, client_of(request))
    before_code_attempt(request)
    event = get_event_by_access_code(session, normalize_access_code(code)) if code else None
    if event is None and code:
        code_failed(request)
    return event
