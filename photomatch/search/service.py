"""Selfie search: bytes of a selfie in, that person's photos of one event out, best first.

The selfie lives only in this request's memory (photomatch.search.selfie). Access and consent are
checked by the caller first (photomatch.search.access).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from typing import cast

from sqlalchemy.orm import Session

from photomatch.config import Settings
from photomatch.faces.types import Analyzer
from photomatch.logs import get_logger
from photomatch.models import Event
from photomatch.search import feedback, repository
from photomatch.search.answers import Feedback
from photomatch.search.archive import ArchiveEntry, unique_names
from photomatch.search.calibration import site_calibrations
from photomatch.search.errors import TooManyPhotos
from photomatch.search.event_scan import event_embeddings, event_knn, query_for
from photomatch.search.feedback import Answers
from photomatch.search.ranking import PhotoHit, rank_photos
from photomatch.search.results import ResultItem, SearchResult, result_item
from photomatch.search.selfie import selfie_face
from photomatch.search.thresholds import resolve_thresholds
from photomatch.storage import Storage

log = get_logger(__name__)


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
    answers: Answers | None = None,
) -> SearchResult:
    """Find the event's photos of the selfie's person; `engine` must be the event's embedder.

    `answers` (checked by photomatch.search.feedback.verify) are honoured: photos the attendee
    confirmed are matches, first, and photos they rejected never come back in the visit.
    """
    started = time.perf_counter()
    if engine.model_name != event.embedder:
        raise RuntimeError(f"event {event.slug} needs {event.embedder}, got an engine for {engine.model_name}")
    cals = site_calibrations(settings)
    calibration = cals.for_models(event.embedder, event.second_embedder)
    tiers = resolve_thresholds(settings, match_threshold, possible_threshold, calibration)
    face = selfie_face(selfie, engine, settings)
    knn = event_knn(session, event, settings, cals)
    query = query_for(face, event, cals)
    answered, boxes = _feedback(session, event, answers or Answers())
    ranked = rank_photos(query, knn, event_embeddings(session, event), tiers, cals, answered)
    confirmed = {h.photo for h in ranked.matches if h.face in answered.me}
    matches = [replace(h, box=h.box or boxes.get(h.face)) for h in ranked.matches]
    possible = ranked.possible
    # The knn returns photo ids from the database: the ranking only keeps them opaque.
    photo_of = {h: cast(uuid.UUID, h.photo) for h in matches + possible + ranked.questions}
    photos = repository.photos_of_event(session, event.id, list(photo_of.values()))
    expires = settings.download_url_seconds

    def items(tier: list[PhotoHit]) -> list[ResultItem]:
        return [
            result_item(h, photos[photo_of[h]], storage, expires, confirmed=h.photo in confirmed)
            for h in tier
            if photo_of[h] in photos
        ]

    result = SearchResult(
        event=event.slug,
        model=event.embedder,
        query_box=[round(float(v), 1) for v in face.detection.box],
        query_quality=face.quality,
        match_threshold=float(ranked.tiers.match or 0.0),
        possible_threshold=float(ranked.tiers.possible or 0.0),
        matches=items(matches),
        possible_matches=items(possible),
        fused_with=ranked.fused_with,
        questions=items(ranked.questions),
    )
    answers = answers or Answers()
    shown = answers.shown | {r.face_id for r in result.matches + result.possible_matches + result.questions}
    result.feedback_token = feedback.issue(settings.secret_key, event.id, selfie, shown)
    log.info(
        "search.query.done",
        event_id=event.id,
        answers=len(answers.me) + len(answers.not_me),
        matches=len(result.matches),
        possible=len(result.possible_matches),
        fused_with=ranked.fused_with,
        ms=round((time.perf_counter() - started) * 1000),
    )
    return result


def _feedback(session: Session, event: Event, answers: Answers) -> tuple[Feedback, dict[int, tuple[float, ...]]]:
    """The answers as the ranking takes them (each face with its photo), and the answered faces'
    boxes; faces removed since they were shown (an opt-out) are left out."""
    if not answers:
        return Feedback(), {}
    faces = repository.faces_of_event(session, event.id, sorted(answers.me | answers.not_me))
    me = {f: faces[f][0] for f in sorted(answers.me) if f in faces}
    not_me = {f: faces[f][0] for f in sorted(answers.not_me) if f in faces}
    boxes = {f: tuple(round(float(v), 1) for v in box) for f, (_, box) in faces.items()}
    return Feedback(me, not_me), boxes


# A zip is streamed from storage, so its size is bounded by patience, not memory; this keeps one
# request from tying up a worker thread for an entire event.
MAX_ZIP_PHOTOS = 500


def archive_entries(session: Session, event: Event, photo_ids: list[uuid.UUID]) -> list[ArchiveEntry]:
    """Zip entries for the listed photos of `event` (others ignored), in request order, names made unique."""
    if len(photo_ids) > MAX_ZIP_PHOTOS:
        raise TooManyPhotos(f"at most {MAX_ZIP_PHOTOS} photos per download")
    wanted = list(dict.fromkeys(photo_ids))
    photos = repository.photos_of_event(session, event.id, wanted)
    found = [photos[i] for i in wanted if i in photos]
    names = unique_names(p.original_filename for p in found)
    return [ArchiveEntry(p.storage_key, name) for p, name in zip(found, names, strict=True)]
