"""A small HTTP client for the photographer API, used by `photomatch upload` and `event create --api`."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import httpx

from cli.credentials import Credentials
from cli.errors import CliError

log = logging.getLogger(__name__)

# Statuses worth retrying: the server or a proxy is overloaded or restarting.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
RETRIES = 4
# Uploads of large originals over slow links: generous read/write timeouts, quick connect failure.
TIMEOUT = httpx.Timeout(connect=10.0, read=300.0, write=300.0, pool=300.0)


class ApiError(Exception):
    """An HTTP error response the caller may handle per file (a 4xx on one batch)."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(f"HTTP {status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    return str(detail) if detail else (response.text[:200] or response.reason_phrase)


class ApiClient:
    """Authenticated calls to one photomatch API; transient failures are retried with backoff."""

    def __init__(self, creds: Credentials, *, max_connections: int = 8, require_key: bool = True) -> None:
        if require_key and not creds.api_key:
            raise CliError(
                "no API key: pass --key, set PHOTOMATCH_API_KEY, or run `photomatch run` / "
                "`photomatch photographer create` to save one"
            )
        self.base_url = creds.api_url
        headers = {"Authorization": f"Bearer {creds.api_key}"} if creds.api_key else {}
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self.http = httpx.Client(base_url=creds.api_url, headers=headers, timeout=TIMEOUT, limits=limits)

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.http.close()

    def request(self, method: str, path: str, *, body: Callable[[], dict[str, Any]] | None = None) -> Any:
        """Send a request, retrying transient failures; `body` builds fresh kwargs per attempt (files rewind)."""
        for attempt in range(RETRIES + 1):
            try:
                response = self.http.request(method, path, **(body() if body else {}))
            except httpx.TransportError as e:
                if attempt == RETRIES:
                    raise CliError(f"cannot reach the API at {self.base_url}: {e}") from None
                log.info("cli.api.retry path=%s error=%s", path, e)
            else:
                if response.status_code not in RETRY_STATUSES or attempt == RETRIES:
                    return self._result(response)
                log.info("cli.api.retry path=%s status=%s", path, response.status_code)
            time.sleep(min(2**attempt, 30))
        raise AssertionError("unreachable")

    def _result(self, response: httpx.Response) -> Any:
        if response.status_code == 401:
            raise CliError(f"the API refused the key ({_detail(response)}); check --key or PHOTOMATCH_API_KEY")
        if response.status_code >= 400:
            raise ApiError(response.status_code, _detail(response))
        return response.json() if response.content else None

    def create_event(self, name: str, *, slug: str | None = None, retention_days: int | None = None) -> dict[str, Any]:
        """POST /events."""
        payload: dict[str, Any] = {"name": name}
        if slug:
            payload["slug"] = slug
        if retention_days is not None:
            payload["retention_days"] = retention_days
        try:
            result: dict[str, Any] = self.request("POST", "/events", body=lambda: {"json": payload})
        except ApiError as e:
            raise CliError(e.detail) from None
        return result

    def get_event(self, slug: str) -> dict[str, Any]:
        """GET /events/{slug}; a missing event is a CliError."""
        try:
            result: dict[str, Any] = self.request("GET", f"/events/{slug}")
        except ApiError as e:
            if e.status_code == 404:
                raise CliError(
                    f"no event {slug!r} for this API key (create it with `photomatch event create`)"
                ) from None
            raise CliError(e.detail) from None
        return result

    def known(self, slug: str, sha256s: list[str], chunk: int = 5000) -> set[str]:
        """Which digests the event already holds (asked in chunks)."""
        known: set[str] = set()
        for start in range(0, len(sha256s), chunk):
            part = sha256s[start : start + chunk]
            body: Callable[[], dict[str, Any]] = functools.partial(dict, json={"sha256": part})
            try:
                result = self.request("POST", f"/events/{slug}/photos/known", body=body)
            except ApiError as e:
                raise CliError(f"cannot check which files are uploaded: {e}") from None
            known.update(result["known"])
        return known
