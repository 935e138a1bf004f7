"""Search tasks: thin doors to photomatch.ann."""

from __future__ import annotations

from typing import Any

from photomatch import ann
from photomatch.config import get_settings
from photomatch.db import get_engine, session_scope
from photomatch.queue import INDEX_EVENTS_TASK
from workers.celery_app import app
from workers.tasks.photos import RETRY


@app.task(name=INDEX_EVENTS_TASK, **RETRY)
def index_events() -> dict[str, Any]:
    """Give every event past `search_index_min_faces` faces its own HNSW index (beat runs this periodically)."""
    settings = get_settings()
    run = ann.index_big_events(
        session_scope,
        get_engine(),
        min_faces=settings.search_index_min_faces,
        build_memory=settings.search_index_build_memory,
    )
    return {"built": [str(e) for e, _, _ in run.built], "busy": [str(e) for e, _ in run.busy]}
