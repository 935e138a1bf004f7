"""Object storage for originals and thumbnails: local filesystem or S3, behind one small interface.

Keys are relative, slash-separated paths such as ``events/<event id>/photos/<photo id>.jpg``.
Writes stream from file objects so an album upload never sits in memory whole.
"""

from __future__ import annotations

from photomatch.config import Settings
from photomatch.storage.base import (
    LOCAL_URL_PREFIX,
    InvalidKey,
    NotSupported,
    ObjectNotFound,
    PresignedUpload,
    Storage,
    StorageError,
    content_disposition,
    validate_key,
)
from photomatch.storage.local import LocalStorage, sign_local_url, verify_local_signature
from photomatch.storage.s3 import S3Storage

__all__ = [
    "LOCAL_URL_PREFIX",
    "InvalidKey",
    "LocalStorage",
    "NotSupported",
    "ObjectNotFound",
    "PresignedUpload",
    "S3Storage",
    "Storage",
    "StorageError",
    "content_disposition",
    "get_storage",
    "sign_local_url",
    "validate_key",
    "verify_local_signature",
]


def get_storage(settings: Settings) -> Storage:
    """The storage backend Settings select."""
    if settings.storage_backend == "s3":
        return S3Storage.from_settings(settings)
    assert settings.storage_dir is not None  # filled in by Settings' validator
    return LocalStorage(settings.storage_dir, secret_key=settings.secret_key)
