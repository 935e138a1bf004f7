"""Opt-out: an attendee removes their face from an event with a selfie.

The faces the selfie finds (photos at or above Settings.optout_probability, the calibrated chance
that the photo shows them) are deleted and tombstoned, so they stop appearing in searches and a
reprocess does not bring them back (photomatch.photos.processing). The photographer keeps the photos.
Like a search, the selfie and its embedding are used in memory and never stored.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from photomatch.config import Settings
from photomatch.faces.types import Analyzer
from photomatch.logs import get_logger
from photomatch.models import Event
from photomatch.search import repository
from photomatch.search.calibration import site_calibrations
from photomatch.search.event_scan import event_embeddings, event_knn, query_for
from photomatch.search.ranking import rank_photos
from photomatch.search.selfie import selfie_face
from photomatch.search.thresholds import resolve_thresholds

log = get_logger(__name__)


@dataclass(frozen=True)
class OptOutResult:
    """Faces removed, and the photos they were in."""

    faces: int
    photos: int


def opt_out(
    session: Session, event: Event, selfie: bytes | bytearray, *, settings: Settings, engine: Analyzer
) -> OptOutResult:
    """Remove the selfie's person from the event's searchable faces, for good."""
    if engine.model_name != event.embedder:
        raise RuntimeError(f"event {event.slug} needs {event.embedder}, got an engine for {engine.model_name}")
    face = selfie_face(selfie, engine, settings)
    cals = site_calibrations(settings)
    knn = event_knn(session, event, settings, cals)
    tiers = resolve_thresholds(settings, None, None, cals.for_models(event.embedder, event.second_embedder))
    ranked = rank_photos(query_for(face, event, cals), knn, event_embeddings(session, event), tiers, cals)
    face_ids = [h.face for h in ranked.matches + ranked.possible if h.confidence >= settings.optout_probability]
    removed = repository.remove_faces(session, event.id, face_ids)
    log.info("search.optout.done", event_id=event.id, faces=sum(removed.values()), photos=len(removed))
    return OptOutResult(faces=sum(removed.values()), photos=len(removed))
