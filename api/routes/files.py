"""Serves local-storage files behind signed, expiring URLs (S3 deployments use presigned URLs instead)."""

from __future__ import annotations

import mimetypes
import time
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from api.deps import SettingsDep, StorageDep
from api.problems import InvalidLink, NotFound
from photomatch.storage import InvalidKey, LocalStorage, content_disposition, verify_local_signature

router = APIRouter(tags=["files"])


@router.get("/files/{key:path}", response_class=FileResponse)
def get_file(
    key: str,
    settings: SettingsDep,
    storage: StorageDep,
    exp: Annotated[str, Query(description="expiry, Unix seconds")],
    sig: Annotated[str, Query(description="signature")],
    fn: Annotated[str, Query(description="download filename; empty shows the file inline")] = "",
) -> FileResponse:
    """A stored file, if the link's signature is valid and unexpired."""
    if not verify_local_signature(key, exp, sig, secret_key=settings.secret_key, filename=fn):
        raise InvalidLink("this link is invalid or has expired")
    if not isinstance(storage, LocalStorage):
        raise NotFound("file not found")
    try:
        path = storage.path_for(key)
    except InvalidKey:
        raise NotFound("file not found") from None
    if not path.is_file():
        raise NotFound("file not found")
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    # Cacheable by the browser until the link expires, never by shared caches.
    max_age = max(0, int(exp) - int(time.time()))
    headers = {"Cache-Control": f"private, max-age={max_age}", "X-Content-Type-Options": "nosniff"}
    if fn:
        headers["Content-Disposition"] = content_disposition(fn)
    elif not media_type.startswith("image/"):
        # Only images are shown inline; anything else (say, HTML) could run in the API's origin.
        headers["Content-Disposition"] = content_disposition(path.name)
    return FileResponse(path, media_type=media_type, headers=headers)
