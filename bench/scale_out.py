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
import json
import os
import platform
import sys
import uuid
from pathlib import Path
from typing import Any

from bench.lib.fleet import album, integrity, services, start_worker, upload_album, wait_settled
from photomatch.config import Settings
from photomatch.db import make_engine, make_session_factory

OUT = Path(__file__).resolve().parent / "out" / "scale-out"


def run(settings: Settings, photos: list[Path], workers: int, factory: Any) -> dict[str, Any]:
    logs = OUT / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    logs_of = [logs / f"w{workers}-{i}-{uuid.uuid4().hex[:4]}.log" for i in range(workers)]
    procs = [start_worker(settings, log) for log in logs_of]
    try:
        event_id = upload_album(settings, factory, photos, f"Scale {workers}")
        # The clock starts at the commit that sends the tasks; uploads to local disk are not the subject.
        wall = wait_settled(factory, event_id, timeout=3600)
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
        "photos_per_worker": per_worker,
        **integrity(factory, event_id),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=96)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-size", type=int, default=4, help="photos per face task (more tasks to share)")
    args = parser.parse_args()

    settings = services(OUT, process_batch_size=args.batch_size)
    photos = album(settings, args.photos)
    engine = make_engine(settings.database_url, pool_size=2)
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
