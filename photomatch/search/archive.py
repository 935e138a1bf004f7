"""A zip of originals written as a stream: the first bytes go out before the last photo is read."""

from __future__ import annotations

import io
import posixpath
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from photomatch.storage import Storage

_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ArchiveEntry:
    """One stored object and the name it gets in the zip."""

    key: str
    name: str


class _Sink(io.RawIOBase):
    """A write-only, non-seekable buffer that zipfile writes into and the generator drains."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = bytes(data)
        self._chunks.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def drain(self) -> bytes:
        out = b"".join(self._chunks)
        self._chunks.clear()
        return out


def unique_names(names: Iterable[str]) -> list[str]:
    """Safe, distinct file names: no directories, and "a.jpg", "a (2).jpg" for repeats."""
    out: list[str] = []
    seen: set[str] = set()
    for raw in names:
        # A name is a label, not a path: a zip entry "../x" could escape the folder on extraction.
        name = posixpath.basename(raw.replace("\\", "/")).strip() or "photo.jpg"
        name = re.sub(r"[\x00-\x1f]", "_", name)
        stem, dot, ext = name.rpartition(".") if "." in name else (name, "", "")
        candidate, n = name, 1
        while candidate.lower() in seen:
            n += 1
            candidate = f"{stem} ({n}){dot}{ext}"
        seen.add(candidate.lower())
        out.append(candidate)
    return out


def stream_zip(storage: Storage, entries: Iterable[ArchiveEntry]) -> Iterator[bytes]:
    """Yield a zip of the entries' objects, chunk by chunk; photos are stored, not deflated.

    JPEGs do not compress, so deflating would cost CPU for nothing. The sink cannot seek, so
    zipfile writes sizes and CRCs in data descriptors after each file (ZIP64 where needed).
    """
    sink = _Sink()
    with zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for entry in entries:
            with storage.open(entry.key) as source, archive.open(entry.name, mode="w", force_zip64=True) as dest:
                while chunk := source.read(_CHUNK):
                    dest.write(chunk)
                    if data := sink.drain():
                        yield data
            if data := sink.drain():
                yield data
    # Closing the archive wrote the central directory.
    if data := sink.drain():
        yield data
