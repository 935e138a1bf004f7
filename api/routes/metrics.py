"""Prometheus metrics: this process's (or, in multiprocess mode, every local process's) samples plus
scrape-time gauges of queue depth and photos per status."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.deps import resources
from api.problems import MetricsTokenRequired
from photomatch.metrics import StateCollector, exposition, registry
from photomatch.photos.service import photo_counts
from photomatch.queue import QUEUES, queue_backlog

router = APIRouter(tags=["ops"])


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(request: Request) -> Response:
    """Prometheus text format, for `Authorization: Bearer <Settings.metrics_token>` only.

    It names every event and its photo counts, so outside development it is closed until a token is
    set; `photomatch run` sets one of its own (data_dir/metrics-token).
    """
    res = resources(request)
    token = res.settings.metrics_token
    if not token and res.settings.environment == "production":
        raise MetricsTokenRequired("metrics are closed: set PHOTOMATCH_METRICS_TOKEN and scrape with that bearer token")
    if token:
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise MetricsTokenRequired("metrics need the metrics token")

    def queue_depths() -> dict[str, int]:
        return {q: queue_backlog(q, settings=res.settings) for q in QUEUES}

    def counts() -> list[tuple[str, str, int]]:
        with res.session_factory() as session:
            return photo_counts(session)

    body, content_type = exposition(registry([StateCollector(queue_depths, counts)]))
    return Response(body, media_type=content_type)
