"""Local-filesystem storage, with download URLs signed for the API's /files route."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import io
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlencode

from photomatch.storage.base import (
    CHUNK,
    LOCAL_URL_PREFIX,
    InvalidKey,
    ObjectNotFound,
    Storage,
    validate_key,
)


def _local_url_key(secret_key: str) -> bytes:
    # A key derived for this one purpose: a URL signature can never be replayed as, say, a cookie
    # signature made with the same secret.
    return hmac.new(secret_key.encode(), b"photomatch.storage.local-url", hashlib.sha256).digest()


def _local_signature(key: str, expires_at: int, filename: str, secret_key: str) -> str:
    message = f"{key}\n{expires_at}\n{filename}".encode()
    digest = hmac.new(_local_url_key(secret_key), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign_local_url(
    key: str,
    expires: int,
    *,
    secret_key: str,
    filename: str = "",
    prefix: str = LOCAL_URL_PREFIX,
    now: float | None = None,
) -> str:
    """A relative URL `<prefix>/<key>?exp=&fn=&sig=` that the API serves until `expires` seconds from now."""
    validate_key(key)
    expires_at = int(now if now is not None else time.time()) + expires
    query = {"exp": str(expires_at), "fn": filename, "sig": _local_signature(key, expires_at, filename, secret_key)}
    return f"{prefix}/{quote(key, safe='/')}?{urlencode(query)}"


def verify_local_signature(
    key: str,
    exp: int | str,
    sig: str,
    *,
    secret_key: str,
    filename: str = "",
    now: float | None = None,
) -> bool:
    """Whether (`key`, `exp`, `fn`=`filename`, `sig`) from a signed local URL is authentic and unexpired."""
    try:
        expires_at = int(exp)
        validate_key(key)
    except (TypeError, ValueError):
        return False
    if (now if now is not None else time.time()) > expires_at:
        return False
    expected = _local_signature(key, expires_at, filename, secret_key)
    return hmac.compare_digest(expected, sig)


def _private_dirs(path: Path) -> None:
    """Create `path` and its missing parents readable by this user only (originals are people's
    photos; other local users have no business listing them). Files are created 0600 (mkstemp)."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another worker made it meanwhile
            d.mkdir(mode=0o700)


class LocalStorage(Storage):
    """Objects as files under `root`; download URLs are signed links the API serves.

    Content types are not stored: whoever serves a file derives it from the key's extension.
    """

    def __init__(self, root: Path, *, secret_key: str, url_prefix: str = LOCAL_URL_PREFIX) -> None:
        self.root = root.resolve()
        _private_dirs(self.root)
        self._secret_key = secret_key
        self._url_prefix = url_prefix

    def path_for(self, key: str) -> Path:
        """The file of `key`, guaranteed to be inside root (the API streams it from here)."""
        path = (self.root / validate_key(key)).resolve()
        # Belt and braces: validate_key already forbids '..', this also catches symlinked dirs.
        if not path.is_relative_to(self.root):
            raise InvalidKey(f"storage key escapes the storage root: {key!r}")
        return path

    def put(self, key: str, data: bytes | BinaryIO, content_type: str) -> int:
        """Write to a temp file beside the target, fsync, then rename: readers never see half a file."""
        path = self.path_for(key)
        _private_dirs(path.parent)
        stream: BinaryIO = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
        # Temp names start with '.', which keys cannot, so list_keys never reports them.
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as tmp:
                shutil.copyfileobj(stream, tmp, CHUNK)
                tmp.flush()
                os.fsync(tmp.fileno())
                size = tmp.tell()
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return size

    def open(self, key: str) -> BinaryIO:
        """Open the file for reading."""
        try:
            return self.path_for(key).open("rb")
        except (FileNotFoundError, IsADirectoryError):
            raise ObjectNotFound(key) from None

    def exists(self, key: str) -> bool:
        """Whether the file exists."""
        return self.path_for(key).is_file()

    def delete(self, key: str) -> None:
        """Remove the file if present."""
        self.path_for(key).unlink(missing_ok=True)

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        """Walk only the directory the prefix names, then filter by the prefix itself."""
        start = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        if ".." in prefix.split("/") or not start.resolve().is_relative_to(self.root):
            raise InvalidKey(f"invalid storage prefix: {prefix!r}")
        keys = []
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                key = name if rel == "." else f"{rel}/{name}"
                if not name.startswith(".") and key.startswith(prefix):
                    keys.append(key)
        yield from sorted(keys)

    def list_objects(self, prefix: str = "") -> Iterator[tuple[str, datetime]]:
        """Keys with their files' modification times."""
        for key in self.list_keys(prefix):
            with contextlib.suppress(FileNotFoundError):  # deleted since the walk
                yield key, datetime.fromtimestamp(self.path_for(key).stat().st_mtime, UTC)

    def url_for_download(self, key: str, filename: str, expires: int) -> str:
        """A signed, relative API URL (see `sign_local_url`)."""
        return sign_local_url(key, expires, secret_key=self._secret_key, filename=filename, prefix=self._url_prefix)


# --- S3 ----------------------------------------------------------------------------------------
