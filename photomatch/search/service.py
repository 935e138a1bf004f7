"""Selfie search: bytes of a selfie in, that person's photos of one event out, best first.

The selfie lives only in this request's memory: it is decoded, its face embedded and searched,
and nothing about it (bytes, embedding, box) is written to disk, the database, storage or logs.
"""

from __future__ import annotations

import hmac
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import cast

import numpy as np
from sqlalchemy.orm import Session

from photomatch.config import Settings
from photomatch.errors import UserError
from photomatch.events.service import normalize_access_code
from photomatch.faces.types import Analyzer, Face
from photomatch.imaging import ImageError, load_image
from photomatch.logs import get_logger
from photomatch.models import Event, Photo
from photomatch.search import repository
from photomatch.search.archive import ArchiveEntry, unique_names
from photomatch.search.calibration import CANDIDATE_RADIUS, Calibration, calibration_for
from photomatch.search.ranking import (
    Candidates,
    Embeddings,
    Knn,
    Neighbours,
    PhotoHit,
    Query,
    QueryRejected,
    Tiers,
    face_quality,
    pick_query_face,
    rank_photos,
)
from photomatch.search.tokens import verify_token
from photomatch.storage import Storage

log = get_logger(__name__)

# Torch already spreads one selfie over every core; two at once would only thrash the caches.
_engine_lock = threading.Lock()


class SearchError(UserError):
    """A problem the attendee can fix; str(e) is the message to show."""

    reason = "search_error"


class MissingCredentials(SearchError):
    """Neither an access code nor a link token was sent."""

    reason = "missing_credentials"
    status = 401


class InvalidCredentials(SearchError):
    """The access code or the link token does not open this event."""

    reason = "invalid_credentials"
    status = 403


class InvalidThresholds(SearchError):
    """Requested thresholds outside the configured bounds."""

    reason = "invalid_thresholds"


class ConsentRequired(SearchError):
    """The attendee has not agreed to have their selfie compared with the event's faces."""

    reason = "consent_required"
    status = 422


CONSENT_VALUES = frozenset({"true", "yes", "1", "on"})


def require_consent(value: str | None) -> None:
    """Selfie search is biometric processing (GDPR Art. 9, BIPA): it needs the attendee's explicit yes."""
    if (value or "").strip().lower() not in CONSENT_VALUES:
        raise ConsentRequired(
            "Please agree to have your selfie compared with this event's photos (it is never stored)."
        )


class UnusableSelfie(SearchError):
    """The selfie cannot be searched with: not an image, no face, too small or too blurred."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message, reason=reason)


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


def resolve_thresholds(
    settings: Settings, match: float | None, possible: float | None, calibration: Calibration | None = None
) -> Tiers:
    """The request's tier thresholds (minimum probabilities), defaulting to the calibrated ones.

    InvalidThresholds if one is out of bounds or the possible tier would demand more than matches.
    A threshold nobody asked for (request or settings) stays None: the ranking applies the
    calibration it actually used (photomatch.search.ranking.Tiers).
    """
    cal = calibration or calibration_for(None)
    asked_m = match if match is not None else settings.search_match_probability
    asked_p = possible if possible is not None else settings.search_possible_probability
    m = asked_m if asked_m is not None else cal.match
    p = asked_p if asked_p is not None else cal.possible
    # A possible tier stricter than the matches' would be empty, which is fine when only the
    # match threshold was raised; the reverse cannot be expressed as two tiers.
    if match is not None and possible is None:
        p = min(p, m)
    if possible is not None and match is None:
        m = max(m, p)
    lo, hi = settings.search_threshold_min, settings.search_threshold_max
    if not (lo <= m <= hi and lo <= p <= hi):
        raise InvalidThresholds(f"thresholds are probabilities between {lo} and {hi}")
    if p > m:
        raise InvalidThresholds("possible_threshold must not be larger than match_threshold")
    return Tiers(
        match=m if asked_m is not None or asked_p is not None else None,
        possible=p if asked_p is not None or asked_m is not None else None,
    )


def selfie_face(data: bytes | bytearray, engine: Analyzer, settings: Settings) -> Face:
    """Decode the selfie and return its most prominent usable face, embedded; UnusableSelfie otherwise."""
    try:
        image = load_image(bytes(data), max_bytes=settings.search_max_selfie_bytes)
    except ImageError as e:
        log.info("search.query.bad_image", reason=e.reason)
        raise UnusableSelfie(e.reason, f"We could not read your selfie: {e}") from None
    with _engine_lock:
        faces = engine.analyze([image.rgb], embed=False)[0]
        try:
            face = pick_query_face(
                faces, min_size=settings.search_min_face_px, min_sharpness=settings.search_min_sharpness
            )
        except QueryRejected as e:
            log.info("search.query.rejected", reason=e.reason, faces=len(faces))
            raise UnusableSelfie(e.reason, str(e)) from None
        # Only the chosen face is embedded: bystanders in a selfie cost embedding time for nothing.
        face = engine.embed_faces(image.rgb, [face])[0]
    if face.embedding is None or face.model is None:
        raise RuntimeError("the engine returned a face without an embedding")
    return face


@dataclass
class ResultItem:
    """One photo in the results, with links to show and download it."""

    photo_id: uuid.UUID
    filename: str
    confidence: float
    distance: float
    thumbnail_url: str
    preview_url: str
    download_url: str
    face_box: list[float]
    width: int | None
    height: int | None


@dataclass
class SearchResult:
    """What a search returns: the query face, the thresholds used and the two tiers."""

    event: str
    model: str
    query_box: list[float]
    query_quality: dict[str, float]
    match_threshold: float
    possible_threshold: float
    matches: list[ResultItem] = field(default_factory=list)
    possible_matches: list[ResultItem] = field(default_factory=list)
    fused_with: str | None = None  # the second model fused with `model`, if any


def event_knn(session: Session, event: Event, boxes: dict[int, list[float]], settings: Settings) -> Knn:
    """The ranking's scan of this event's faces in Postgres; remembers each candidate face's box."""

    def knn(query: np.ndarray, second: np.ndarray | None = None, among: np.ndarray | None = None) -> Neighbours:
        by_second = None if second is None or not event.second_embedder else (event.second_embedder, second)
        scan = repository.scan_event(
            session,
            event.id,
            event.embedder,
            query,
            radius=CANDIDATE_RADIUS,
            limit=settings.search_max_candidates,
            indexed_limit=settings.search_index_max_candidates,
            ef_search=settings.search_index_ef_search,
            second=by_second,
            among=among,
        )
        rows = scan.near
        for face_id, box in zip(rows.face, rows.box, strict=True):
            boxes[int(face_id)] = [round(float(v), 1) for v in box]
        candidates = Candidates(
            face=rows.face,
            photo=list(rows.photo),
            distance=rows.distance,
            quality=face_quality(rows.probability, rows.size, rows.sharpness),
            second_distance=scan.near_second,
        )
        return Neighbours(candidates, scan.nearest, scan.nearest_face, scan.event_faces, scan.nearest_second)

    return knn


def event_embeddings(session: Session, event: Event) -> Embeddings:
    """The ranking's read of some of this event's face vectors (query expansion's hits)."""

    def embeddings(face_ids: np.ndarray, second: bool = False) -> np.ndarray:
        return repository.face_embeddings(session, event.id, face_ids, second)

    return embeddings


def _item(hit: PhotoHit, photo: Photo, box: list[float], storage: Storage, expires: int) -> ResultItem:
    # Thumbnails are made by a separate task: until they exist the original stands in.
    small = photo.thumb_small_key or photo.storage_key
    medium = photo.thumb_medium_key or photo.storage_key
    return ResultItem(
        photo_id=photo.id,
        filename=photo.original_filename,
        confidence=round(hit.confidence, 4),
        distance=round(hit.distance, 4),
        thumbnail_url=storage.url_for_download(small, "", expires),
        preview_url=storage.url_for_download(medium, "", expires),
        download_url=storage.url_for_download(photo.storage_key, photo.original_filename, expires),
        face_box=box,
        width=photo.width,
        height=photo.height,
    )


def search_event(
    session: Session,
    storage: Storage,
    event: Event,
    selfie: bytes | bytearray,
    *,
    settings: Settings,
    engine: Analyzer,
    match_threshold: float | None = None,
    possible_threshold: float | None = None,
) -> SearchResult:
    """Find the event's photos of the selfie's person; `engine` must be the event's embedder."""
    started = time.perf_counter()
    if engine.model_name != event.embedder:
        raise RuntimeError(f"event {event.slug} needs {event.embedder}, got an engine for {engine.model_name}")
    calibration = calibration_for(event.second_embedder, event.embedder)
    tiers = resolve_thresholds(settings, match_threshold, possible_threshold, calibration)
    face = selfie_face(selfie, engine, settings)
    boxes: dict[int, list[float]] = {}
    knn = event_knn(session, event, boxes, settings)
    ranked = rank_photos(query_for(face, event), knn, event_embeddings(session, event), tiers)
    # The knn returns photo ids from the database: the ranking only keeps them opaque.
    photo_of = {h: cast(uuid.UUID, h.photo) for h in ranked.matches + ranked.possible}
    photos = repository.photos_of_event(session, event.id, list(photo_of.values()))
    expires = settings.download_url_seconds

    def items(tier: list[PhotoHit]) -> list[ResultItem]:
        return [_item(h, photos[photo_of[h]], boxes[h.face], storage, expires) for h in tier if photo_of[h] in photos]

    result = SearchResult(
        event=event.slug,
        model=event.embedder,
        query_box=[round(float(v), 1) for v in face.detection.box],
        query_quality=face.quality,
        match_threshold=float(ranked.tiers.match or 0.0),
        possible_threshold=float(ranked.tiers.possible or 0.0),
        matches=items(ranked.matches),
        possible_matches=items(ranked.possible),
        fused_with=ranked.fused_with,
    )
    log.info(
        "search.query.done",
        event_id=event.id,
        matches=len(result.matches),
        possible=len(result.possible_matches),
        fused_with=ranked.fused_with,
        ms=round((time.perf_counter() - started) * 1000),
    )
    return result


def query_for(face: Face, event: Event) -> Query:
    """The selfie's vectors the event can be searched with: both when it stores its second model's."""
    fuse = bool(event.second_embedder) and face.second_model == event.second_embedder
    # Fused only where a calibration exists for the pair (another first model searches alone).
    fuse = fuse and calibration_for(event.second_embedder, event.embedder).second_cohort is not None
    return Query.of(face, fuse=fuse)


def engine_for(event: Event, settings: Settings) -> Analyzer:
    """The process's face engine for the event's embedders, created on first use (torch loads here)."""
    from photomatch.faces.engine import get_engine

    return get_engine(embedder=event.embedder, settings=settings, second_embedder=event.second_embedder or "")


# A zip is streamed from storage, so its size is bounded by patience, not memory; this keeps one
# request from tying up a worker thread for an entire event.
MAX_ZIP_PHOTOS = 500


def archive_entries(session: Session, event: Event, photo_ids: list[uuid.UUID]) -> list[ArchiveEntry]:
    """Zip entries for the listed photos of `event` (others ignored), in request order, names made unique."""
    if len(photo_ids) > MAX_ZIP_PHOTOS:
        raise SearchError(f"at most {MAX_ZIP_PHOTOS} photos per download")
    wanted = list(dict.fromkeys(photo_ids))
    photos = repository.photos_of_event(session, event.id, wanted)
    found = [photos[i] for i in wanted if i in photos]
    names = unique_names(p.original_filename for p in found)
    return [ArchiveEntry(p.storage_key, name) for p, name in zip(found, names, strict=True)]
