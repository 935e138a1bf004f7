"""The ranking's view of one event in Postgres: its scan, its face vectors, and the selfie's query."""

from __future__ import annotations

import numpy as np
from sqlalchemy.orm import Session

from photomatch.config import Settings
from photomatch.faces.types import Face
from photomatch.models import Event
from photomatch.search import repository
from photomatch.search.calibration import CalibrationSet
from photomatch.search.ranking import Candidates, Embeddings, Knn, Neighbours, Query, face_quality


def event_knn(session: Session, event: Event, settings: Settings, calibrations: CalibrationSet) -> Knn:
    """The ranking's scan of this event's faces (within the calibration's candidate radius)."""

    def knn(query: np.ndarray, second: np.ndarray | None = None, among: np.ndarray | None = None) -> Neighbours:
        by_second = None if second is None or not event.second_embedder else (event.second_embedder, second)
        scan = repository.scan_event(
            session,
            event.id,
            event.embedder,
            query,
            radius=calibrations.search.candidate_radius,
            limit=settings.search_max_candidates,
            indexed_limit=settings.search_index_max_candidates,
            ef_search=settings.search_index_ef_search,
            second=by_second,
            among=among,
        )
        rows = scan.near
        candidates = Candidates(
            face=rows.face,
            photo=list(rows.photo),
            distance=rows.distance,
            quality=face_quality(rows.probability, rows.size, rows.sharpness),
            second_distance=scan.near_second,
            box=rows.box,
        )
        return Neighbours(candidates, scan.nearest, scan.nearest_face, scan.event_faces, scan.nearest_second)

    return knn


def event_embeddings(session: Session, event: Event) -> Embeddings:
    """The ranking's read of some of this event's face vectors (query expansion's hits)."""

    def embeddings(face_ids: np.ndarray, second: bool = False) -> np.ndarray:
        return repository.face_embeddings(session, event.id, face_ids, second)

    return embeddings


def query_for(face: Face, event: Event, calibrations: CalibrationSet) -> Query:
    """The selfie's vectors the event can be searched with: both when it stores its second model's
    and that pair is calibrated (otherwise the first model searches alone)."""
    fuse = face.second_model == event.second_embedder and calibrations.fuses(event.embedder, event.second_embedder)
    return Query.of(face, fuse=fuse)
