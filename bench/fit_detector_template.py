"""Fit where another detector's five landmarks fall in each embedder's chip, from MTCNN's. JSON out.

Every embedder's chip geometry (photomatch.faces.alignment) is five target points for MTCNN's
landmarks. Another detector places its points a little differently (YuNet's eyes, nose and mouth
corners are not MTCNN's), so aligning its points onto MTCNN's targets would tilt, shift and scale
every chip. For each dev-faces identity image where both detectors find the same face (box IoU at
least 0.5), the similarity that aligns MTCNN's points onto a frame's template is applied to the
other detector's points; their mean, made left-right symmetric about the template's own axis, is
that detector's template in that frame: the chips it gives are the chips MTCNN gave, on average.

    uv run python bench/fit_detector_template.py [--detector yunet] [--faces DIR]

prints, per frame, the template and the per-point spread (chip pixels).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from bench.lib.datasets import dev_data
from bench.lib.wider import overlaps
from photomatch.faces.alignment import ARCFACE_CHIP_TEMPLATE, DLIB_CHIP_TEMPLATE, similarity_transforms
from photomatch.faces.detection import detector_for
from photomatch.imaging import load_image

FRAMES = {"dlib": DLIB_CHIP_TEMPLATE, "arcface": ARCFACE_CHIP_TEMPLATE}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--detector", default="yunet")
    ap.add_argument("--faces", type=Path, default=dev_data().faces_dir)
    args = ap.parse_args(argv)
    cpu = torch.device("cpu")
    mtcnn, other = detector_for("mtcnn", cpu), detector_for(args.detector, cpu)
    files = sorted(p for p in args.faces.glob("*/*") if p.parent.name != "groups" and p.suffix in (".jpg", ".png"))
    pairs = []
    for path in files:
        img = load_image(path).rgb
        a, b = mtcnn.detect([img])[0], other.detect([img])[0]
        if not a or not b:
            continue
        iou = overlaps(np.array([f.box for f in a]), np.array([f.box for f in b]))
        for i, j in zip(*np.nonzero(iou >= 0.5), strict=True):
            if iou[i].argmax() == j and iou[:, j].argmax() == i:
                pairs.append((a[i].landmarks, b[j].landmarks))
    src = torch.tensor([p[0] for p in pairs], dtype=torch.float64)
    pts = torch.tensor([p[1] for p in pairs], dtype=torch.float64)
    out: dict = {"detector": args.detector, "faces_used": len(pairs), "images": len(files), "frames": {}}
    for name, template in FRAMES.items():
        m = similarity_transforms(src, torch.as_tensor(template))
        mapped = (pts @ m[:, :, :2].transpose(1, 2) + m[:, None, :, 2]).numpy()
        mean = mapped.mean(0)
        mirror = mean[[1, 0, 2, 4, 3]].copy()
        axis = float(template[:, 0].mean())
        mirror[:, 0] = 2 * axis - mirror[:, 0]
        out["frames"][name] = {
            "template_symmetric": np.round((mean + mirror) / 2, 3).tolist(),
            "template": np.round(mean, 3).tolist(),
            "spread_px": np.round(mapped.std(0), 2).tolist(),
            "mtcnn_template": template.tolist(),
        }
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
