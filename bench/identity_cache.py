"""Embed every labelled image of the dev face folders as a selfie and as an album face, cached. JSON out.

Search studies sample albums from these faces in milliseconds (bench/lib/identity_cache.py says how
each image is turned into a selfie and an album face).

    uv run python bench/identity_cache.py [--faces DIR ...] [--threads 2] [--also sface-2021dec-int8bq]

Without --faces: dev-faces, dev-lfw and dev-fiw (PHOTOMATCH_DEV_*_DIR), dev-fiw capped at its
first 6,000 images (whole families; ~25 min for all three on 2 cores). Prints a JSON summary; the
cache goes to bench/out/identity-cache/<folder>-<engine>[-first<N>].npz.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from bench.lib.datasets import dev_data
from bench.lib.identity_cache import DEFAULT_MAX_IMAGES, build


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=Path, action="append", help="a labelled face folder (repeatable)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--also", action="append", default=[], help="an extra embedder for the same faces (repeatable)")
    ap.add_argument("--max-images", type=int, default=None, help="per folder; 0 = all (default: dev-fiw 6000)")
    a = ap.parse_args(argv)
    folders = a.faces or list(dev_data().families().values())
    import torch

    torch.set_num_threads(a.threads)
    out = {}
    for d in folders:
        if not (d / "MANIFEST.md").is_file():
            print(f"{d}: no MANIFEST.md; skipped", file=sys.stderr)
            continue
        t0 = time.perf_counter()
        limit = a.max_images if a.max_images is not None else DEFAULT_MAX_IMAGES.get(d.name, 0)
        path = build(d, seed=a.seed, max_images=limit, also=tuple(a.also))
        with np.load(path) as z:
            out[d.name] = {
                "images": len(z["identity"]),
                "selfie_faces": int(np.isfinite(z["selfie"][:, 0]).sum()),
                "album_faces": int(np.isfinite(z["album"][:, 0]).sum()),
                "seconds": round(time.perf_counter() - t0, 1),
                "cache": str(path),
            }
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
