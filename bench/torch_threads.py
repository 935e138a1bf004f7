"""What running CPU inference on one thread saves: a selfie's detection and embedding, called from a
pool of request threads as the API's are, with photomatch.faces.torch_thread on and off. JSON out.

Each case runs in a fresh process (OpenMP teams persist for a process's life): real dev-lfw
selfies, each detected and its largest face embedded by both models (as search does), called in
turn from a pool of 8 threads; the first pass warms up, the second is timed. The slowdown appears
once a long-lived thread other than the caller has run torch (here the main thread, on 3 selfies
first, as a process that warms its engine up would), so the cases are:

- `request_threads`: inference on the request threads, nothing else ran torch;
- `request_threads_after_main`: the same after the main thread ran the engine;
- `one_thread_after_main`: the product (torch_thread on), after the main thread ran the engine.

    uv run python bench/torch_threads.py [--selfies 40] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from bench.lib.datasets import dev_data

CASES = {  # case: (inference on one thread, the main thread ran the engine first)
    "request_threads": (False, False),
    "request_threads_after_main": (False, True),
    "one_thread_after_main": (True, True),
}


def measure(selfies: int, threads: int, dispatch: bool, main_first: bool) -> dict[str, float]:
    """p50/p95 of one selfie's detection and embedding, called from a rotating pool of 8 threads."""
    import torch

    from bench.lib.identity_cache import labelled_images
    from photomatch.config import get_settings
    from photomatch.faces import torch_thread
    from photomatch.faces.engine import FaceEngine
    from photomatch.imaging import load_image

    torch.set_num_threads(threads)
    torch_thread.enabled = dispatch
    settings = get_settings()
    engine = FaceEngine(settings)
    images = [load_image(p.read_bytes()).rgb for _, p in labelled_images(dev_data().lfw_dir)[:selfies]]

    def one(image: np.ndarray) -> float:
        started = time.perf_counter()
        faces = engine.analyze([image], embed=False)[0]
        if faces:
            engine.embed_faces(image, [max(faces, key=lambda f: f.detection.size)])
        return (time.perf_counter() - started) * 1000

    if main_first:
        for image in images[:3]:
            one(image)
    with ThreadPoolExecutor(8) as pool:
        for _ in range(2):
            ms = [pool.submit(one, image).result() for image in images]
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1),
        "n": len(ms),
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--selfies", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--mode", choices=tuple(CASES), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.mode:
        print(json.dumps(measure(args.selfies, args.threads, *CASES[args.mode])))
        return 0
    out: dict[str, object] = {"device": "cpu", "torch_threads": args.threads, "selfies": args.selfies}
    for mode in CASES:
        cmd = [sys.executable, "-m", "bench.torch_threads", "--mode", mode, "--selfies", str(args.selfies)]
        done = subprocess.run([*cmd, "--threads", str(args.threads)], capture_output=True, text=True, check=True)
        out[mode] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{mode}: {out[mode]}", file=sys.stderr, flush=True)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
