"""The selfie's face: decoded in memory, the most prominent usable face chosen, and only it embedded.

Nothing about the selfie (bytes, embedding, box) is written to disk, the database, storage or logs.
"""

from __future__ import annotations

import threading

from photomatch.config import Settings
from photomatch.faces.types import Analyzer, Face
from photomatch.imaging import ImageError, load_image
from photomatch.logs import get_logger
from photomatch.models import Event
from photomatch.search.errors import UnusableSelfie
from photomatch.search.ranking import QueryRejected, pick_query_face

log = get_logger(__name__)

# Torch already spreads one selfie over every core; two at once would only thrash the caches.
_engine_lock = threading.Lock()


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


def engine_for(event: Event, settings: Settings) -> Analyzer:
    """The process's face engine for the event's embedders, created on first use (torch loads here)."""
    from photomatch.faces.engine import get_engine

    return get_engine(embedder=event.embedder, settings=settings, second_embedder=event.second_embedder or "")
