"""Creating and finding events: slugs, attendee access codes and retention dates."""

from __future__ import annotations

import re
import secrets
import unicodedata
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from photomatch.config import Settings, get_settings
from photomatch.errors import UserError
from photomatch.events import repository
from photomatch.logs import get_logger
from photomatch.models import Event, Photographer

log = get_logger(__name__)

# Attendees type the code from a printed card or a slide: no 0/O, 1/I/L, and upper case only.
# 31^6 is about 887 million codes, far more than events, so random collisions are rare and retried.
ACCESS_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
ACCESS_CODE_LENGTH = 6
SLUG_MAX = 60
_SLUG_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_MAX_ATTEMPTS = 10


class EventError(UserError, ValueError):
    """A user-fixable problem with an event request (bad slug, slug taken, bad retention)."""

    reason = "invalid_event"


class SlugUnavailable(EventError):
    """The explicitly requested slug is in use or reserved: one answer for both, so that it never
    tells a photographer that another photographer's event exists."""

    reason = "slug_unavailable"
    status = 409


# Names kept for the site's own pages and doors: they answer exactly as a slug in use does.
RESERVED_SLUGS = frozenset(
    {"about", "admin", "api", "app", "docs", "e", "event", "events", "files", "health", "help", "join", "login",
     "logout", "metrics", "new", "photos", "privacy", "search", "static", "support", "terms", "www"}
)  # fmt: skip
_SUFFIX_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


def slugify(name: str) -> str:
    """A URL slug from a name: ASCII letters and digits joined by single dashes ("Anna & Ben's!" -> "anna-bens")."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    # "Ben's" -> "bens", not "ben-s".
    ascii_name = re.sub(r"['\u2019]", "", ascii_name)
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:SLUG_MAX].rstrip("-") or "event"


def normalize_access_code(code: str) -> str:
    """The code as stored: upper case, spaces and dashes removed (people type "abc-234")."""
    return re.sub(r"[\s-]+", "", code).upper()


def generate_access_code() -> str:
    """A random attendee code from the unambiguous alphabet."""
    return "".join(secrets.choice(ACCESS_CODE_ALPHABET) for _ in range(ACCESS_CODE_LENGTH))


def _available(session: Session, slug: str) -> bool:
    return slug not in RESERVED_SLUGS and not repository.slug_taken(session, slug)


def _free_slug(session: Session, base: str) -> str:
    """`base` if it is available, else `base` with a random suffix ("summer-party-k3xq"): a counter
    ("-2", "-3") would tell how many other photographers' events share the name."""
    if _available(session, base):
        return base
    suffix = "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(4))
    return f"{base[: SLUG_MAX - len(suffix) - 1].rstrip('-')}-{suffix}"


def _validate_slug(slug: str) -> str:
    slug = slug.strip().lower()
    if len(slug) > SLUG_MAX or not _SLUG_RE.fullmatch(slug):
        raise EventError(
            f"invalid slug {slug!r}: use lower-case letters, digits and single dashes, at most {SLUG_MAX} characters"
        )
    return slug


def create_event(
    session: Session,
    photographer: Photographer,
    name: str,
    *,
    slug: str | None = None,
    retention_days: int | None = None,
    settings: Settings | None = None,
) -> Event:
    """Create an event owned by `photographer`, with a unique slug and access code; flushes only."""
    settings = settings or get_settings()
    name = name.strip()
    if not name or len(name) > 200:
        raise EventError("an event needs a name of 1 to 200 characters")
    if any(unicodedata.category(c) == "Cc" for c in name):
        raise EventError("an event name cannot contain control characters")
    days = settings.event_retention_days if retention_days is None else retention_days
    if not 1 <= days <= 3650:
        raise EventError("retention_days must be between 1 and 3650")
    explicit = slug is not None
    wanted = _validate_slug(slug) if slug is not None else slugify(name)
    retention_until: date = datetime.now(UTC).date() + timedelta(days=days)

    for _ in range(_MAX_ATTEMPTS):
        if explicit and not _available(session, wanted):
            raise SlugUnavailable(
                f"the slug {wanted!r} is not available; choose another, or leave it out to get one made from the name"
            )
        event = Event(
            photographer_id=photographer.id,
            name=name,
            slug=wanted if explicit else _free_slug(session, wanted),
            access_code=generate_access_code(),
            retention_until=retention_until,
            embedder=settings.embedder,
            second_embedder=settings.second_embedder or None,
        )
        # A savepoint: a concurrent insert of the same slug (or a code collision) rolls back only
        # this attempt, not the caller's transaction.
        try:
            with session.begin_nested():
                repository.add_event(session, event)
        except IntegrityError:
            log.info("events.create.collision", slug=event.slug)
            continue
        log.info("events.created", event_id=event.id, slug=event.slug, photographer_id=photographer.id)
        return event
    raise EventError("could not allocate a unique slug and access code; try again")


def get_event(session: Session, slug: str) -> Event | None:
    """The event with this slug, if any."""
    return repository.get_by_slug(session, slug)


def get_event_by_access_code(session: Session, code: str) -> Event | None:
    """The event an attendee's access code opens, if any."""
    return repository.get_by_access_code(session, normalize_access_code(code))


def list_events(session: Session, photographer: Photographer) -> list[Event]:
    """The photographer's events, newest first."""
    return repository.list_for_photographer(session, photographer.id)


def attendee_path(event: Event) -> str:
    """The attendee page of an event, relative to the site root (the code pre-filled)."""
    return f"/e/{event.slug}?code={event.access_code}"
