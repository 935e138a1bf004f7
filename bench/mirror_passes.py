"""Does each embedder's mirror pass pay? Verification with and without it, and what it costs.

Each embedder can embed a chip and its mirror image and average the two (`Embedder.flip`). That
doubles the embedding cost of every face, and in a crowd the cost per face decides the speed. Here
the same chips are embedded both ways, so only the mirror pass differs:

- dev-lfw: pairs.tsv's same-person and different-person pairs;
- dev-fiw: the same person twice against two relatives (same family, another person), the hard
  case of a wedding.

The second face of each pair is also shrunk so that it is `--album-px` wide, as a face in a crowd
photo is. Reported per embedder and for the two fused (mean of the two distances): ROC-AUC and the
true-accept rate at 1% false accepts, with and without the mirror, and milliseconds per face for
each model both ways (measured on the same chips, in this run).

    uv run python bench/mirror_passes.py [--pairs 1000] [--album-px 40] [--threads 2]

Prints one JSON object. The detector is the settings' (PHOTOMATCH_DETECTOR).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.lib.datasets import dev_data, lfw_pairs
from bench.lib.face_sets import largest_face, scaled
from bench.lib.identity_cache import labelled_images
from bench.lib.metrics import roc_auc, tar_at_far
from photomatch.config import get_settings
from photomatch.faces.engine import FaceEngine
from photomatch.imaging import load_image

Pair = tuple[Path, Path, bool]


def fiw_pairs(fiw: Path, n: int, seed: int) -> list[Pair]:
    """n/2 same-person pairs and n/2 pairs of relatives (same family prefix, different people)."""
    rng = np.random.default_rng(seed)
    people: dict[str, list[Path]] = {}
    for who, path in labelled_images(fiw):
        people.setdefault(who, []).append(path)
    families: dict[str, list[str]] = {}
    for who in people:
        families.setdefault(who.split("_")[0], []).append(who)
    names = sorted(people)
    same: list[Pair] = []
    kin: list[Pair] = []
    for i in rng.permutation(len(names)):
        who = names[i]
        if len(same) < n // 2 and len(people[who]) >= 2:
            a, b = rng.choice(len(people[who]), 2, replace=False)
            same.append((people[who][a], people[who][b], True))
        relatives = [r for r in families[who.split("_")[0]] if r != who]
        if len(kin) < n // 2 and relatives:
            other = relatives[int(rng.integers(len(relatives)))]
            kin.append((people[who][int(rng.integers(len(people[who])))], people[other][0], False))
        if len(same) >= n // 2 and len(kin) >= n // 2:
            break
    return same + kin


def measure(engine: FaceEngine, pairs: list[Pair], album_px: float, timing: dict[str, float]) -> dict[str, Any]:
    """ROC-AUC and TAR@FAR 1% per embedder, fused, mirror on and off, full size and album size."""
    models = {"first": engine.embedder, "second": engine.second}
    dists: dict[str, list[float]] = {}
    labels: list[bool] = []
    for a, b, same in pairs:
        img_a, img_b = load_image(a).rgb, load_image(b).rgb
        da, db = largest_face(engine, img_a), largest_face(engine, img_b)
        if da is None or db is None:
            continue
        labels.append(same)
        views = {"full": (img_b, db), "album": scaled(img_b, db, min(1.0, album_px / db.size))}
        for key, model in models.items():
            if model is None:
                continue
            ca = engine.chips(img_a, [da], model)
            configured = model.flip
            for flip in (True, False):
                model.flip = flip
                va = model.embed(ca)[0]
                for view, (img, det) in views.items():
                    cb = engine.chips(img, [det], model)
                    t0 = time.perf_counter()
                    vb = model.embed(cb)[0]
                    timing[f"{key}_{'mirror' if flip else 'plain'}"] += time.perf_counter() - t0
                    d = float(np.linalg.norm(va - vb))
                    dists.setdefault(f"{key}|{flip}|{view}", []).append(d)
            model.flip = configured
    same = np.array(labels, dtype=bool)
    out: dict[str, Any] = {"pairs": len(labels), "same_person": int(same.sum())}
    for view in ("full", "album"):
        for flip in (True, False):
            cols = {k: np.array(dists[f"{k}|{flip}|{view}"]) for k in models if f"{k}|{flip}|{view}" in dists}
            if len(cols) == 2:
                cols["fused"] = (cols["first"] + cols["second"]) / 2
            for k, d in cols.items():
                out[f"{view}/{k}/{'mirror' if flip else 'plain'}"] = {
                    "roc_auc": round(roc_auc(same, d), 4),
                    "tar_at_far_1pct": round(tar_at_far(same, d, 0.01), 4),
                }
    return out


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=1000)
    ap.add_argument("--album-px", type=float, default=40.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = dev_data()
    if not (data.lfw_dir / "pairs.tsv").is_file() or not data.fiw_dir.is_dir():
        print(f"dev-lfw or dev-fiw not found ({data.lfw_dir}, {data.fiw_dir})", file=sys.stderr)
        return 2
    settings = get_settings()
    engine = FaceEngine(settings)
    timing = dict.fromkeys(("first_mirror", "first_plain", "second_mirror", "second_plain"), 0.0)
    report: dict[str, Any] = {
        "device": str(engine.device),
        "threads": args.threads,
        "detector": settings.detector,
        "first": engine.model_name,
        "second": engine.second_model_name,
        "album_px": args.album_px,
        "dev-lfw": measure(engine, lfw_pairs(data.lfw_dir, args.pairs), args.album_px, timing),
        "dev-fiw": measure(engine, fiw_pairs(data.fiw_dir, args.pairs, args.seed), args.album_px, timing),
    }
    # Each model embedded two chips per pair and mode: milliseconds per face, one chip at a time.
    faces = 2 * (report["dev-lfw"]["pairs"] + report["dev-fiw"]["pairs"])
    report["ms_per_face_one_at_a_time"] = {k: round(1000 * v / max(faces, 1), 2) for k, v in timing.items()}
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
