"""One contract for both storage backends (local disk, S3 via a moto server over HTTP)."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest

from photomatch.config import Settings
from photomatch.storage import (
    InvalidKey,
    LocalStorage,
    NotSupported,
    ObjectNotFound,
    S3Storage,
    Storage,
    get_storage,
    sign_local_url,
    verify_local_signature,
)


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest) -> Storage:
    """Each contract test runs against both backends."""
    fixture = "local_storage" if request.param == "local" else "s3_storage"
    return request.getfixturevalue(fixture)  # type: ignore[no-any-return]


def test_put_streams_a_file_object_and_reads_back(storage: Storage, tmp_path: Path) -> None:
    # Bigger than boto3's 8 MiB multipart threshold and the local copy chunk, so both stream.
    data = os.urandom(9 * 1024 * 1024 + 17)
    source = tmp_path / "album-photo.jpg"
    source.write_bytes(data)
    with source.open("rb") as fileobj:
        size = storage.put("events/e1/photos/p1.jpg", fileobj, "image/jpeg")
    assert size == len(data)
    assert hashlib.sha256(storage.get_bytes("events/e1/photos/p1.jpg")).digest() == hashlib.sha256(data).digest()
    with storage.open("events/e1/photos/p1.jpg") as stream:
        assert stream.read(4) == data[:4]


def test_put_bytes_overwrites(storage: Storage) -> None:
    storage.put("a/b.txt", b"first", "text/plain")
    assert storage.put("a/b.txt", io.BytesIO(b"second"), "text/plain") == 6
    assert storage.get_bytes("a/b.txt") == b"second"


def test_exists_delete_list(storage: Storage) -> None:
    for key in ["events/e1/photos/1.jpg", "events/e1/photos/2.jpg", "events/e1/thumbs/1.jpg", "events/e2/photos/1.jpg"]:
        storage.put(key, b"x", "image/jpeg")
    assert list(storage.list_keys("events/e1/photos/")) == ["events/e1/photos/1.jpg", "events/e1/photos/2.jpg"]
    assert list(storage.list_keys("events/e1/")) == [
        "events/e1/photos/1.jpg",
        "events/e1/photos/2.jpg",
        "events/e1/thumbs/1.jpg",
    ]
    assert len(list(storage.list_keys())) == 4
    assert list(storage.list_keys("events/e1/photos/2")) == ["events/e1/photos/2.jpg"]
    assert list(storage.list_keys("nothing/")) == []

    assert storage.exists("events/e1/photos/1.jpg")
    storage.delete("events/e1/photos/1.jpg")
    assert not storage.exists("events/e1/photos/1.jpg")
    storage.delete("events/e1/photos/1.jpg")  # deleting twice is fine (task retries)
    with pytest.raises(ObjectNotFound):
        storage.get_bytes("events/e1/photos/1.jpg")


UNSAFE_KEYS = ["", "../etc/passwd", "a/../../b", "/abs/key", "a//b", "a/./b", ".hidden", "a\\b", "a/b\x00", "a/"]


@pytest.mark.parametrize("key", UNSAFE_KEYS)
def test_unsafe_keys_are_rejected(storage: Storage, key: str) -> None:
    with pytest.raises(InvalidKey):
        storage.put(key, b"x", "text/plain")
    with pytest.raises(InvalidKey):
        storage.exists(key)


def test_download_url_serves_the_file_under_its_name(storage: Storage, secret_key: str) -> None:
    storage.put("events/e1/photos/p1.jpg", b"jpeg bytes", "image/jpeg")
    url = storage.url_for_download("events/e1/photos/p1.jpg", "Café 1.jpg", expires=60)
    if isinstance(storage, S3Storage):
        response = httpx.get(url)
        assert response.status_code == 200 and response.content == b"jpeg bytes"
        assert "filename*=UTF-8''Caf%C3%A9%201.jpg" in response.headers["content-disposition"]
    else:
        parts = urlsplit(url)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        key = unquote(parts.path.removeprefix("/files/"))
        assert key == "events/e1/photos/p1.jpg"
        assert verify_local_signature(key, query["exp"], query["sig"], secret_key=secret_key, filename=query["fn"])


def test_presigned_upload_then_get(storage: Storage) -> None:
    if not storage.supports_presigned_upload:
        with pytest.raises(NotSupported):
            storage.presigned_upload("events/e1/photos/p2.jpg", "image/jpeg", expires=60)
        return
    upload = storage.presigned_upload("events/e1/photos/p2.jpg", "image/jpeg", expires=60)
    response = httpx.request(upload.method, upload.url, content=b"uploaded directly", headers=upload.headers)
    assert response.status_code == 200, response.text
    assert storage.get_bytes("events/e1/photos/p2.jpg") == b"uploaded directly"


# --- local only --------------------------------------------------------------------------------


def test_local_writes_are_atomic_and_leave_no_temp_files(local_storage: LocalStorage) -> None:
    class Exploding(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer: object) -> int:
            raise OSError("client disconnected")

    local_storage.put("a/b.jpg", b"old", "image/jpeg")
    with pytest.raises(OSError, match="client disconnected"):
        local_storage.put("a/b.jpg", io.BufferedReader(Exploding()), "image/jpeg")  # type: ignore[arg-type]
    assert local_storage.get_bytes("a/b.jpg") == b"old"  # a failed upload keeps the previous object
    assert sorted(p.name for p in (local_storage.root / "a").iterdir()) == ["b.jpg"]


def test_local_storage_is_private_to_its_owner(tmp_path: Path) -> None:
    # Originals are people's photos: other local users may neither list nor read them, whatever the umask.
    old = os.umask(0o022)
    try:
        storage = LocalStorage(tmp_path / "var" / "storage", secret_key="k" * 32)
        storage.put("events/e1/originals/p.jpg", b"jpeg", "image/jpeg")
    finally:
        os.umask(old)
    made = [tmp_path / "var", *(tmp_path / "var").rglob("*")]
    assert made and all(p.stat().st_mode & 0o077 == 0 for p in made), [oct(p.stat().st_mode) for p in made]


def test_local_rejects_symlink_escape(local_storage: LocalStorage, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (local_storage.root / "link").symlink_to(outside)
    with pytest.raises(InvalidKey):
        local_storage.put("link/x.jpg", b"x", "image/jpeg")


def test_local_signed_url_rejects_tampering_and_expiry(secret_key: str) -> None:
    key, now = "events/e1/photos/p1.jpg", 1_000_000.0
    url = sign_local_url(key, 60, secret_key=secret_key, filename="a.jpg", now=now)
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    exp, sig = query["exp"], query["sig"]

    def ok(**changes: object) -> bool:
        args: dict = {"key": key, "exp": exp, "sig": sig, "secret_key": secret_key, "filename": "a.jpg", "now": now}
        args.update(changes)
        return verify_local_signature(**args)

    assert ok()
    assert ok(now=now + 60)
    assert not ok(now=now + 61)  # expired
    assert not ok(key="events/e1/photos/p2.jpg")
    assert not ok(filename="b.jpg")
    assert not ok(exp=str(int(exp) + 3600))  # extending the lifetime breaks the signature
    assert not ok(secret_key="another-secret")
    assert not ok(exp="not-a-number")
    assert not ok(key="../x")


def test_get_storage_selects_backend(tmp_path: Path, s3_settings: Settings) -> None:
    local = get_storage(Settings(environment="test", data_dir=tmp_path))
    assert isinstance(local, LocalStorage) and local.root == tmp_path / "storage"
    assert isinstance(get_storage(s3_settings), S3Storage)


def test_s3_public_url_signs_for_the_browser_endpoint(s3_settings: Settings) -> None:
    """Services reach S3 at one name, browsers at another: presigned URLs carry the public one and work there."""
    public = s3_settings.s3_endpoint_url.replace("127.0.0.1", "localhost")  # type: ignore[union-attr]
    storage = S3Storage.from_settings(s3_settings.model_copy(update={"s3_public_url": public}))
    storage.ensure_bucket()
    storage.put("events/e1/photos/p1.jpg", b"original bytes", "image/jpeg")

    url = storage.url_for_download("events/e1/photos/p1.jpg", "p1.jpg", 60)
    assert url.startswith(public + "/")
    assert httpx.get(url).content == b"original bytes"
    upload = storage.presigned_upload("events/e1/photos/p2.jpg", "image/jpeg", 60)
    assert upload.url.startswith(public + "/")
    assert httpx.put(upload.url, content=b"new", headers=upload.headers).status_code == 200
    assert storage.get_bytes("events/e1/photos/p2.jpg") == b"new"
    # Without the setting, URLs keep the services' endpoint.
    assert S3Storage.from_settings(s3_settings).url_for_download("k", "k", 60).startswith(s3_settings.s3_endpoint_url)  # type: ignore[arg-type]
