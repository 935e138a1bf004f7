"""Worker memory over a long album, crowds included: RSS of the face worker at start (models loaded),
at its peak, at the end, and while it holds a 289-face crowd photo.

The album: `--photos` dev-lfw portraits (250x250) with a crowd photo every `--crowd-every`: a
17x17 mosaic of dev-lfw faces, 4250x4250 px (18 MP) and 289 faces, the kind of photo that made
one worker hold gigabytes. RSS is sampled every 0.2 s with psutil. CPU. Prints JSON.

    uv run python bench/worker_memory.py [--photos 2000] [--crowd-every 100]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
from PIL import Image

from bench.lib.datasets import dev_data
from bench.lib.fleet import integrity, services, start_worker, upload_album, wait_settled
from photomatch.config import Settings
from photomatch.db import make_engine, make_session_factory

OUT = Path(__file__).resolve().parent / "out" / "worker-memory"
GRID = 17


def lfw_images(settings: Settings) -> list[Path]:
    root = dev_data().faces_dir.parent / "dev-lfw"
    if not (root / "MANIFEST.md").is_file():
        sys.exit(f"dev-lfw not found at {root}")
    return sorted(root.glob("*/*.jpg"))


def crowd(faces: list[Path], seed: int) -> bytes:
    """A GRID x GRID mosaic of portraits: GRID**2 faces in one 18 MP JPEG."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(faces), GRID * GRID, replace=False)
    canvas = Image.new("RGB", (250 * GRID, 250 * GRID))
    for k, i in enumerate(picks):
        canvas.paste(Image.open(faces[i]).convert("RGB"), ((k % GRID) * 250, (k // GRID) * 250))
    out = io.BytesIO()
    canvas.save(out, "JPEG", quality=90)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=2000)
    parser.add_argument("--crowd-every", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=16, help="photos per face task (the default setting)")
    args = parser.parse_args()

    settings = services(OUT, process_batch_size=args.batch_size)
    (OUT / "album").mkdir(exist_ok=True)
    portraits = lfw_images(settings)[: args.photos]
    photos: list[Path] = []
    for i, p in enumerate(portraits):
        photos.append(p)
        if (i + 1) % args.crowd_every == 0:
            path = OUT / "album" / f"crowd-{i:05d}.jpg"
            if not path.exists():
                path.write_bytes(crowd(portraits, i))
            photos.append(path)
    crowds = sum(p.parent == OUT / "album" for p in photos)

    engine = make_engine(settings.database_url, pool_size=2)
    factory = make_session_factory(engine)
    log = OUT / f"worker-{int(time.time())}.log"
    proc = start_worker(settings, log, queues="faces,cpu")
    worker = psutil.Process(proc.pid)
    samples: list[tuple[float, int]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append((time.monotonic(), worker.memory_info().rss))
            time.sleep(0.2)

    start_rss = worker.memory_info().rss
    threading.Thread(target=sample, daemon=True).start()
    try:
        event_id = upload_album(settings, factory, photos, "Memory")
        wall = wait_settled(factory, event_id, timeout=7200)
        time.sleep(1.0)
        end_rss = worker.memory_info().rss
    finally:
        stop.set()
        proc.terminate()
        proc.wait(60)
    rss = np.array([s for _, s in samples])
    quarter = max(1, len(rss) // 4)
    result = {
        "bench": "worker_memory",
        "device": "cpu",
        "photos": len(photos),
        "crowd_photos": crowds,
        "faces_per_crowd": GRID * GRID,
        "batch_size": args.batch_size,
        "wall_s": round(wall, 1),
        "rss_mb": {
            "start_models_loaded": round(start_rss / 2**20),
            "peak": round(int(rss.max()) / 2**20),
            "median_first_quarter": round(float(np.median(rss[:quarter])) / 2**20),
            "median_last_quarter": round(float(np.median(rss[-quarter:])) / 2**20),
            "end": round(end_rss / 2**20),
        },
        **integrity(factory, event_id),
        "command": "uv run python bench/worker_memory.py " + " ".join(sys.argv[1:]),
    }
    print(json.dumps(result, indent=2))
    engine.dispose()


if __name__ == "__main__":
    main()
