"""All tables, imported here so `Base.metadata` is complete (Alembic, tests)."""

from photomatch.models.api_key import ApiKey
from photomatch.models.event import Event
from photomatch.models.face import Face
from photomatch.models.import_item import ImportItem, ImportStatus
from photomatch.models.photo import Photo, PhotoStatus
from photomatch.models.photographer import Photographer
from photomatch.models.tombstone import TOMBSTONE_RADIUS, FaceTombstone
from photomatch.models.worker_lease import WorkerLease

__all__ = [
    "TOMBSTONE_RADIUS",
    "ApiKey",
    "Event",
    "Face",
    "FaceTombstone",
    "ImportItem",
    "ImportStatus",
    "Photo",
    "PhotoStatus",
    "Photographer",
    "WorkerLease",
]
