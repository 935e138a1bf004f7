"""What a search returns: the query face, the thresholds used and the two tiers, with links."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from photomatch.models import Photo
from photomatch.search.ranking import PhotoHit
from photomatch.storage import Storage


@dataclass
class ResultItem:
    """One photo in the results, with links to show and download it."""

    photo_id: uuid.UUID
    face_id: int  # the face that matched (what "this is me" / "not me" answer about)
    filename: str
    confidence: float
    distance: float
    thumbnail_url: str
    preview_url: str
    download_url: str
    face_box: list[float]
    width: int | None
    height: int | None
    confirmed: bool = False  # the attendee said "this is me" about this photo


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
    feedback_token: str = ""  # what a refined search sends back with its answers (photomatch.search.feedback)
    # "Is this you too?": photos just below the possible tier, to ask about; not results.
    questions: list[ResultItem] = field(default_factory=list)


def result_item(hit: PhotoHit, photo: Photo, storage: Storage, expires: int, *, confirmed: bool = False) -> ResultItem:
    """A ranked photo as the attendee gets it: links signed for `expires` seconds."""
    # Thumbnails are made by a separate task: until they exist the original stands in.
    small = photo.thumb_small_key or photo.storage_key
    medium = photo.thumb_medium_key or photo.storage_key
    return ResultItem(
        photo_id=photo.id,
        face_id=int(hit.face),
        filename=photo.original_filename,
        confidence=round(hit.confidence, 4),
        distance=round(hit.distance, 4),
        thumbnail_url=storage.url_for_download(small, "", expires),
        preview_url=storage.url_for_download(medium, "", expires),
        download_url=storage.url_for_download(photo.storage_key, photo.original_filename, expires),
        face_box=list(hit.box or ()),
        width=photo.width,
        height=photo.height,
        confirmed=confirmed,
    )
