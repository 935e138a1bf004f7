"""The web pages: a landing page, the photographer page and the attendee page, with their static files.

Pages are server-rendered Jinja2 with small vanilla JS; everything is served from here (no CDN, no
front-end build). The pages talk to the JSON API with fetch, the photographer's page with the API key
it keeps in localStorage, the attendee's page with the event code or the signed link token.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from datetime import date
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field

from api import attendee_limits
from api.deps import DbSession
from api.problems import CodeNotFound, NotFound
from photomatch.events.service import normalize_access_code
from photomatch.ratelimit import RateLimited
from photomatch.search.errors import InvalidCredentials

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
STATIC_DIR = WEB_DIR / "static"
templates = Jinja2Templates(directory=WEB_DIR / "templates")

router = APIRouter(tags=["pages"])

# Only plain files directly in static/ with these suffixes are served: no paths, no dotfiles.
_STATIC_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*\.(css|js|svg)$")
_MEDIA_TYPES = {"css": "text/css; charset=utf-8", "js": "text/javascript; charset=utf-8", "svg": "image/svg+xml"}
# Images come from this origin (local storage) or from presigned S3 URLs on another one: any origin
# may serve an image, but scripts, styles, requests and form posts stay on this origin. The QR SVG
# is shown through a blob: URL. Inline styles are allowed only because SVG attributes use them.
_CSP = (
    "default-src 'self'; img-src 'self' data: blob: https: http:; script-src 'self'; "
    "style-src 'self' 'unsafe-inline'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'"
)
_PAGE_HEADERS = {
    "Content-Security-Policy": _CSP,
    # The attendee link carries a token in its query string; never hand it on in a Referer.
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    # Pages are small and reference versioned static files; always revalidate them.
    "Cache-Control": "no-cache",
}


class ResolvedEvent(BaseModel):
    """The event an access code opens."""

    slug: str
    name: str
    retention_until: date = Field(description="when the event's photos and face data are deleted")


@cache
def static_version() -> str:
    """A short hash of the static files, appended to their URLs so a deploy busts browser caches."""
    digest = hashlib.sha256()
    for path in sorted(STATIC_DIR.iterdir()):
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _page(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("title", "photomatch")
    return templates.TemplateResponse(
        request, name, {"v": static_version(), **context}, status_code=status_code, headers=_PAGE_HEADERS
    )


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def landing(request: Request) -> HTMLResponse:
    """The landing page: an attendee enters the event code."""
    return _page(request, "landing.html")


@router.get("/join", include_in_schema=False, response_model=None)
def join(request: Request, session: DbSession, code: str = "") -> Response:
    """The landing form's target: redirect to the event whose code was typed, or say it matches none."""
    # Codes are 6 characters; anything far longer is not echoed back into the page.
    code = normalize_access_code(code)[:32]
    try:
        event = attendee_limits.lookup_code(request, session, code)
    except RateLimited as e:
        page = _page(request, "landing.html", status.HTTP_429_TOO_MANY_REQUESTS, error=str(e), code=code)
        page.headers.update(e.headers or {})
        return page
    if event is None:
        error = "Please enter the event code." if not code else f"No event has the code {code}. Check it and try again."
        return _page(request, "landing.html", status.HTTP_404_NOT_FOUND, error=error, code=code)
    return RedirectResponse(f"/e/{event.slug}?code={event.access_code}", status.HTTP_303_SEE_OTHER)


@router.get("/app", response_class=HTMLResponse, include_in_schema=False)
def photographer_page(request: Request) -> HTMLResponse:
    """The photographer page: sign in with an API key, upload albums, watch them process, share the link."""
    return _page(request, "photographer.html", title="photomatch · photographer")


@router.get("/e/{slug}", response_class=HTMLResponse, include_in_schema=False)
def attendee_page(request: Request, slug: str, session: DbSession, code: str = "", t: str = "") -> HTMLResponse:
    """The attendee page of an event: enter the code (or open the link), take a selfie, see the photos.

    The same page answers for every slug, with the event's name and retention date only when the
    link's code or token opens it: a slug alone reveals neither the event nor whether it exists.
    """
    code = normalize_access_code(code)[:32]
    opened = None
    if code or t:
        # A wrong code or token, or a spent wrong-code budget, shows the anonymous page; the search
        # then says why it cannot run.
        with contextlib.suppress(InvalidCredentials, RateLimited):
            opened = attendee_limits.open_event(request, session, slug, code or None, t or None)
    return _page(
        request,
        "attendee.html",
        title=opened.name if opened else "Find your photos",
        event_name=opened.name if opened else "",
        retention_until=opened.retention_until.isoformat() if opened else "",
        slug=slug,
    )


@router.get("/api/resolve", tags=["attendees"])
def resolve_code(
    request: Request,
    session: DbSession,
    code: Annotated[str, Query(min_length=1, max_length=32, description="the event code")],
) -> ResolvedEvent:
    """The event an attendee's access code opens; 404 if none; 429 after too many codes or wrong codes."""
    event = attendee_limits.lookup_code(request, session, code)
    if event is None:
        raise CodeNotFound("No event has this code. Check it and try again.")
    return ResolvedEvent(slug=event.slug, name=event.name, retention_until=event.retention_until)


@router.get("/static/{name}", include_in_schema=False)
def static_file(name: str, v: str = "") -> FileResponse:
    """A file of api/web/static; cached for a year when requested with the current version."""
    if not _STATIC_NAME.match(name) or not (STATIC_DIR / name).is_file():
        raise NotFound("not found")
    immutable = v == static_version()
    headers = {
        "Cache-Control": "public, max-age=31536000, immutable" if immutable else "no-cache",
        "X-Content-Type-Options": "nosniff",
    }
    return FileResponse(STATIC_DIR / name, media_type=_MEDIA_TYPES[name.rsplit(".", 1)[1]], headers=headers)
