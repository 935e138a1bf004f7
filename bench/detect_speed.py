"""MTCNN with every crop in one roi_align call (photomatch.faces.mtcnn) against facenet-pytorch's
per-box loop, on the 12 MP photos of bench/ingest.py's album: time, faces found, and how far the
boxes and landmarks of the same faces moved. Then YuNet on the same photos through each runtime
(torch on the device; ONNX Runtime and OpenCV's dnn on the CPU): seconds per photo and how far their answers differ.

    uv run python bench/detect_speed.py [--photos 16] [--threads 2]

Prints one JSON object (CPU unless a GPU is present).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np
import torch

from bench.lib.albums import ingest_album as album
from bench.lib.datasets import dev_data
from photomatch.config import get_settings
from photomatch.faces.detection import Detector
from photomatch.faces.device import choose_device
from photomatch.faces.yunet import YuNet
from photomatch.imaging import load_image


def iou(a: Any, b: Any) -> float:
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def crowd(dev_faces: Any) -> list[np.ndarray]:
    """Two 4000x3000 crowds: 16 dev-faces group photos tiled 4x4 (~130 faces), and its mirror image."""
    from PIL import Image

    groups = [load_image(f.read_bytes()).rgb for f in sorted((dev_faces / "groups").glob("*.jp*g"))]
    tiles = [np.asarray(Image.fromarray(g).resize((1000, 750))) for g in (groups * 2)[:16]]
    montage = np.vstack([np.hstack(tiles[r * 4 : (r + 1) * 4]) for r in range(4)])
    return [montage, np.ascontiguousarray(montage[:, ::-1])]


def crowd_timing(device: torch.device) -> dict[str, Any]:
    """Seconds per crowd photo and faces, both ways: how detection grows with faces per photo."""
    images = crowd(dev_data().faces_dir)
    out: dict[str, Any] = {}
    for name, batched in (("facenet_loop", False), ("batched_roi_align", True)):
        det = Detector(device, batched_crops=batched)
        det.detect(images[:1])
        t0 = time.perf_counter()
        faces = [det.detect([im])[0] for im in images]
        out[name] = {"seconds_per_photo": round((time.perf_counter() - t0) / len(images), 2),
                     "faces_per_photo": round(sum(len(f) for f in faces) / len(images), 1)}  # fmt: skip
    return out


def yunet_runtimes(images: list[np.ndarray], device: torch.device) -> dict[str, Any]:
    """YuNet one photo at a time through torch (on `device`), ONNX Runtime and OpenCV's dnn (CPU): time,
    and how far each CPU runtime's answers are from torch's."""
    found, out = {}, {}
    cpu = torch.device("cpu")
    for runtime, where in (("torch", device), ("onnxruntime", cpu), ("opencv", cpu)):
        net = YuNet(where, runtime=runtime)  # type: ignore[arg-type]
        net.detect(images[:1])  # load and warm up
        t0 = time.perf_counter()
        found[runtime] = [net.detect([im])[0] for im in images]
        seconds = time.perf_counter() - t0
        out[runtime] = {"device": str(where), "seconds_per_photo": round(seconds / len(images), 3),
                        "faces": sum(len(f) for f in found[runtime])}  # fmt: skip
        print("yunet", runtime, out[runtime], file=sys.stderr, flush=True)
    for runtime in ("onnxruntime", "opencv"):
        per_photo = list(zip(found["torch"], found[runtime], strict=True))
        same = all(len(a) == len(b) for a, b in per_photo)
        pairs = [(f, g) for a, b in per_photo for f, g in zip(a, b, strict=True)] if same else []
        out[runtime]["same_face_counts_as_torch"] = same
        out[runtime]["max_box_difference_px"] = max(
            (float(np.abs(np.subtract(f.box, g.box)).max()) for f, g in pairs), default=None
        )
        out[runtime]["max_score_difference"] = max((abs(f.probability - g.probability) for f, g in pairs), default=None)
        out[runtime]["speedup_over_torch"] = round(
            out["torch"]["seconds_per_photo"] / out[runtime]["seconds_per_photo"], 2
        )
    return out


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8, help="photos per detector call, as a worker batches them")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = choose_device(get_settings().device)
    files = sorted(album(args.photos, (4000, 3000), dev_data().faces_dir).glob("*.jpg"))[: args.photos]
    images = [load_image(f.read_bytes()).rgb for f in files]
    out: dict[str, Any] = {"device": str(device), "threads": args.threads, "photos": len(images), "size": "4000x3000"}
    out["crowd"] = crowd_timing(device)
    found = {}
    for name, batched in (("facenet_loop", False), ("batched_roi_align", True)):
        det = Detector(device, batched_crops=batched)
        det.detect(images[:1])  # load and warm up
        t0 = time.perf_counter()
        faces = []
        for i in range(0, len(images), args.batch):
            faces += det.detect(images[i : i + args.batch])
        seconds = time.perf_counter() - t0
        found[name] = faces
        out[name] = {"seconds": round(seconds, 2), "photos_per_s": round(len(images) / seconds, 3),
                     "faces": sum(len(f) for f in faces)}  # fmt: skip
        print(name, out[name], file=sys.stderr, flush=True)
    matched, box_shift, landmark_shift = 0, [], []
    for theirs, ours in zip(found["facenet_loop"], found["batched_roi_align"], strict=True):
        for f in theirs:
            g = max(ours, key=lambda g: iou(f.box, g.box), default=None)
            if g is not None and iou(f.box, g.box) >= 0.5:
                matched += 1
                box_shift.append(1 - iou(f.box, g.box))
                landmark_shift.append(float(np.abs(np.subtract(f.landmarks, g.landmarks)).max()) / f.size)
    out["same_faces"] = {
        "matched_iou_0_5": matched,
        "of": out["facenet_loop"]["faces"],
        "median_1_minus_iou": round(float(np.median(box_shift)), 4) if box_shift else None,
        "median_landmark_shift_of_face_size": round(float(np.median(landmark_shift)), 4) if landmark_shift else None,
        "p95_landmark_shift_of_face_size": round(float(np.percentile(landmark_shift, 95)), 4)
        if landmark_shift
        else None,
    }
    out["speedup"] = round(out["facenet_loop"]["seconds"] / out["batched_roi_align"]["seconds"], 2)
    out["yunet_runtimes"] = yunet_runtimes(images, device)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
