"""Scaling out: one album through 1, then 2 separate face-worker processes sharing one Redis and Postgres.

The local stand-in for several machines: each worker is its own `celery worker -Q faces --pool solo`
process with one torch thread (OMP_NUM_THREADS=1), as a one-GPU machine runs one solo process.
The same album is uploaded to a fresh event per run; the clock runs from the enqueue to the last
photo done, with the workers started and their models loaded (PHOTOMATCH_WORKER_PRELOAD_MODELS).
Checks that every photo ends done and no face row is stored twice. Prints JSON.

    uv run python bench/scale_out.py                      # 96 dev-faces photos, 1 and 2 workers
    uv run python bench/scale_out.py --photos 48 --workers 1 2
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from photomatch.accounts.service import create_photographer
from photomatch.config import REPO_ROOT, Settings, get_settings
from photomatch.db import make_engine, make_session_factory, session_scope
from photomatch.embedded import start_postgres, start_redis
from photomatch.events.service import create_event
from photomatch.migrate import upgrade
from photomatch.photos.ingest import upload_files
from photomatch.storage import get_storage

OUT = Path(__file__).resolve().parent / "out" / "scale-out"


def album(settings: Settings, n: int) -> list[Path]:
    """n dev-faces images, group photos first (crowds are what festivals upload)."""
    root = settings.dev_faces_dir
    if not (root / "MANIFEST.md").is_file():
        sys.exit(f"dev-faces not found at {root}; set PHOTOMATCH_DEV_FACES_DIR")
    groups = sorted((root / "groups").glob("*"))
    singles = sorted(p for p in root.glob("*/*") if p.parent.name != "groups")
    return [p for p in [*groups, *singles] if p.suffix.lower() in (".jpg", ".jpeg", ".png")][:n]


def start_worker(settings: Settings, name: str, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOMATCH_")}
    env.update(
        PHOTOMATCH_ENVIRONMENT="test",
        PHOTOMATCH_DATABASE_URL=settings.database_url,
        PHOTOMATCH_REDIS_URL=settings.redis_url,
        PHOTOMATCH_DATA_DIR=str(settings.data_dir),
        PHOTOMATCH_SECRET_KEY=settings.secret_key,
        PHOTOMATCH_PROCESS_BATCH_SIZE=str(settings.process_batch_size),
        # Loaded before "ready": the clock measures processing, not model loading.
        PHOTOMATCH_WORKER_PRELOAD_MODELS="true",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
    )
    argv = [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "-Q", "faces", "--pool", "solo"]
    argv += ["--without-gossip", "--without-mingle", "--hostname", f"{name}@%h", "--loglevel", "INFO"]
    out = log.open("ab")
    proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while b"workers.models.preloaded" not in log.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker {name} did not start; see {log}")
        time.sleep(0.2)
    return proc


def run(settings: Settings, photos: list[Path], workers: int, factory: Any) -> dict[str, Any]:
    storage = get_storage(settings)
    logs = OUT / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    logs_of = [logs / f"w{workers}-{i}-{uuid.uuid4().hex[:4]}.log" for i in range(workers)]
    procs = [start_worker(settings, log.stem, log) for log in logs_of]
    try:
        with session_scope(factory) as session:
            photographer, _ = create_photographer(session, "Bench", f"bench-{uuid.uuid4().hex[:8]}@example.com")
            event = create_event(session, photographer, f"Scale {workers}", settings=settings)
            event_id = event.id
            upload_files(
                session, storage, event, [(io.BytesIO(p.read_bytes()), p.name) for p in photos], settings=settings
            )
        # The clock starts at the commit that sends the tasks; uploads to local disk are not the subject.
        started = time.monotonic()
        with factory() as session:
            while True:
                remaining = session.scalar(
                    sa.text("SELECT count(*) FROM photos WHERE event_id = :e AND status IN ('uploaded', 'processing')"),
                    {"e": event_id},
                )
                session.rollback()
                if remaining == 0:
                    break
                if time.monotonic() - started > 3600:
                    raise RuntimeError("album did not finish within an hour")
                time.sleep(0.2)
        wall = time.monotonic() - started
        with factory() as session:
            counts = dict(
                session.execute(
                    sa.text("SELECT status, count(*) FROM photos WHERE event_id = :e GROUP BY status"), {"e": event_id}
                ).all()
            )
            faces = session.scalar(sa.text("SELECT count(*) FROM faces WHERE event_id = :e"), {"e": event_id})
            mismatched = session.scalar(
                sa.text(
                    "SELECT count(*) FROM photos p WHERE p.event_id = :e AND p.status = 'done' AND p.face_count <> "
                    "(SELECT count(*) FROM faces f WHERE f.photo_id = p.id)"
                ),
                {"e": event_id},
            )
            duplicates = session.scalar(
                sa.text(
                    "SELECT count(*) FROM (SELECT photo_id, box FROM faces WHERE event_id = :e "
                    "GROUP BY photo_id, box HAVING count(*) > 1) d"
                ),
                {"e": event_id},
            )
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(60)
    # Who did what: each worker logs one photos.process.done/failed line per photo it finished.
    per_worker = [
        sum('"photos.process.' in line and str(event_id) in line for line in log.read_text().splitlines())
        for log in logs_of
    ]
    return {
        "workers": workers,
        "photos": len(photos),
        "wall_s": round(wall, 2),
        "photos_per_s": round(len(photos) / wall, 3),
        "status": counts,
        "faces": faces,
        "photos_whose_faces_mismatch_face_count": mismatched,
        "duplicate_faces": duplicates,
        "photos_per_worker": per_worker,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=96)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-size", type=int, default=4, help="photos per face task (more tasks to share)")
    args = parser.parse_args()

    OUT.mkdir(parents=True, exist_ok=True)
    db_url = start_postgres(OUT)
    redis_url = start_redis(OUT)
    upgrade(db_url)
    settings = Settings(
        environment="test",
        database_url=db_url,
        redis_url=redis_url,
        data_dir=OUT,
        secret_key="bench-" + "x" * 40,
        process_batch_size=args.batch_size,
        dev_faces_dir=get_settings().dev_faces_dir,
    )
    photos = album(settings, args.photos)
    engine = make_engine(db_url, pool_size=2)
    factory = make_session_factory(engine)
    runs = [run(settings, photos, n, factory) for n in args.workers]
    base = runs[0]["wall_s"]
    result = {
        "bench": "scale_out",
        "device": "cpu",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "batch_size": args.batch_size,
        "runs": runs,
        "speedup_vs_first": {str(r["workers"]): round(base / r["wall_s"], 2) for r in runs},
        "command": "uv run python bench/scale_out.py " + " ".join(sys.argv[1:]),
    }
    print(json.dumps(result, indent=2))
    engine.dispose()


if __name__ == "__main__":
    main()
