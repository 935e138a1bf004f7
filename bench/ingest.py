"""End-to-end ingest: `photomatch upload` through the API, Redis, a face worker, Postgres and storage,
over a generated album; then face_recognition on the same photos, for the ratio.

The album (bench/make_album.py, cached under bench/out/ingest/): `--photos` photos of `--size` at
JPEG quality 90 with 3-12 dev-faces identities each. One worker on both queues (faces and
thumbnails), solo, its models loaded before the clock starts. The clock runs from the first upload
to the last photo done, thumbnails included. Stage times come from the worker's own Prometheus
samples (photomatch_stage_duration_seconds, multiprocess folder); CPU time and peak RSS from psutil.

face_recognition runs its documented pipeline (HOG, one upsample, face_encodings) on the same
files, decode included, after the worker has stopped.

With --fuse, the event is then made one from before the second embedder (its second vectors and
model cleared) and `photomatch event fuse`'s library call gives them back through the same worker:
photos/s and faces/s from the call to the last face filled in, from stored landmarks, no detection.

    uv run python bench/ingest.py [--photos 200] [--size 4000x3000] [--detectors mtcnn yunet]
                                  [--no-baseline] [--fuse]

`--detectors` runs one worker per detector configuration in turn, each into its own event, over the
same files (default: the settings' PHOTOMATCH_DETECTOR).

Prints JSON; the keys are the same every run. CPU unless PHOTOMATCH_DEVICE says otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import sqlalchemy as sa
import uvicorn
from PIL import Image
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from bench.lib.albums import ingest_album as album
from bench.lib.datasets import dev_data
from bench.lib.fleet import counts, integrity, services, start_worker, wait_settled
from photomatch.accounts.service import create_photographer
from photomatch.db import make_engine, make_session_factory, session_scope
from photomatch.events.service import create_event

OUT = Path(__file__).resolve().parent / "out" / "ingest"
NO_THUMBNAIL = sa.text(
    "SELECT count(*) FROM photos WHERE event_id = :e AND status = 'done' AND thumb_small_key IS NULL"
)
STAGES = ("fetch", "decode", "detect", "align", "embed", "db_write", "thumbnails")


def stage_times(metrics_dir: Path) -> dict[str, Any]:
    """Seconds and calls per stage, and the batch sizes, from the worker's multiprocess samples."""
    reg = CollectorRegistry()
    MultiProcessCollector(reg, path=str(metrics_dir))
    sums: dict[str, float] = {}
    calls: dict[str, float] = {}
    batch = {"sum": 0.0, "count": 0.0}
    for family in reg.collect():
        for s in family.samples:
            if s.name == "photomatch_stage_duration_seconds_sum":
                sums[s.labels["stage"]] = s.value
            elif s.name == "photomatch_stage_duration_seconds_count":
                calls[s.labels["stage"]] = s.value
            elif s.name == "photomatch_process_batch_photos_sum":
                batch["sum"] = s.value
            elif s.name == "photomatch_process_batch_photos_count":
                batch["count"] = s.value
    return {
        "stage_seconds": {k: round(sums.get(k, 0.0), 2) for k in STAGES},
        "stage_calls": {k: int(calls.get(k, 0)) for k in STAGES},
        "batches": int(batch["count"]),
        "mean_batch_photos": round(batch["sum"] / batch["count"], 2) if batch["count"] else 0.0,
    }


def serve_api(settings: Any) -> tuple[str, uvicorn.Server]:
    from api.main import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    return f"http://127.0.0.1:{port}", server


def baseline(files: list[Path]) -> dict[str, Any]:
    """face_recognition over the same files, decode included (dlib's HOG detector runs on one thread)."""
    try:
        import face_recognition
    except ImportError:
        return {"skipped": "face_recognition is not installed (dev dependency)"}
    face_recognition.face_locations(np.zeros((64, 64, 3), np.uint8))  # load the models first
    started = time.perf_counter()
    faces = 0
    for path in files:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        locs = face_recognition.face_locations(rgb)
        face_recognition.face_encodings(rgb, locs)
        faces += len(locs)
    seconds = time.perf_counter() - started
    return {"photos_per_s": round(len(files) / seconds, 3), "faces": faces, "wall_s": round(seconds, 1)}


def fuse(factory: Any, event_id: Any, worker: psutil.Process, settings: Any) -> dict[str, Any]:
    """Clear the event's second vectors, as migration 0003 left older events, then fuse it again."""
    from photomatch.models import Event
    from photomatch.photos.second_embedder import add_second_embedder, remaining

    with session_scope(factory) as session:
        model = session.scalar(sa.text("SELECT second_embedder FROM events WHERE id = :e"), {"e": event_id})
        session.execute(sa.text("UPDATE events SET second_embedder = NULL WHERE id = :e"), {"e": event_id})
        session.execute(
            sa.text("UPDATE faces SET second_model = NULL, second_embedding = NULL WHERE event_id = :e"),
            {"e": event_id},
        )
    cpu_before = sum(worker.cpu_times()[:2])
    started = time.monotonic()
    with session_scope(factory) as session:
        event = session.get(Event, event_id)
        photos = add_second_embedder(session, event, model, settings=settings)
    while True:
        with factory() as session:
            left = remaining(session, session.get(Event, event_id))
        if not left:
            break
        time.sleep(0.2)
    wall = time.monotonic() - started
    with factory() as session:
        faces = session.scalar(
            sa.text("SELECT count(*) FROM faces WHERE event_id = :e AND second_model = :m"), {"e": event_id, "m": model}
        )
    return {
        "model": model,
        "photos": photos,
        "faces": faces,
        "wall_s": round(wall, 1),
        "photos_per_s": round(photos / wall, 3),
        "faces_per_s": round(faces / wall, 1),
        "worker_cpu_s": round(sum(worker.cpu_times()[:2]) - cpu_before, 1),
    }


def ingest(
    settings: Any, factory: Any, api_url: str, files: list[Path], detector: str, fuse_after: bool
) -> dict[str, Any]:
    """One worker running `detector` ingests the album into a fresh event: its figures."""
    threads = os.cpu_count() or 1
    metrics_dir = OUT / f"metrics-{detector}"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    with session_scope(factory) as session:
        photographer, key = create_photographer(session, "Ingest", f"ingest-{time.time_ns()}@example.com")
        event = create_event(session, photographer, f"Ingest bench {detector}", settings=settings)
        slug, event_id = event.slug, event.id

    log = OUT / f"worker-{int(time.time())}-{detector}.log"
    proc = start_worker(
        settings, log, queues="faces,cpu", PROMETHEUS_MULTIPROC_DIR=str(metrics_dir), PHOTOMATCH_DETECTOR=detector,
        OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
    )  # fmt: skip
    worker = psutil.Process(proc.pid)
    cpu_before = sum(worker.cpu_times()[:2])
    peak = [worker.memory_info().rss]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak.append(worker.memory_info().rss)
            time.sleep(0.2)

    threading.Thread(target=sample, daemon=True).start()
    from cli import main as cli

    started = time.monotonic()
    try:
        argv = ["upload", str(files[0].parent), "--event", slug, "--api", api_url, "--key", key, "--no-progress"]
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries the JSON only
            code = cli(argv)
        uploaded_s = time.monotonic() - started
        wait_settled(factory, event_id, timeout=7200)
        # Thumbnails are part of "searchable and browsable": wait for them too.
        while True:
            with factory() as session:
                missing = session.scalar(NO_THUMBNAIL, {"e": event_id})
            if not missing:
                break
            time.sleep(0.2)
        wall = time.monotonic() - started
        cpu_s = sum(worker.cpu_times()[:2]) - cpu_before
        stages = stage_times(metrics_dir)  # before --fuse adds its own samples
        fused = fuse(factory, event_id, worker, settings) if fuse_after else {"skipped": "without --fuse"}
    finally:
        stop.set()
        proc.terminate()
        proc.wait(60)
    found = integrity(factory, event_id)
    return {
        "upload_exit_code": code,
        "photos_per_s": round(len(files) / wall, 3),
        "wall_s": round(wall, 1),
        "upload_s": round(uploaded_s, 1),
        "faces": found["faces"],
        "status": counts(factory, event_id),
        "worker_cpu_s": round(cpu_s, 1),
        "worker_peak_rss_mb": round(max(peak) / 2**20),
        **stages,
        "fuse": fused,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--size", default="4000x3000")
    parser.add_argument("--detectors", nargs="+", default=None, help="one worker per configuration, in turn")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--fuse", action="store_true", help="then time `event fuse` on the same event")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.split("x"))

    settings = services(OUT)
    detectors = args.detectors or [settings.detector]
    files = sorted(album(args.photos, (w, h), dev_data().faces_dir).glob("*.jpg"))
    engine = make_engine(settings.database_url, pool_size=2)
    factory = make_session_factory(engine)
    api_url, server = serve_api(settings)
    try:
        runs = {d: ingest(settings, factory, api_url, files, d, args.fuse) for d in detectors}
    finally:
        server.should_exit = True
    fr = {"skipped": "--no-baseline"} if args.no_baseline else baseline(files)
    result: dict[str, Any] = {
        "bench": "ingest",
        "device": os.environ.get("PHOTOMATCH_DEVICE", "cpu"),
        "machine": {"cpus": os.cpu_count() or 1, "platform": platform.platform()},
        "album": {"photos": len(files), "size": args.size, "quality": 90, "faces_per_photo": [3, 12]},
        "photomatch": runs,
        "face_recognition": fr,
        "ratio_photos_per_s": {
            d: round(r["photos_per_s"] / fr["photos_per_s"], 2) if "photos_per_s" in fr else None
            for d, r in runs.items()
        },
        # Against the first configuration named (today's default, when it comes first).
        "speedup_over_first": {
            d: round(r["photos_per_s"] / runs[detectors[0]]["photos_per_s"], 2) for d, r in runs.items()
        },
        "command": "uv run python bench/ingest.py " + " ".join(sys.argv[1:]),
    }
    print(json.dumps(result, indent=2))
    engine.dispose()


if __name__ == "__main__":
    main()
