"""ASGI middleware that refuses requests no route could answer sensibly."""

from __future__ import annotations

import json
import time
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from photomatch.metrics import HTTP_REQUEST_SECONDS

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


class RecordMetrics:
    """Observe each HTTP request's latency by route template (never the raw path), method and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = scope.get("route")
            # Unmatched paths (scanners, typos) share one label, so they cannot grow the series.
            template = getattr(route, "path", None) or "unmatched"
            HTTP_REQUEST_SECONDS.labels(template, scope["method"], str(status)).observe(time.perf_counter() - started)
