"""At what size does a face's embedding stop identifying it? Verification on dev-lfw's pairs with the
second face of each pair shrunk to S pixels, and how many faces that small the detector returns.

Each pair's first photo is used as it is (a selfie, faces ~100 px). The second is shrunk so that its
face is S px wide (`Detection.size`, the box's shorter side), then aligned and embedded from those
pixels, as a face S px wide in an album photo would be: its landmarks come from detection on the
full photo, scaled down, so that what is measured is the embedding, not whether the detector finds
or places a face that small (an upper bound: a real face that small gets rougher landmarks).
Reported per S, for each embedder and for the two fused as the search fuses them (mean of the two
distances): ROC-AUC and the true-accept rate at 1% and 0.1% false accepts.

Also counted: the faces the detector returns on the dev-faces group photos and on dev-wider crowd
photos (`--crowd-photos`, as bench/faces.py picks them), by size. Settings.embed_min_face_px, the
size under which the engine detects a face but does not embed it, is chosen from this.

    uv run python bench/tiny_faces.py [--pairs 600] [--sizes 6,7,8,10,12,16,20,24,32] [--crowd-photos 60]

Prints one JSON object (CPU unless a GPU is present). The engine's own size bound does not apply
here: every shrunk face is embedded.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np
import torch

from bench.lib.datasets import crowd_photos, dev_data, lfw_pairs
from bench.lib.face_sets import largest_face, scaled
from bench.lib.metrics import roc_auc, tar_at_far
from photomatch.config import get_settings
from photomatch.faces.engine import FaceEngine
from photomatch.imaging import load_image

EDGES = [0, 6, 7, 8, 10, 12, 16, 24, 32, 10_000]


def _vectors(engine: FaceEngine, image: np.ndarray, det: Any) -> list[np.ndarray]:
    """The face's vector from each embedder (without the engine's size bound)."""
    models = [engine.embedder, *([engine.second] if engine.second else [])]
    return [m.embed(engine.chips(image, [det], m))[0] for m in models]


def _sizes_found(engine: FaceEngine, paths: list[Any]) -> dict[str, int]:
    """How many faces the detector returns in each size band of EDGES on these photos."""
    sizes = [d.size for path in paths for d in engine.detect([load_image(path).rgb])[0]]
    counts, _ = np.histogram(sizes, bins=EDGES)
    return {
        f"{lo}-{hi}" if hi < 10_000 else f">={lo}": int(c) for lo, hi, c in zip(EDGES, EDGES[1:], counts, strict=False)
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=600)
    ap.add_argument("--sizes", default="6,7,8,10,12,16,20,24,32")
    ap.add_argument("--crowd-photos", type=int, default=60, help="dev-wider images to count faces on (0: none)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = dev_data()
    if not (data.lfw_dir / "pairs.tsv").is_file():
        print(f"dev-lfw not found at {data.lfw_dir}", file=sys.stderr)
        return 2
    engine = FaceEngine(get_settings())
    sizes = [int(s) for s in args.sizes.split(",")]
    names = [engine.model_name, *([engine.second_model_name] if engine.second else [])]

    same: list[bool] = []
    dists: dict[str, list[list[float]]] = {}
    for a, b, is_same in lfw_pairs(data.lfw_dir, args.pairs):
        img_a, img_b = load_image(a).rgb, load_image(b).rgb
        det_a, det_b = largest_face(engine, img_a), largest_face(engine, img_b)
        if det_a is None or det_b is None:
            continue
        same.append(is_same)
        ref = _vectors(engine, img_a, det_a)
        views = {"full": (img_b, det_b)} | {str(s): scaled(img_b, det_b, s / det_b.size) for s in sizes}
        for key, (img, det) in views.items():
            vecs = _vectors(engine, img, det)
            dists.setdefault(key, []).append([float(np.linalg.norm(r - v)) for r, v in zip(ref, vecs, strict=True)])
    is_same = np.array(same, dtype=bool)
    out: dict[str, Any] = {"device": str(engine.device), "detector": engine.detector_name, "models": names,
                           "pairs": len(same), "same_person": int(is_same.sum()), "by_size": {}}  # fmt: skip
    for key, rows in dists.items():
        d = np.array(rows)
        cols = {name: d[:, i] for i, name in enumerate(names)}
        if len(names) == 2:
            cols["fused"] = d.mean(axis=1)
        out["by_size"][key] = {
            name: {
                "roc_auc": round(roc_auc(is_same, v), 4),
                "tar_at_far_1pct": round(tar_at_far(is_same, v, 0.01), 4),
                "tar_at_far_0.1pct": round(tar_at_far(is_same, v, 0.001), 4),
            }
            for name, v in cols.items()
        }
        print(key, json.dumps(out["by_size"][key]), file=sys.stderr, flush=True)
    out["faces_found_by_size"] = {
        "dev_faces_groups": _sizes_found(engine, sorted((data.faces_dir / "groups").glob("*.jp*g"))),
        "dev_wider_crowds": _sizes_found(engine, crowd_photos(data.wider_dir, args.crowd_photos)),
    }
    out["embed_min_face_px"] = engine.settings.embed_min_face_px
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
