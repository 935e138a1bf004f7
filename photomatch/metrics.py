"""Prometheus metrics of every process, through prometheus-client.

The API, each Celery worker and each prefork child are separate processes. When
PROMETHEUS_MULTIPROC_DIR is set (the embedded stack sets it for all its children; a worker
container sets it for its pool), every process writes its samples under that folder and one exporter
aggregates them (`exposition`): the API's `/metrics`, or a worker's own port
(Settings.worker_metrics_port). Without it, each process serves its own registry.

Gauges of state (queue depth, photos per status per event) are read at scrape time by
`StateCollector`, so a crashed worker cannot leave a stale value behind.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from photomatch.logs import get_logger

log = get_logger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_STAGE_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# --- API -----------------------------------------------------------------------------------------
HTTP_REQUEST_SECONDS = Histogram(
    "photomatch_http_request_duration_seconds",
    "HTTP request latency by route template, method and status.",
    ["route", "method", "status"],
    buckets=_LATENCY_BUCKETS,
)
SEARCH_SECONDS = Histogram(
    "photomatch_search_duration_seconds",
    "Selfie search latency by outcome (ok, or the rejection reason) and HTTP status.",
    ["outcome", "status"],
    buckets=_LATENCY_BUCKETS,
)

# --- workers -------------------------------------------------------------------------------------
PHOTOS_PROCESSED = Counter("photomatch_photos_processed_total", "Photos finished by face workers.", ["status"])
FACES_STORED = Counter("photomatch_faces_stored_total", "Faces detected, embedded and stored.")
FACES_TOO_SMALL = Counter(
    "photomatch_faces_too_small_total", "Faces found but too small to identify (embed_min_face_px), not stored."
)
PHOTO_FAILURES = Counter("photomatch_photo_failures_total", "Photos marked failed, by reason.", ["reason"])
BATCH_PHOTOS = Histogram(
    "photomatch_process_batch_photos",
    "Photos claimed per face task.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
STAGE_SECONDS = Histogram(
    "photomatch_stage_duration_seconds",
    "Time per pipeline stage and batch: fetch, decode, detect, align, embed, db_write, thumbnails.",
    ["stage"],
    buckets=_STAGE_BUCKETS,
)


@contextmanager
def timed(stage: str) -> Iterator[None]:
    """Observe the block's wall time as one sample of `stage`."""
    started = time.perf_counter()
    try:
        yield
    finally:
        STAGE_SECONDS.labels(stage).observe(time.perf_counter() - started)


class StateCollector(Collector):
    """Scrape-time gauges: queue depth per queue and photos per status per event."""

    def __init__(
        self,
        queue_depths: Callable[[], dict[str, int]],
        photo_counts: Callable[[], Iterable[tuple[str, str, int]]],
    ) -> None:
        self._queue_depths = queue_depths
        self._photo_counts = photo_counts

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("photomatch_state_scrape_ok", "1 when the state gauges were read.", labels=["source"])
        queues = GaugeMetricFamily("photomatch_queue_depth", "Messages waiting in each queue.", labels=["queue"])
        photos = GaugeMetricFamily("photomatch_photos", "Photos per status per event.", labels=["event_id", "status"])
        # A scrape must answer even when a dependency is down: the failing source reads 0 in `up`.
        try:
            for queue, depth in self._queue_depths().items():
                queues.add_metric([queue], depth)
            up.add_metric(["redis"], 1)
        except Exception as e:
            log.warning("metrics.state.failed", source="redis", error=type(e).__name__)
            up.add_metric(["redis"], 0)
        try:
            for event_id, status, n in self._photo_counts():
                photos.add_metric([event_id, status], n)
            up.add_metric(["database"], 1)
        except Exception as e:
            log.warning("metrics.state.failed", source="database", error=type(e).__name__)
            up.add_metric(["database"], 0)
        yield from (queues, photos, up)


def registry(extra: Iterable[Collector] = ()) -> CollectorRegistry:
    """The registry to expose: every process's samples in multiprocess mode, else this process's."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        reg = CollectorRegistry()
        multiprocess.MultiProcessCollector(reg)
    else:
        reg = CollectorRegistry()
        reg.register(_Delegate(REGISTRY))
    for collector in extra:
        reg.register(collector)
    return reg


class _Delegate(Collector):
    """The default registry's metrics inside another registry (so extra collectors stay per call)."""

    def __init__(self, inner: CollectorRegistry) -> None:
        self._inner = inner

    def collect(self) -> Iterator[Metric]:
        return iter(self._inner.collect())


def exposition(reg: CollectorRegistry) -> tuple[bytes, str]:
    """The text format body and its content type."""
    return generate_latest(reg), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    """Forget a dead process's live gauges (prefork children that exit)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
