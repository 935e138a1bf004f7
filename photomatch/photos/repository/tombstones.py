"""SQL for opt-out tombstones: the faces attendees removed, which reprocessing must not bring back."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from photomatch.models import FaceTombstone


def tombstones_of(session: Session, photo_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[tuple[str, np.ndarray]]]:
    """(model, embedding) of the faces attendees removed from these photos, per photo."""
    rows = session.execute(
        select(FaceTombstone.photo_id, FaceTombstone.model, FaceTombstone.embedding).where(
            FaceTombstone.photo_id.in_(list(photo_ids))
        )
    )
    out: dict[uuid.UUID, list[tuple[str, np.ndarray]]] = {}
    for photo_id, model, embedding in rows:
        vector = embedding.to_numpy() if hasattr(embedding, "to_numpy") else np.asarray(embedding)
        out.setdefault(photo_id, []).append((model, vector.astype(np.float32)))
    return out
