"""The Celery app's contract: routing by name, reliability settings, events for Flower, no torch in the parent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from photomatch.config import REPO_ROOT, Settings
from photomatch.queue import create_celery_app
from workers import celery_app as celery_module

TASKS = {
    "faces.photos.process": "faces",
    "faces.photos.embed_second": "faces",
    "cpu.photos.thumbnails": "cpu",
    "cpu.photos.import": "cpu",
    "cpu.photos.reconcile": "cpu",
    "cpu.storage.sweep_orphans": "cpu",
    "cpu.events.enforce_retention": "cpu",
    "cpu.search.index_events": "cpu",
}


@pytest.fixture
def app(tmp_path: Path) -> Any:
    # A dummy broker URL: building the configuration must not connect anywhere.
    return create_celery_app(
        Settings(environment="test", redis_url="redis://127.0.0.1:9/0", data_dir=tmp_path, reconcile_interval_seconds=7)
    )


def test_tasks_route_to_their_queue_by_name(app: Any) -> None:
    for name, queue in TASKS.items():
        route = app.amqp.router.route({}, name)["queue"]
        assert (route.name, route.exchange.name, route.routing_key) == (queue, queue, queue)


def test_reliability_events_and_beat_settings(app: Any, tmp_path: Path) -> None:
    conf = app.conf
    assert conf.broker_url == "redis://127.0.0.1:9/0"
    assert (conf.task_acks_late, conf.task_reject_on_worker_lost, conf.worker_prefetch_multiplier) == (True, True, 1)
    assert conf.worker_send_task_events and conf.task_send_sent_event
    assert conf.beat_schedule["photos-reconcile"]["task"] == "cpu.photos.reconcile"
    assert conf.beat_schedule["photos-reconcile"]["schedule"] == 7
    assert conf.beat_schedule["storage-sweep-orphans"]["task"] == "cpu.storage.sweep_orphans"
    assert conf.beat_schedule["events-enforce-retention"]["task"] == "cpu.events.enforce_retention"
    assert conf.beat_schedule["search-index-events"]["task"] == "cpu.search.index_events"
    assert conf.beat_schedule_filename == str(tmp_path / "celerybeat-schedule")


def test_importing_the_app_and_tasks_leaves_torch_and_cuda_alone(tmp_path: Path) -> None:
    """What a forking worker parent imports must not import torch, let alone initialise CUDA."""
    script = """
import json, sys
import workers.celery_app as m
import workers.tasks.photos
import workers.tasks.search
tasks = sorted(t for t in m.app.tasks if not t.startswith("celery."))
torch_imported = "torch" in sys.modules
import torch
print(json.dumps({"tasks": tasks, "torch_imported": torch_imported, "cuda": torch.cuda.is_initialized()}))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOMATCH_")}
    env.update(PHOTOMATCH_REDIS_URL="redis://127.0.0.1:9/0", PHOTOMATCH_DATA_DIR=str(tmp_path))
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"tasks": sorted(TASKS), "torch_imported": False, "cuda": False}


def test_a_forked_child_refuses_cuda_state_from_its_parent(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_torch = types.SimpleNamespace(cuda=types.SimpleNamespace(is_initialized=lambda: True))
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    with pytest.raises(RuntimeError, match="--pool=solo"):
        celery_module._after_fork()
