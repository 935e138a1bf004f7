"""Face engine benchmark: photomatch against face_recognition on the same photos, in one run.

Three photo sets: the dev-faces group photos, real crowds (`--crowd-photos` of dev-wider's WIDER
FACE images, spread over its events), and a generated album of large photos (made with
bench/make_album.py on first use and cached under bench/out/). For each pipeline it reports
photos/s, faces/s and faces found, and against face_recognition the ratio of both; on the album
also the share of pasted faces found and the mAP of ranking album photos for each held-back selfie
(brute force, no database). `--detectors` runs the engine once per detector configuration, in the
same run (default: the settings' PHOTOMATCH_DETECTOR).

    uv run python bench/faces.py [--detectors mtcnn yunet] [--crowd-photos 60] [--album-photos 20]
                                 [--threads N] [--skip-baseline]

face_recognition runs with its defaults (HOG detector, one upsample, 1 jitter) on the same
decoded pixels. Large photos are first shrunk to PHOTOMATCH_DETECT_MAX_SIDE for both, since
HOG on an upsampled 12 MP photo takes minutes and no user would run it that way.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from bench.lib.albums import ensure_album, found_truth
from bench.lib.datasets import crowd_photos, dev_data
from bench.lib.metrics import mean_average_precision
from photomatch.config import get_settings
from photomatch.faces.engine import FaceEngine
from photomatch.imaging import load_image

OUT = Path(__file__).resolve().parent / "out"

# One pipeline: decoded RGB photo -> (boxes as x1,y1,x2,y2 in photo pixels, unit vectors).
Pipeline = Callable[[np.ndarray], tuple[list[tuple[float, float, float, float]], np.ndarray]]


def photomatch_pipeline(engine: FaceEngine) -> Pipeline:
    """The engine as the worker runs it: detect on a shrunk copy, align and embed from full pixels."""

    def run(rgb: np.ndarray) -> tuple[list[tuple[float, float, float, float]], np.ndarray]:
        faces = engine.analyze([rgb])[0]
        # A face too small to identify is found but not embedded (Settings.embed_min_face_px): NaN.
        vecs = np.full((len(faces), engine.embedder.dim), np.nan)
        for i, f in enumerate(faces):
            if f.embedding is not None:
                vecs[i] = f.embedding
        return [f.detection.box for f in faces], vecs

    return run


def face_recognition_pipeline(max_side: int) -> Pipeline:
    """face_recognition's documented usage: face_locations (HOG, upsample 1) then face_encodings."""
    import face_recognition

    def run(rgb: np.ndarray) -> tuple[list[tuple[float, float, float, float]], np.ndarray]:
        scale = min(1.0, max_side / max(rgb.shape[:2]))
        img = rgb
        if scale < 1.0:
            size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
            img = np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR, reducing_gap=2.0))
        locs = face_recognition.face_locations(img)
        enc = face_recognition.face_encodings(img, locs)
        boxes = [(le / scale, t / scale, r / scale, b / scale) for t, r, b, le in locs]
        vecs = np.array(enc, dtype=np.float64).reshape(-1, 128)
        # dlib's vectors are not unit length; normalise so distances compare like ours.
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        return boxes, vecs / np.maximum(norms, 1e-12)

    return run


def time_set(pipeline: Pipeline, images: list[np.ndarray]) -> dict[str, Any]:
    """Run a pipeline over decoded photos; decoding is excluded and identical for both."""
    pipeline(images[0])  # warm-up: model loading and first-call allocations are not throughput
    start = time.perf_counter()
    results = [pipeline(img) for img in images]
    seconds = time.perf_counter() - start
    faces = sum(len(b) for b, _ in results)
    return {
        "photos": len(images),
        "faces_found": faces,
        # Of those, the ones with a vector: photomatch leaves faces too small to identify without one.
        "faces_embedded": int(sum(int((~np.isnan(v).any(axis=1)).sum()) for _, v in results)),
        "seconds": round(seconds, 3),
        "photos_per_s": round(len(images) / seconds, 3),
        "faces_per_s": round(faces / seconds, 2),
        "_results": results,
    }


def album_map(
    truth: dict[str, Any], album_dir: Path, names: list[str], results: list[Any], pipeline: Pipeline
) -> float:
    """mAP of ranking album photos by their closest face to each identity's selfie."""
    runs = []
    for identity, rel in sorted(truth["selfies"].items()):
        relevant = set(truth["identities"].get(identity, []))
        if not relevant:
            continue
        _, sv = pipeline(load_image(album_dir / rel).rgb)
        if len(sv) == 0 or np.isnan(sv[0]).any():
            runs.append(([False] * len(names), len(relevant)))
            continue
        q = sv[0]  # the largest face: both pipelines order faces by size
        # Faces without a vector (NaN) are never the closest.
        scores = [
            float(np.nan_to_num(np.linalg.norm(v - q, axis=1), nan=9.0).min()) if len(v) else 9.0 for _, v in results
        ]
        order = np.argsort(scores, kind="stable")
        runs.append(([names[i] in relevant for i in order], len(relevant)))
    return round(mean_average_precision(runs), 4)


def _largest_first(p: Pipeline) -> Pipeline:
    def run(rgb: np.ndarray) -> tuple[list[tuple[float, float, float, float]], np.ndarray]:
        boxes, vecs = p(rgb)
        order = sorted(range(len(boxes)), key=lambda i: -(boxes[i][2] - boxes[i][0]) * (boxes[i][3] - boxes[i][1]))
        return [boxes[i] for i in order], vecs[order] if len(order) else vecs

    return run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--album-photos", type=int, default=20)
    ap.add_argument("--crowd-photos", type=int, default=60, help="dev-wider images (0: none)")
    ap.add_argument("--detectors", nargs="+", default=None, help="detector configurations to compare")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--skip-baseline", action="store_true", help="time photomatch only")
    ap.add_argument("--device", default=None, help="override PHOTOMATCH_DEVICE")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    settings = get_settings()
    detectors = args.detectors or [settings.detector]
    engines = {d: FaceEngine(settings.model_copy(update={"detector": d}), device=args.device) for d in detectors}
    engine = engines[detectors[0]]
    pipelines: dict[str, Pipeline] = {f"photomatch[{d}]": photomatch_pipeline(e) for d, e in engines.items()}
    if not args.skip_baseline:
        pipelines["face_recognition"] = _largest_first(face_recognition_pipeline(settings.detect_max_side))

    faces_dir = dev_data().faces_dir
    groups = sorted((faces_dir / "groups").glob("*.*"))
    album_dir = ensure_album(faces_dir, args.album_photos, args.seed)
    truth = json.loads((album_dir / "truth.json").read_text())
    album_names = sorted(truth["photos"])
    sets = {
        "groups": [load_image(p).rgb for p in groups],
        "crowds": [load_image(p).rgb for p in crowd_photos(dev_data().wider_dir, args.crowd_photos)],
        "album": [load_image(album_dir / "album" / n).rgb for n in album_names],
    }
    report: dict[str, Any] = {
        "device": str(engine.device),
        "gpu": torch.cuda.get_device_name(engine.device) if engine.device.type == "cuda" else None,
        "cpu": platform.processor() or platform.machine(),
        "threads": args.threads,
        "embedder": engine.model_name,
        "second_embedder": engine.second_model_name,
        "detectors": detectors,
        "detect_max_side": settings.detect_max_side,
        "album": {"dir": str(album_dir), "photos": len(album_names), "size": truth["size"], "seed": args.seed},
        "results": {},
    }
    for set_name, images in sets.items():
        if not images:  # no dev-wider folder, or --crowd-photos 0
            continue
        for name, pipeline in pipelines.items():
            r = time_set(pipeline, images)
            results = r.pop("_results")
            if set_name == "album":
                r["truth_faces_found"] = round(found_truth(truth, album_names, results), 4)
                r["mAP"] = album_map(truth, album_dir, album_names, results, pipeline)
            report["results"].setdefault(set_name, {})[name] = r
        if "face_recognition" in pipelines:
            res = report["results"][set_name]
            base = res["face_recognition"]
            res["against_face_recognition"] = {
                d: {
                    "photos_per_s_ratio": round(res[f"photomatch[{d}]"]["photos_per_s"] / base["photos_per_s"], 2),
                    "faces_ratio": round(res[f"photomatch[{d}]"]["faces_found"] / max(base["faces_found"], 1), 2),
                }
                for d in detectors
            }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
