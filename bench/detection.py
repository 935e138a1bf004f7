"""Face detection on real crowds (dev-wider, WIDER FACE's official protocol), group and 12 MP photos. JSON out.

For each detector configuration given: AP easy / medium / hard (bench/lib/wider.py, the official
protocol, detections ranked down to a low score), recall and precision at the product's cut, recall
by face height, faces found and seconds per image (timed again at the cut, as the product runs it:
ranking down to a low score spends most of its time merging weak boxes); the faces it finds on the
dev-faces group photos (no ground truth); and its detection time on 12 MP photos (the product's scale).

    uv run python bench/detection.py [--detectors mtcnn ...] [--limit N] [--threads 2] [--photos-12mp 4]
                                     [--second-opinion yunet+mtcnn]

With --second-opinion, each pair is also measured as one detector with the other as a second opinion
(the first's faces, plus the second's that overlap none of them, each at its own cut): recall and
precision at the cut, and the two detectors' time together.

PHOTOMATCH_DETECT_MAX_SIDE sets the scale the 12 MP photos are detected at (default 2048).

Configurations (photomatch.faces.detection.DETECTOR_CONFIGS): the product's detectors and the
variants studied for them. CPU unless PHOTOMATCH_DEVICE says otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.lib.albums import found_truth, ingest_album
from bench.lib.datasets import dev_data
from bench.lib.wider import at_cut, average_precision, load_truth, union
from photomatch.config import get_settings
from photomatch.imaging import load_image

OUT = Path(__file__).resolve().parent / "out" / "detection"


def _detect_all(
    detector: Any, paths: list[Path], repeats: int = 1
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], float]:
    """Every image's boxes and scores (one image per call, as a worker's batch of one), and the seconds
    spent: with `repeats`, each image's fastest of that many runs (timeit's way: on a shared machine
    the least disturbed run is the one that measures the detector)."""
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    seconds = 0.0
    for path in paths:
        rgb = load_image(path).rgb
        runs = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            found = detector.detect([rgb])[0]
            runs.append(time.perf_counter() - t0)
        seconds += min(runs)
        boxes = np.array([d.box for d in found], dtype=np.float64).reshape(-1, 4)
        out[path.name if path.parent.name == "groups" else f"{path.parent.name}/{path.name}"] = (
            boxes,
            np.array([d.probability for d in found], dtype=np.float64),
        )
    return out, seconds


def measure(name: str, args: argparse.Namespace, log: Any, ranked_out: dict[str, Any]) -> dict[str, Any]:
    """One configuration on every set; its ranked dev-wider detections go into `ranked_out[name]`."""
    import torch

    from photomatch.faces.detection import DETECTOR_CONFIGS, detector_for
    from photomatch.faces.device import choose_device

    config = DETECTOR_CONFIGS[name]
    device = choose_device(get_settings().device)
    ranked = detector_for(config, device, min_score=config.rank_down_to)
    # The product's detector as the settings run it (PHOTOMATCH_DETECT_MAX_SIDE: the detection scale).
    product = detector_for(config, device, get_settings(), min_score=config.cut)
    out: dict[str, Any] = {"config": config.describe(), "device": str(device), "threads": torch.get_num_threads()}
    data = dev_data()
    wider = data.wider_dir
    if (wider / "MANIFEST.md").is_file():
        truth = load_truth(wider)
        names = sorted(truth)[: args.limit] if args.limit else sorted(truth)
        truth = {n: truth[n] for n in names}
        log(f"{name}: dev-wider, {len(names)} images ...")
        paths = [wider / "images" / n for n in names]
        detections, ranked_seconds = _detect_all(ranked, paths)
        ranked_out[name] = (detections, truth)
        _, seconds = _detect_all(product, paths)
        out["dev_wider"] = {
            "images": len(names),
            "ap": average_precision(detections, truth),
            "at_cut": at_cut(detections, truth, config.cut),
            # Where else the cut could sit: recall of the faces that count (all, and 32 px and taller)
            # against precision, from the same detections.
            "cut_sweep": {
                str(cut): {k: r[k] for k in ("recall", "recall_32px_and_taller", "precision")}
                for cut in (0.5, 0.6, 0.7, 0.8, 0.9)
                if cut >= config.rank_down_to and (r := at_cut(detections, truth, cut))
            },
            "faces_found_at_cut": int(sum(int((s >= config.cut).sum()) for _, s in detections.values())),
            "seconds_per_image": round(seconds / max(1, len(names)), 3),
            "seconds_per_image_ranked": round(ranked_seconds / max(1, len(names)), 3),
        }
    else:
        log(f"dev-wider not found at {wider}; skipped (PHOTOMATCH_DEV_WIDER_DIR)")
    groups = sorted((data.faces_dir / "groups").glob("*.jp*g"))
    if groups:
        found, seconds = _detect_all(product, groups)
        out["dev_faces_groups"] = {
            "photos": len(groups),
            "faces_found": int(sum(len(s) for _, s in found.values())),
            "seconds_per_image": round(seconds / len(groups), 3),
        }
    if args.photos_12mp and (data.faces_dir / "MANIFEST.md").is_file():
        album = ingest_album(args.photos_12mp, (4000, 3000), data.faces_dir)
        photos = sorted(album.glob("*.jpg"))[: args.photos_12mp]
        product.detect([load_image(photos[0]).rgb])  # warm up
        found, seconds = _detect_all(product, photos, args.repeats)
        truth = json.loads((album.parent / "truth.json").read_text())
        out["photos_12mp"] = {
            "photos": len(photos),
            "detect_max_side": get_settings().detect_max_side,
            "faces_found": int(sum(len(s) for _, s in found.values())),
            # The album's pasted faces (3-12 a photo, 55-190 px tiles) with a detection inside.
            "pasted_faces_found": round(found_truth(truth, [p.name for p in photos], list(found.values())), 4),
            "seconds_per_photo": round(seconds / len(photos), 3),
            "repeats": args.repeats,  # each photo's fastest run
        }
    return out


def second_opinions(pairs: list[str], results: dict[str, Any], ranked: dict[str, Any]) -> dict[str, Any]:
    """Each pair's recall and precision at both configurations' cuts, and what the pair costs."""
    out: dict[str, Any] = {}
    for pair in pairs:
        a, b = pair.split("+")
        if a not in ranked or b not in ranked:
            out[pair] = {"skipped": f"measure both with --detectors {a} {b}"}
            continue
        (first, truth), (second, _) = ranked[a], ranked[b]
        ca, cb = results[a]["config"]["cut"], results[b]["config"]["cut"]
        r = at_cut(union(first, second, ca, cb), truth, 0.0)
        out[pair] = {
            "cuts": [ca, cb],
            **{k: r[k] for k in ("recall", "precision", "recall_32px_and_taller", "recall_by_height", "detections")},
            "seconds_per_image": round(sum(results[n]["dev_wider"]["seconds_per_image"] for n in (a, b)), 3),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    from photomatch.faces.detection import DETECTOR_CONFIGS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--detectors", nargs="+", default=list(DETECTOR_CONFIGS), choices=sorted(DETECTOR_CONFIGS))
    ap.add_argument("--limit", type=int, default=0, help="only the first N dev-wider images (0: all 350)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--photos-12mp", type=int, default=4, help="12 MP photos to time (0: skip)")
    ap.add_argument("--repeats", type=int, default=3, help="12 MP photos: each timed this many times, the fastest kept")
    ap.add_argument(
        "--second-opinion",
        nargs="*",
        default=[],
        metavar="FIRST+SECOND",
        help="pairs of measured configurations (e.g. yunet+mtcnn): the first's faces plus the second's new ones",
    )
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    ranked: dict[str, Any] = {}
    results = {name: measure(name, args, log, ranked) for name in args.detectors}
    for name, r in results.items():
        log(f"{name}: " + json.dumps({k: r[k] for k in ("dev_wider",) if k in r}))
    out: dict[str, Any] = {"detectors": results}
    if args.second_opinion:
        out["second_opinion"] = second_opinions(args.second_opinion, results, ranked)
        log("second opinion: " + json.dumps(out["second_opinion"]))
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
