"""Shared by the benches that run real workers (scale_out, faults): embedded services, worker and beat
processes, an album of dev-faces photos, and the integrity figures of an event."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from bench.lib.datasets import dev_data
from cli.embedded import start_postgres, start_redis
from photomatch.accounts.service import create_photographer
from photomatch.config import REPO_ROOT, Settings
from photomatch.db import session_scope
from photomatch.events.service import create_event
from photomatch.migrate import upgrade
from photomatch.photos.ingest import upload_files
from photomatch.storage import get_storage


def album(settings: Settings, n: int) -> list[Path]:
    """n dev-faces images, group photos first (crowds are what festivals upload)."""
    root = dev_data().faces_dir
    if not (root / "MANIFEST.md").is_file():
        sys.exit(f"dev-faces not found at {root}; set PHOTOMATCH_DEV_FACES_DIR")
    groups = sorted((root / "groups").glob("*"))
    singles = sorted(p for p in root.glob("*/*") if p.parent.name != "groups")
    return [p for p in [*groups, *singles] if p.suffix.lower() in (".jpg", ".jpeg", ".png")][:n]


def services(out: Path, **overrides: Any) -> Settings:
    """Embedded Postgres (migrated) and Redis under `out`, and bench Settings on them."""
    out.mkdir(parents=True, exist_ok=True)
    db_url, redis_url = start_postgres(out), start_redis(out)
    upgrade(db_url)
    return Settings(
        environment="test", database_url=db_url, redis_url=redis_url, data_dir=out, secret_key="bench-" + "x" * 40,
        **overrides,
    )  # fmt: skip


def service_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a worker or beat process for `settings` (nothing PHOTOMATCH_* inherited)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOMATCH_")}
    env.update(
        PHOTOMATCH_ENVIRONMENT="test",
        PHOTOMATCH_DATABASE_URL=settings.database_url,
        PHOTOMATCH_REDIS_URL=settings.redis_url,
        PHOTOMATCH_DATA_DIR=str(settings.data_dir),
        PHOTOMATCH_SECRET_KEY=settings.secret_key,
        PHOTOMATCH_PROCESS_BATCH_SIZE=str(settings.process_batch_size),
        PHOTOMATCH_STORAGE_BACKEND=settings.storage_backend,
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
    )
    if settings.storage_backend == "s3":
        env.update(
            PHOTOMATCH_S3_ENDPOINT_URL=settings.s3_endpoint_url or "",
            PHOTOMATCH_S3_BUCKET=settings.s3_bucket,
            PHOTOMATCH_S3_ACCESS_KEY=settings.s3_access_key or "",
            PHOTOMATCH_S3_SECRET_KEY=settings.s3_secret_key or "",
        )
    env.update(extra)
    return env


def start_worker(
    settings: Settings, log: Path, *, queues: str = "faces", preload: bool = True, name: str = "", **extra: str
) -> subprocess.Popen[bytes]:
    """A solo `celery worker` process; returns once it is ready (and its models loaded, with preload).

    `name` is its node name (default: a fresh one); a worker restarted under its old name, as
    `photomatch run` or a restarted container does, takes back what its predecessor held at once.
    """
    env = service_env(settings, PHOTOMATCH_WORKER_PRELOAD_MODELS=str(preload).lower(), **extra)
    argv = [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "-Q", queues, "--pool", "solo"]
    argv += ["--without-gossip", "--without-mingle", "--hostname", name or f"{log.stem}-{uuid.uuid4().hex[:4]}@%h"]
    argv += ["--loglevel", "INFO"]  # the markers below are INFO lines
    offset = log.stat().st_size if log.exists() else 0
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    marker = b"workers.models.preloaded" if preload and "faces" in queues else b"ready."
    deadline = time.monotonic() + 120
    while marker not in log.read_bytes()[offset:]:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker did not start; see {log}")
        time.sleep(0.1)
    return proc


def start_beat(settings: Settings, log: Path, **extra: str) -> subprocess.Popen[bytes]:
    """`celery beat`: the reconciler, on the schedule the settings give."""
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.celery_app",
        "beat",
        "--schedule",
        str(log.with_suffix(".db")),
    ]
    with log.open("ab") as out:
        return subprocess.Popen(
            argv, cwd=REPO_ROOT, env=service_env(settings, **extra), stdout=out, stderr=subprocess.STDOUT
        )


def upload_album(settings: Settings, factory: sessionmaker[Session], photos: list[Path], name: str) -> uuid.UUID:
    """A new event holding `photos`, queued for processing on commit; returns its id."""
    storage = get_storage(settings)
    with session_scope(factory) as session:
        photographer, _ = create_photographer(session, "Bench", f"bench-{uuid.uuid4().hex[:8]}@example.com")
        event = create_event(session, photographer, name, settings=settings)
        upload_files(session, storage, event, [(io.BytesIO(p.read_bytes()), p.name) for p in photos], settings=settings)
        return event.id


def counts(factory: sessionmaker[Session], event_id: uuid.UUID) -> dict[str, int]:
    """Photos per status."""
    with factory() as session:
        rows = session.execute(
            sa.text("SELECT status, count(*) FROM photos WHERE event_id = :e GROUP BY status"), {"e": event_id}
        ).all()
    return {str(status): int(n) for status, n in rows}


def wait_settled(factory: sessionmaker[Session], event_id: uuid.UUID, timeout: float) -> float:
    """Seconds until no photo of the event is uploaded or processing; raises after `timeout`."""
    started = time.monotonic()
    while True:
        try:
            c = counts(factory, event_id)
        except sa.exc.OperationalError:  # the database is being restarted by the scenario
            c = {"processing": 1}
        if not c.get("uploaded") and not c.get("processing"):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"not settled after {timeout:.0f} s: {c}")
        time.sleep(0.2)


def integrity(factory: sessionmaker[Session], event_id: uuid.UUID) -> dict[str, Any]:
    """What a fault must not cause: photos lost or stuck, faces stored twice or missing."""
    e = {"e": event_id}
    with factory() as session:
        scalar = lambda sql: int(session.scalar(sa.text(sql), e) or 0)  # noqa: E731
        reasons = session.execute(
            sa.text(
                "SELECT split_part(failure_reason, ':', 1), count(*) FROM photos "
                "WHERE event_id = :e AND status = 'failed' GROUP BY 1"
            ),
            e,
        ).all()
        return {
            "photos": scalar("SELECT count(*) FROM photos WHERE event_id = :e"),
            "status": counts(factory, event_id),
            "failed_by_reason": {str(r): int(n) for r, n in reasons},
            "stuck": scalar("SELECT count(*) FROM photos WHERE event_id = :e AND status IN ('uploaded', 'processing')"),
            "faces": scalar("SELECT count(*) FROM faces WHERE event_id = :e"),
            "duplicate_faces": scalar(
                "SELECT count(*) FROM (SELECT photo_id, box FROM faces WHERE event_id = :e "
                "GROUP BY photo_id, box HAVING count(*) > 1) d"
            ),
            "photos_with_missing_or_extra_faces": scalar(
                "SELECT count(*) FROM photos p WHERE p.event_id = :e AND p.status = 'done' AND p.face_count <> "
                "(SELECT count(*) FROM faces f WHERE f.photo_id = p.id)"
            ),
            "max_attempts_used": scalar("SELECT coalesce(max(attempts), 0) FROM photos WHERE event_id = :e"),
        }
