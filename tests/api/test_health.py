"""Liveness and readiness: readiness names the dependency that is down."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.main import create_app
from photomatch.config import Settings


def test_live_answers_without_checking_anything(api_client: TestClient) -> None:
    assert api_client.get("/health/live").json() == {"status": "ok"}
    assert api_client.get("/health").json() == {"status": "ok"}


def test_ready_when_database_redis_and_storage_answer(api_client: TestClient) -> None:
    response = api_client.get("/health/ready")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "redis": "ok", "storage": "ok"}}


def test_not_ready_names_the_dependency_that_is_down(api_settings: Settings) -> None:
    # Nothing listens on port 9 (discard): the broker is unreachable, the rest is fine.
    broken = api_settings.model_copy(update={"redis_url": "redis://127.0.0.1:9/0"})
    with TestClient(create_app(broken)) as client:
        response = client.get("/health/ready")
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok" and body["checks"]["storage"] == "ok"
    assert body["checks"]["redis"].startswith("error: ")
