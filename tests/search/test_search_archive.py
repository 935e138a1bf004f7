"""The streamed zip of originals."""

from __future__ import annotations

import io
import zipfile

from photomatch.search.archive import ArchiveEntry, stream_zip, unique_names
from photomatch.storage import LocalStorage


def test_names_are_flat_and_distinct() -> None:
    assert unique_names(["a.jpg", "A.jpg", "a.jpg", "../../etc/x.jpg", "dir\\b.jpg", "", "noext"]) == [
        "a.jpg",
        "A (2).jpg",
        "a (3).jpg",
        "x.jpg",
        "b.jpg",
        "photo.jpg",
        "noext",
    ]


def test_the_zip_streams_in_chunks_and_holds_every_original(local_storage: LocalStorage) -> None:
    big = bytes(range(256)) * 9000  # ~2.3 MB: more than one read chunk
    local_storage.put("events/e/photos/1.jpg", big, "image/jpeg")
    local_storage.put("events/e/photos/2.jpg", b"small", "image/jpeg")
    entries = [ArchiveEntry("events/e/photos/1.jpg", "one.jpg"), ArchiveEntry("events/e/photos/2.jpg", "two.jpg")]
    chunks = list(stream_zip(local_storage, entries))
    assert len(chunks) > 2 and all(chunks)
    with zipfile.ZipFile(io.BytesIO(b"".join(chunks))) as archive:
        assert archive.testzip() is None
        assert archive.namelist() == ["one.jpg", "two.jpg"]
        assert archive.read("one.jpg") == big and archive.read("two.jpg") == b"small"
