"""How much weight ONet's second opinion gets (photomatch.faces.verify), chosen on half of dev-wider. JSON out.

YuNet runs once over dev-wider's images with the looks of a configuration (default yunet-1x-2x:
every candidate down to a low score), and ONet judges every box once. Then, for each weight, the
combined scores are measured by the official protocol (bench/lib/wider.py) on the even-numbered
images (the fitting half) and on the odd-numbered ones (held out): AP easy / medium / hard, and the
cut that keeps precision 0.85 by WIDER's labels with the most faces 32 px and taller found there.
The weight with the best fitting-half AP hard + medium is chosen and its held-out figures printed
beside YuNet's own (weight 0).

With --learned, the fixed combination is also set against one learned on the fitting half: a
logistic regression of "this box is a face WIDER boxed" (IoU >= 0.5) on YuNet's and ONet's bounded
log-odds, the box's log height and that height times ONet's log-odds (ONet judges a large face from
a sharper 48 px square than a small one), measured on the held-out half the same way.

    uv run python bench/verify_weight.py [--looks yunet-1x-2x] [--weights 0 0.1 0.25 0.5 1] [--limit N] [--learned]
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np

from bench.lib.datasets import dev_data
from bench.lib.study import fit_logistic, predict
from bench.lib.wider import IOU, at_cut, average_precision, load_truth, overlaps
from photomatch.imaging import load_image

CUTS = tuple(round(c, 3) for c in np.arange(0.3, 0.801, 0.025))
PRECISION = 0.85


def measure(detections: dict[str, tuple[np.ndarray, np.ndarray]], truth: dict[str, Any]) -> dict[str, Any]:
    """AP per setting, and the cut with the most faces >= 32 px found at precision >= PRECISION."""
    best: dict[str, Any] = {}
    for cut in CUTS:
        r: dict[str, Any] = at_cut(detections, truth, cut)
        if r["precision"] >= PRECISION and r["recall_32px_and_taller"] > best.get("recall_32px_and_taller", -1):
            best = {k: r[k] for k in ("cut", "recall", "precision", "recall_32px_and_taller")}
    return {"ap": average_precision(detections, truth), "at_precision": best}


def box_features(boxes: np.ndarray, yunet: np.ndarray, onet: np.ndarray) -> np.ndarray:
    """The learned combination's features per box, with a constant last (the bias)."""
    from photomatch.faces.verify import LOGIT_BOUND
    from photomatch.search.scoring import logit

    height = np.log(np.maximum(boxes[:, 3] - boxes[:, 1], 1.0))
    y, o = (np.clip(logit(p), -2 * LOGIT_BOUND, 2 * LOGIT_BOUND) for p in (yunet, onet))
    return np.column_stack([y, o, height, height * o, np.ones(len(boxes))])


def learned(
    seen: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], truth: dict[str, Any], fitting: list[str]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every image's boxes scored by the combination fitted on the `fitting` images."""
    x, y = [], []
    for name in fitting:
        (boxes, s, p), faces = seen[name], truth[name].boxes
        if len(boxes):
            x.append(box_features(boxes, s, p))
            y.append(overlaps(boxes, faces).max(axis=1) >= IOU if len(faces) else np.zeros(len(boxes), dtype=bool))
    w = fit_logistic(np.concatenate(x), np.concatenate(y).astype(np.float64))
    return {n: (b, predict(box_features(b, s, p), w) if len(b) else s) for n, (b, s, p) in seen.items()}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    import torch

    from photomatch.faces.detection import DETECTOR_CONFIGS
    from photomatch.faces.verify import OnetVerifier, combine
    from photomatch.faces.yunet import YuNet

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--looks", default="yunet-1x-2x", help="a YuNet configuration whose looks (passes) to run")
    ap.add_argument("--weights", nargs="+", type=float, default=[0.0, 0.1, 0.25, 0.5, 1.0])
    ap.add_argument("--limit", type=int, default=0, help="only the first N images (0: all)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--learned", action="store_true", help="also a combination learned on the fitting half")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    config = DETECTOR_CONFIGS[args.looks]
    yunet = YuNet(device, passes=config.passes, min_score=config.rank_down_to, vote=config.vote)
    verifier = OnetVerifier(device)
    wider = dev_data().wider_dir
    if not (wider / "MANIFEST.md").is_file():
        print(f"dev-wider not found at {wider} (PHOTOMATCH_DEV_WIDER_DIR)", file=sys.stderr)
        return 1
    truth = load_truth(wider)
    names = sorted(truth)[: args.limit] if args.limit else sorted(truth)
    seen: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for i, name in enumerate(names):
        rgb = load_image(wider / "images" / name).rgb
        faces = yunet.detect([rgb])[0]
        boxes = np.array([f.box for f in faces], dtype=np.float64).reshape(-1, 4)
        seen[name] = (
            boxes,
            np.array([f.probability for f in faces]),
            verifier.probabilities(torch.from_numpy(rgb), boxes),
        )
        if i % 50 == 0:
            print(f"{i}/{len(names)}", file=sys.stderr, flush=True)
    halves = {"fitting": names[0::2], "held_out": names[1::2]}
    out: dict[str, Any] = {"looks": args.looks, "images": len(names), "weights": {}}
    for w in args.weights:
        combined = {n: (b, combine(s, p, w) if len(b) else s) for n, (b, s, p) in seen.items()}
        out["weights"][str(w)] = {
            half: measure({n: combined[n] for n in sel}, {n: truth[n] for n in sel}) for half, sel in halves.items()
        }
        print(f"weight {w}: {json.dumps(out['weights'][str(w)])}", file=sys.stderr, flush=True)
    fit = {w: r["fitting"]["ap"] for w, r in out["weights"].items()}
    chosen = max(fit, key=lambda w: fit[w]["hard"] + fit[w]["medium"])
    out["chosen"] = {"weight": float(chosen), "held_out": out["weights"][chosen]["held_out"]}
    if "0.0" in out["weights"]:
        out["chosen"]["held_out_yunet_alone"] = out["weights"]["0.0"]["held_out"]
    if args.learned:
        scored = learned(seen, truth, halves["fitting"])
        held = halves["held_out"]
        out["learned_held_out"] = measure({n: scored[n] for n in held}, {n: truth[n] for n in held})
        print(f"learned: {json.dumps(out['learned_held_out'])}", file=sys.stderr, flush=True)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
