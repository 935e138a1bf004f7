"""Attendee routes: selfie search, opt-out and zip download (access code or link token), and the link + QR code.

Searches, opt-outs and wrong codes are rate limited per client address and per event
(api/attendee_limits.py, Settings.rate_limit_*).
"""

from __future__ import annotations

import gc
import io
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api import attendee_limits
from api.deps import DbSession, OwnedEvent, SettingsDep, StorageDep
from api.memory_form import MemoryForm, read_form_in_memory
from api.schemas.search import AttendeeLink, OptOutResponse, QueryFace, Result, SearchResponse, Thresholds
from photomatch.config import Settings
from photomatch.errors import UserError
from photomatch.logs import get_logger
from photomatch.metrics import SEARCH_SECONDS
from photomatch.models import Event
from photomatch.search import feedback, optout, service
from photomatch.search.access import require_consent
from photomatch.search.archive import stream_zip
from photomatch.search.calibration import site_calibrations
from photomatch.search.errors import InvalidThresholds, NoPhotos, UnusableSelfie
from photomatch.search.selfie import engine_for
from photomatch.search.thresholds import resolve_thresholds
from photomatch.search.tokens import link_expiry, make_token
from photomatch.storage import Storage, content_disposition

log = get_logger(__name__)

router = APIRouter(prefix="/events/{slug}", tags=["search"])

# Room for the form fields and multipart framing around the selfie itself.
_FORM_OVERHEAD = 64 * 1024
_frozen = threading.Event()


def _freeze_long_lived_objects() -> None:
    """Once, after the first search loaded the face models: move every object alive now (torch, the
    weights, the app) out of the garbage collector's reach. Full collections over them paused
    searches by 60-80 ms, which made p95 several times p50 (bench/search.py)."""
    if not _frozen.is_set():
        _frozen.set()
        gc.freeze()


_SEARCH_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["selfie", "consent"],
                    "properties": {
                        "selfie": {"type": "string", "format": "binary", "description": "JPEG, PNG or WebP"},
                        "consent": {
                            "type": "string",
                            "enum": ["yes", "true", "1", "on"],
                            "description": "the attendee agreed to have the selfie compared with the event's faces",
                        },
                        "code": {"type": "string", "description": "the event's access code"},
                        "feedback_token": {
                            "type": "string",
                            "description": "the feedback_token of this selfie's last results, to send answers",
                        },
                        "me": {
                            "type": "array",
                            "items": {"type": "integer"},
                            "description": 'face_id of a result that is the attendee ("this is me"); repeat the field',
                        },
                        "not_me": {
                            "type": "array",
                            "items": {"type": "integer"},
                            "description": 'face_id of a result that is someone else ("not me"); repeat the field',
                        },
                        "token": {"type": "string", "description": "the token of an attendee link (instead of code)"},
                        "match_threshold": {
                            "type": "number",
                            "description": "minimum probability of a match (default: the calibrated one)",
                        },
                        "possible_threshold": {
                            "type": "number",
                            "description": "minimum probability of a possible match, at most match_threshold",
                        },
                    },
                }
            }
        },
    }
}


def _opened_with_consent(request: Request, session: Session, slug: str, form: MemoryForm) -> Event:
    """The event the form's code or token opens, once the attendee has consented to the biometric comparison."""
    event = attendee_limits.open_event(request, session, slug, form.first("code"), form.first("token"))
    require_consent(form.first("consent"))
    return event


def _float_field(form: MemoryForm, name: str) -> float | None:
    raw = form.first(name)
    if raw is None or not raw.strip():
        return None
    try:
        return float(raw)
    except ValueError:
        raise InvalidThresholds(f"{name} must be a number") from None


def _search(
    request: Request, slug: str, form: MemoryForm, session: Session, storage: Storage, settings: Settings
) -> SearchResponse:
    """The blocking part of a search (database and face engine), run in a worker thread."""
    event = _opened_with_consent(request, session, slug, form)
    match = _float_field(form, "match_threshold")
    possible = _float_field(form, "possible_threshold")
    calibration = site_calibrations(settings).for_models(event.embedder, event.second_embedder)
    resolve_thresholds(settings, match, possible, calibration)  # before the engine runs
    selfie = form.file("selfie")
    if selfie is None or not selfie.data:
        raise UnusableSelfie("missing_selfie", "Take or choose a selfie to search with.")
    answers = feedback.verify(
        form.first("feedback_token"),
        settings.secret_key,
        event.id,
        selfie.data,
        feedback.parse_ids(form.all("me"), "me"),
        feedback.parse_ids(form.all("not_me"), "not_me"),
    )
    result = service.search_event(
        session,
        storage,
        event,
        selfie.data,
        settings=settings,
        engine=engine_for(event, settings),
        match_threshold=match,
        possible_threshold=possible,
        answers=answers,
    )
    _freeze_long_lived_objects()
    return SearchResponse(
        event=result.event,
        model=result.model,
        fused_with=result.fused_with,
        query=QueryFace(box=result.query_box, quality=result.query_quality),
        thresholds=Thresholds(match=result.match_threshold, possible=result.possible_threshold),
        matches=[Result.model_validate(r) for r in result.matches],
        possible_matches=[Result.model_validate(r) for r in result.possible_matches],
        feedback_token=result.feedback_token,
        questions=[Result.model_validate(r) for r in result.questions],
    )


@router.post(
    "/search",
    openapi_extra=_SEARCH_BODY,
    responses={
        401: {"description": "neither code nor token"},
        403: {"description": "wrong code, a token for another event, or no such event (indistinguishable)"},
        429: {"description": "too many searches or wrong codes from this client, or for this event"},
        413: {"description": "the selfie is too large"},
        422: {"description": "no usable face (none, too small, too blurred), or bad thresholds"},
        400: {"description": "answers (me, not_me) that the feedback_token does not allow for this selfie"},
    },
)
async def search(
    slug: str, request: Request, session: DbSession, storage: StorageDep, settings: SettingsDep
) -> SearchResponse:
    """Find this event's photos of the person in a selfie (multipart: selfie + code or token).

    The selfie is parsed in memory, never spooled to disk (see api/memory_form.py), and neither it
    nor its embedding is stored or logged.
    """
    started = time.perf_counter()
    outcome, code = "error", 500
    try:
        await run_in_threadpool(attendee_limits.before_search, request, slug)
        form = await read_form_in_memory(request, max_bytes=settings.search_max_selfie_bytes + _FORM_OVERHEAD)
        response = await run_in_threadpool(_search, request, slug, form, session, storage, settings)
        outcome, code = "ok", 200
        return response
    except UserError as e:
        outcome, code = e.reason, e.status
        raise
    except HTTPException as e:
        outcome, code = "http_error", e.status_code
        raise
    finally:
        SEARCH_SECONDS.labels(outcome, str(code)).observe(time.perf_counter() - started)


def _opt_out(request: Request, slug: str, form: MemoryForm, session: Session, settings: Settings) -> OptOutResponse:
    event = _opened_with_consent(request, session, slug, form)
    selfie = form.file("selfie")
    if selfie is None or not selfie.data:
        raise UnusableSelfie("missing_selfie", "Take or choose a selfie of yourself.")
    engine = engine_for(event, settings)
    result = optout.opt_out(session, event, selfie.data, settings=settings, engine=engine)
    return OptOutResponse(faces=result.faces, photos=result.photos)


@router.post(
    "/opt-out",
    openapi_extra=_SEARCH_BODY,
    responses={
        401: {"description": "neither code nor token"},
        403: {"description": "wrong code, a token for another event, or no such event (indistinguishable)"},
        422: {"description": "no usable face in the selfie, or no consent"},
        429: {"description": "too many requests from this client, or for this event"},
    },
)
async def opt_out(slug: str, request: Request, session: DbSession, settings: SettingsDep) -> OptOutResponse:
    """Remove the selfie's person from this event's searches for good (multipart: selfie, code or token, consent).

    Their faces are deleted and tombstoned, so reprocessing a photo does not bring them back; the
    photographer keeps the photos. The selfie is used in memory only, as in a search.
    """
    await run_in_threadpool(attendee_limits.before_search, request, slug)
    form = await read_form_in_memory(request, max_bytes=settings.search_max_selfie_bytes + _FORM_OVERHEAD)
    return await run_in_threadpool(_opt_out, request, slug, form, session, settings)


@router.post("/download.zip", response_class=StreamingResponse)
def download_zip(
    slug: str,
    request: Request,
    session: DbSession,
    storage: StorageDep,
    settings: SettingsDep,
    photo_ids: Annotated[list[uuid.UUID], Form(description="photos to include (repeat the field)")],
    code: Annotated[str | None, Form()] = None,
    token: Annotated[str | None, Form()] = None,
) -> StreamingResponse:
    """A zip of the chosen originals, streamed; ids of other events' photos are ignored."""
    event = attendee_limits.open_event(request, session, slug, code, token)
    entries = service.archive_entries(session, event, photo_ids)
    if not entries:
        raise NoPhotos("None of these photos belong to this event.")
    log.info("search.download.zip", event_id=event.id, photos=len(entries))
    headers = {"Content-Disposition": content_disposition(f"{event.slug}-photos.zip")}
    return StreamingResponse(stream_zip(storage, entries), media_type="application/zip", headers=headers)


def _attendee_url(request: Request, settings: Settings, event: Event) -> tuple[str, str]:
    path = f"/e/{event.slug}?t={make_token(event, settings.secret_key)}"
    base = (settings.public_url or str(request.base_url)).rstrip("/")
    return path, base + path


@router.get("/attendee-link")
def attendee_link(event: OwnedEvent, request: Request, settings: SettingsDep) -> AttendeeLink:
    """The link to share with attendees (valid until the event's retention date) and its QR code."""
    path, absolute = _attendee_url(request, settings, event)
    return AttendeeLink(
        url=path,
        absolute_url=absolute,
        code=event.access_code,
        qr_svg_url=f"/events/{event.slug}/qr.svg",
        expires_at=datetime.fromtimestamp(link_expiry(event), UTC),
    )


@router.get("/qr.svg", response_class=Response, responses={200: {"content": {"image/svg+xml": {}}}})
def attendee_qr(event: OwnedEvent, request: Request, settings: SettingsDep) -> Response:
    """An SVG QR code of the absolute attendee link, to print or show on a screen."""
    import qrcode
    from qrcode.image.svg import SvgPathImage

    _, absolute = _attendee_url(request, settings, event)
    image = qrcode.make(absolute, image_factory=SvgPathImage, border=2)
    buffer = io.BytesIO()
    image.save(buffer)
    # Private: the image encodes a link that opens the event.
    return Response(buffer.getvalue(), media_type="image/svg+xml", headers={"Cache-Control": "private, no-store"})
