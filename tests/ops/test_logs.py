"""Structured logs: one JSON object per line, dotted events with ids as fields, and no secret in any field."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator

import pytest

from photomatch import logs


@pytest.fixture
def json_logs() -> Iterator[None]:
    """Restores the test session's logging after a test that calls configure_logging (in its body,
    where stderr is the captured one)."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers, level = saved
        root.setLevel(level)
        logs._configure_plain()


def records(capfd: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    err = capfd.readouterr().err
    return [json.loads(line) for line in err.splitlines() if line.strip()]


def test_events_are_json_with_ids_as_fields(json_logs: None, capfd: pytest.CaptureFixture[str]) -> None:
    logs.configure_logging("INFO", "json")
    photo = uuid.uuid4()
    logs.get_logger("photomatch.photos.processing").info("photos.process.done", photo_id=photo, faces=3)
    logging.getLogger("sqlalchemy.pool").warning("plain %s record", "stdlib")
    first, second = records(capfd)
    assert first["event"] == "photos.process.done" and first["photo_id"] == str(photo) and first["faces"] == 3
    assert first["level"] == "info" and first["logger"] == "photomatch.photos.processing" and "timestamp" in first
    assert second["event"] == "plain stdlib record" and second["level"] == "warning"


def test_secrets_are_cut_out_of_every_field(json_logs: None, capfd: pytest.CaptureFixture[str]) -> None:
    logs.configure_logging("INFO", "json")
    access = logging.getLogger("uvicorn.access")
    line = '%s - "%s %s HTTP/%s" %d'
    access.info(line, "10.0.0.1:5000", "GET", "/e/party?code=K7XQ2M&lang=en", "1.1", 200)
    access.info(line, "10.0.0.1:5000", "GET", "/e/party?t=eyJlIjoiYWJjIn0.c2lnbmF0dXJl", "1.1", 200)
    logs.get_logger("x").info(
        "files.sent", url="/files/events/e/p.jpg?exp=1&fn=a.jpg&sig=0123abcd", header="Bearer pm_live_abcdef123456",
        embedding=[0.1, 0.2], code="K7XQ2M", token="eyJlIjoiYWJjIn0",
    )  # fmt: skip
    logging.getLogger("api").error("failed for https://s3/x?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA/us")
    text = json.dumps(got := records(capfd))
    for secret in ("K7XQ2M", "eyJlIjoi", "0123abcd", "pm_live_abcdef123456", "0.1, 0.2", "deadbeef", "AKIA"):
        assert secret not in text, secret
    requests = [r for r in got if r["event"] == "http.request"]
    assert [r["path"] for r in requests] == ["/e/party?code=[redacted]&lang=en", "/e/party?t=[redacted]"]
    assert requests[0]["status"] == 200 and requests[0]["method"] == "GET"
    (sent,) = (r for r in got if r["event"] == "files.sent")
    assert sent["url"] == "/files/events/e/p.jpg?exp=1&fn=a.jpg&sig=[redacted]"
