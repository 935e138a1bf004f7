"""GET /files/{key}: signed, expiring links to local-storage files."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

from fastapi.testclient import TestClient

from photomatch.config import Settings
from photomatch.storage import LocalStorage, sign_local_url

KEY = "events/abc/photos/p1.jpg"
DATA = b"\xff\xd8\xff" + b"jpeg bytes" * 100


def _storage(settings: Settings) -> LocalStorage:
    assert settings.storage_dir is not None
    storage = LocalStorage(settings.storage_dir, secret_key=settings.secret_key)
    storage.put(KEY, DATA, "image/jpeg")
    return storage


def test_a_valid_link_serves_the_file(api_client: TestClient, api_settings: Settings) -> None:
    url = _storage(api_settings).url_for_download(KEY, "Ann & Ben 1.jpg", 60)
    r = api_client.get(url)
    assert r.status_code == 200
    assert r.content == DATA
    assert r.headers["content-type"] == "image/jpeg"
    assert r.headers["content-disposition"].startswith('attachment; filename="Ann & Ben 1.jpg"')
    assert "private" in r.headers["cache-control"]


def test_a_link_without_filename_shows_the_image_inline(api_client: TestClient, api_settings: Settings) -> None:
    url = _storage(api_settings).url_for_download(KEY, "", 60)
    r = api_client.get(url)
    assert r.status_code == 200 and "content-disposition" not in r.headers


def test_tampered_links_are_refused(api_client: TestClient, api_settings: Settings) -> None:
    _storage(api_settings)
    url = sign_local_url(KEY, 60, secret_key=api_settings.secret_key, filename="a.jpg")
    path, query = urlsplit(url).path, parse_qs(urlsplit(url).query)
    exp, sig, fn = query["exp"][0], query["sig"][0], query["fn"][0]
    tampered = [
        f"/files/events/abc/photos/p2.jpg?exp={exp}&fn={fn}&sig={sig}",  # another key
        f"{path}?exp={int(exp) + 3600}&fn={fn}&sig={sig}",  # extended expiry
        f"{path}?exp={exp}&fn=other.jpg&sig={sig}",  # another filename
        f"{path}?exp={exp}&fn={fn}&sig={sig[:-2]}AA",  # forged signature
        f"{path}?exp={exp}&fn={fn}&sig=",
        f"{path}?exp=soon&fn={fn}&sig={sig}",
    ]
    for bad in tampered:
        r = api_client.get(bad)
        assert r.status_code == 403, bad
        assert r.json() == {"detail": "this link is invalid or has expired", "reason": "invalid_link"}
    # A link signed with another secret is refused too.
    foreign = sign_local_url(KEY, 60, secret_key="another-secret-key-of-sufficient-length!!")
    assert api_client.get(foreign).status_code == 403
    assert api_client.get(path).status_code == 422  # no signature at all


def test_expired_links_are_refused(api_client: TestClient, api_settings: Settings) -> None:
    _storage(api_settings)
    url = sign_local_url(KEY, 10, secret_key=api_settings.secret_key, now=time.time() - 60)
    assert api_client.get(url).status_code == 403


def test_a_valid_link_to_a_missing_file_is_404(api_client: TestClient, api_settings: Settings) -> None:
    url = sign_local_url("events/abc/photos/gone.jpg", 60, secret_key=api_settings.secret_key)
    assert api_client.get(url).status_code == 404
