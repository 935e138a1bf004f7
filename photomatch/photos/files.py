"""Cheap checks at the door and streaming helpers: sniff the image type, hash while copying."""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
from dataclasses import dataclass
from typing import Any, BinaryIO

# Enough bytes to recognise every accepted signature (WebP needs 12).
SNIFF_BYTES = 16


@dataclass(frozen=True)
class ImageType:
    """An accepted upload format: the extension originals are stored with, and its MIME type."""

    extension: str
    content_type: str


JPEG = ImageType(".jpg", "image/jpeg")
PNG = ImageType(".png", "image/png")
WEBP = ImageType(".webp", "image/webp")

# Names and types a client may announce before sending bytes (presigned uploads, imports).
EXTENSIONS = {".jpg": JPEG, ".jpeg": JPEG, ".jpe": JPEG, ".png": PNG, ".webp": WEBP}
CONTENT_TYPES = {"image/jpeg": JPEG, "image/jpg": JPEG, "image/pjpeg": JPEG, "image/png": PNG, "image/webp": WEBP}


def sniff(head: bytes) -> ImageType | None:
    """The format the first bytes of a file announce, or None when it is not JPEG, PNG or WebP.

    Only the signature is checked: full decoding happens in the worker, which fails a truncated or
    corrupt file with a reason. Clients' names and Content-Types are not trusted for this.
    """
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    return None


def type_from_name(filename: str, content_type: str | None = None) -> ImageType | None:
    """The format a client announces by file extension or Content-Type, or None if neither is accepted."""
    ext = os.path.splitext(filename)[1].lower()
    if ext in EXTENSIONS:
        return EXTENSIONS[ext]
    return CONTENT_TYPES.get((content_type or "").split(";")[0].strip().lower())


def clean_filename(filename: str | None, fallback: str = "photo") -> str:
    """The base name a client sent (any directories stripped), for display and downloads."""
    name = posixpath.basename((filename or "").replace("\\", "/")).strip()
    return (name or fallback)[:255]


class TooLarge(Exception):
    """The stream went past the byte limit."""


class HashingReader(io.RawIOBase):
    """A read-only stream that replays `head`, then `inner`, hashing (SHA-256) and counting every byte.

    Storage.put reads from it in chunks, so a file is hashed during the one pass that stores it.
    """

    def __init__(self, inner: BinaryIO, head: bytes = b"", *, max_bytes: int | None = None) -> None:
        self._inner = inner
        self._head = head
        self._max_bytes = max_bytes
        self._sha = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        # Always a full `size` bytes until EOF: boto3 takes a short first read of a non-seekable
        # stream for the whole object and would store only the sniffed head.
        if size is None or size < 0:
            chunk = self._head + self._inner.read()
            self._head = b""
        else:
            parts = [self._head[:size]]
            self._head = self._head[size:]
            missing = size - len(parts[0])
            while missing > 0:
                more = self._inner.read(missing)
                if not more:
                    break
                parts.append(more)
                missing -= len(more)
            chunk = b"".join(parts)
        self._sha.update(chunk)
        self.size += len(chunk)
        if self._max_bytes is not None and self.size > self._max_bytes:
            raise TooLarge(f"file is over the limit of {self._max_bytes / 2**20:.0f} MiB")
        return chunk

    def readinto(self, buffer: Any) -> int:
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    @property
    def sha256(self) -> str:
        """Hex digest of the bytes read so far (all of them once the copy is complete)."""
        return self._sha.hexdigest()
