"""Prometheus metrics: API latency by route and status, search latency by outcome, the worker's
counters and stage timings (multiprocess mode, read from the worker's own folder), and the
scrape-time gauges of queue depth and photos per status."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from api.main import create_app
from photomatch.config import Settings
from tests.support.celery_worker import CeleryWorker

pytestmark = pytest.mark.slow


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in the text format, None when absent."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, _, value = line.rpartition(" ")
        found = dict(re.findall(r'(\w+)="([^"]*)"', series))
        if series.split("{")[0] == name and all(found.get(k) == v for k, v in labels.items()):
            return float(value)
    return None


def worker_metrics(worker: CeleryWorker) -> str:
    reg = CollectorRegistry()
    MultiProcessCollector(reg, path=str(worker.metrics_dir))
    return generate_latest(reg).decode()


def counts(client: TestClient, name: str, *series: dict[str, str]) -> list[float]:
    """The current value of each series (0 when absent): the registry is the test process's, shared by modules."""
    text = client.get("/metrics").text
    return [sample(text, name, **labels) or 0.0 for labels in series]


def test_api_latency_by_route_and_status(client: TestClient) -> None:
    name = "photomatch_http_request_duration_seconds_count"
    series = (
        {"route": "/health/live", "method": "GET", "status": "200"},
        {"route": "/events/{slug}", "method": "GET", "status": "404"},
        {"route": "unmatched", "method": "GET", "status": "404"},
    )
    before = counts(client, name, *series)
    for _ in range(3):
        assert client.get("/health/live").status_code == 200
    client.get("/events/no-such-event")
    client.get("/wp-admin/setup.php")  # unmatched paths share one series
    after = counts(client, name, *series)
    assert [a - b for a, b in zip(after, before, strict=True)] == [3, 1, 1]
    assert "wp-admin" not in client.get("/metrics").text


def test_search_latency_by_outcome(client: TestClient) -> None:
    event = client.post("/events", json={"name": "Metrics search"}).json()
    jpeg = io.BytesIO()
    Image.new("RGB", (64, 64), "gray").save(jpeg, "JPEG")
    files = {"selfie": ("s.jpg", jpeg.getvalue(), "image/jpeg")}
    name = "photomatch_search_duration_seconds_count"
    series = ({"outcome": "invalid_credentials", "status": "403"}, {"outcome": "no_face", "status": "422"})
    before = counts(client, name, *series)
    denied = client.post(f"/events/{event['slug']}/search", data={"code": "WRONG1"}, files=files)
    assert denied.status_code == 403
    agreed = {"code": event["access_code"], "consent": "yes"}
    no_face = client.post(f"/events/{event['slug']}/search", data=agreed, files=files)
    assert no_face.status_code == 422
    assert (denied.json()["reason"], no_face.json()["reason"]) == ("invalid_credentials", "no_face")
    after = counts(client, name, *series)
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1]


def test_metrics_token_guards_the_endpoint(settings: Settings) -> None:
    guarded = settings.model_copy(update={"metrics_token": "s3cret-scrape-token"})
    with TestClient(create_app(guarded)) as c:
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
        ok = c.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape-token"})
        assert ok.status_code == 200 and "photomatch_queue_depth" in ok.text


def test_metrics_are_closed_in_production_until_a_token_is_set(settings: Settings) -> None:
    # Every event id and its photo counts are in the text: a production site without a token
    # serves nothing rather than everything.
    production = settings.model_copy(update={"environment": "production", "metrics_token": ""})
    with TestClient(create_app(production)) as c:
        closed = c.get("/metrics")
        assert closed.status_code == 401 and "PHOTOMATCH_METRICS_TOKEN" in closed.json()["detail"]
        assert "photomatch_queue_depth" not in closed.text


def test_worker_counters_stage_times_and_state_gauges(
    client: TestClient, worker: CeleryWorker, dev_faces: Path
) -> None:
    event = client.post("/events", json={"name": "Metrics album"}).json()
    photos = [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in sorted(dev_faces.glob("groups/*"))[:2]]
    photos.append(("files", ("broken.jpg", b"\xff\xd8\xff\xe0 not really a jpeg", "image/jpeg")))
    assert client.post(f"/events/{event['slug']}/photos", files=photos).status_code == 200
    deadline = time.monotonic() + 300
    while (status := client.get(f"/events/{event['slug']}/status").json())["remaining"]:
        assert time.monotonic() < deadline, worker.tail()
        time.sleep(0.5)
    done, failed, faces = status["counts"]["done"], status["counts"]["failed"], status["faces"]
    assert (done, failed) == (2, 1) and faces > 0

    text = worker_metrics(worker)
    assert sample(text, "photomatch_photos_processed_total", status="done") == done
    assert sample(text, "photomatch_photos_processed_total", status="failed") == failed
    assert sample(text, "photomatch_faces_stored_total") == faces
    assert sample(text, "photomatch_faces_too_small_total") == 0  # exported; the groups have none under 8 px
    failures = {k: float(v) for k, v in re.findall(r'photomatch_photo_failures_total\{reason="(\w+)"\} (\S+)', text)}
    assert sum(failures.values()) == failed, failures
    for stage in ("fetch", "decode", "detect", "align", "embed", "db_write"):
        assert (sample(text, "photomatch_stage_duration_seconds_count", stage=stage) or 0) >= 1, stage
    assert (sample(text, "photomatch_process_batch_photos_count") or 0) >= 1

    api = client.get("/metrics").text
    assert sample(api, "photomatch_state_scrape_ok", source="database") == 1
    assert sample(api, "photomatch_state_scrape_ok", source="redis") == 1
    assert sample(api, "photomatch_queue_depth", queue="faces") == 0
    assert sample(api, "photomatch_photos", event_id=event["id"], status="done") == done
    assert sample(api, "photomatch_photos", event_id=event["id"], status="failed") == failed
