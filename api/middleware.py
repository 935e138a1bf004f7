"""ASGI middleware that refuses requests no route could answer sensibly."""

from __future__ import annotations

import json
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Receive, Scope, Send

_BODY = json.dumps({"detail": "the request contains a NUL character", "reason": "invalid_characters"}).encode()


class RejectNul:
    """400 for a NUL byte (raw or %00) in the path or the query string.

    Postgres text cannot hold NUL, so one in a slug or an access code failed deep in a query as a
    500 (issue 9). No valid slug, code, token or key contains one: refuse it at the door.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _has_nul(scope):
            await send(
                {
                    "type": "http.response.start",
                    "status": 400,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(_BODY)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": _BODY})
            return
        await self.app(scope, receive, send)


def _has_nul(scope: Scope) -> bool:
    raw_path = scope.get("raw_path") or scope.get("path", "").encode()
    return b"\x00" in unquote_to_bytes(raw_path) or b"\x00" in unquote_to_bytes(scope.get("query_string", b""))
