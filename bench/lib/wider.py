"""WIDER FACE's official detection protocol on dev-wider: AP per setting, and recall by face height.

The AP is computed as the official evaluation does (widerface_evaluate/evaluation.py, as kept with
the public RetinaFace ports): every image's detections sorted by score; scores min-max normalised over
the whole set; each detection matched to the face it overlaps most (IoU >= 0.5, boxes in the +1
pixel convention); a detection on a face outside the setting's keep list is neither a hit nor a
false positive, and a second detection of a face already found is a false positive; precision and
recall at 1,000 score thresholds summed over images; VOC AP (precision made monotone, area under
the recall steps).

At the product's operating cut the same matching gives recall (of the faces that count in the hard
setting), precision, and recall by the face's box height in original pixels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SETTINGS = ("easy", "medium", "hard")
HEIGHT_BINS = ((0, 16), (16, 24), (24, 32), (32, 64), (64, 128), (128, 1e9))
IOU = 0.5
THRESHOLDS = 1000


# WIDER's labels of each face, and what each value means (its readme): where the faces a detector
# misses lie, besides their size.
ATTRIBUTES = {
    "occlusion": ("none", "partial", "heavy"),
    "pose": ("typical", "atypical"),
    "blur": ("clear", "normal", "heavy"),
    "illumination": ("normal", "extreme"),
}


@dataclass(frozen=True)
class Truth:
    """One image's faces: boxes (x1, y1, x2, y2), per setting which of them count, and WIDER's
    labels of each (ATTRIBUTES; none when the ground truth has no labels)."""

    boxes: np.ndarray  # (n, 4)
    keep: dict[str, np.ndarray]  # setting -> boolean (n,)
    attributes: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (n,) int


def load_truth(folder: Path) -> dict[str, Truth]:
    """dev-wider's ground truth: image path (relative to images/) -> Truth."""
    full = json.loads((folder / "gt_full.json").read_text())
    out = {}
    for name, entry in full.items():
        boxes = np.asarray(entry["boxes"], dtype=np.float64).reshape(-1, 4)
        keep = {}
        for setting in SETTINGS:
            mask = np.zeros(len(boxes), dtype=bool)
            mask[np.asarray(entry["keep"][setting], dtype=np.int64)] = True
            keep[setting] = mask
        labels = {a: np.asarray(entry[a], dtype=np.int64) for a in ATTRIBUTES if len(entry.get(a, [])) == len(boxes)}
        out[name] = Truth(boxes, keep, labels)
    return out


def overlaps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of `a` with every box of `b`, in the official +1 pixel convention."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + 1
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + 1
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)
    area_b = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def match(boxes: np.ndarray, truth: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The official per-image matching of detections (sorted by score, best first).

    Returns, per detection, the number of counted faces found so far, and whether it is a proposal
    (False: it fell on a face that does not count, so it is neither a hit nor a false positive).
    """
    found_so_far = np.zeros(len(boxes), dtype=np.int64)
    proposal = np.ones(len(boxes), dtype=bool)
    state = np.zeros(len(truth), dtype=np.int64)  # 0 unmatched, 1 found, -1 hit a face that does not count
    if len(truth) == 0:
        return found_so_far, proposal
    iou = overlaps(boxes, truth)
    for h in range(len(boxes)):
        j = int(iou[h].argmax())
        if iou[h, j] >= IOU:
            if not counts[j]:
                state[j] = -1
                proposal[h] = False
            elif state[j] == 0:
                state[j] = 1
        found_so_far[h] = int((state == 1).sum())
    return found_so_far, proposal


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the precision envelope, over the steps of recall."""
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    for i in range(len(mpre) - 1, 0, -1):
        mpre[i - 1] = max(mpre[i - 1], mpre[i])
    i = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def average_precision(
    detections: dict[str, tuple[np.ndarray, np.ndarray]], truth: dict[str, Truth]
) -> dict[str, float]:
    """Official AP per setting for detections {image: (boxes (n, 4), scores (n,))} over every image of `truth`."""
    scores = [s for _, s in detections.values() if len(s)]
    lo = min(float(s.min()) for s in scores) if scores else 0.0
    hi = max(float(s.max()) for s in scores) if scores else 1.0
    span = (hi - lo) or 1.0
    thresholds = 1 - (np.arange(THRESHOLDS) + 1) / THRESHOLDS
    out = {}
    for setting in SETTINGS:
        curve = np.zeros((THRESHOLDS, 2))
        faces = 0
        for name, t in truth.items():
            counts = t.keep[setting]
            faces += int(counts.sum())
            boxes, score = detections.get(name, (np.zeros((0, 4)), np.zeros(0)))
            if len(boxes) == 0 or len(t.boxes) == 0:
                continue
            order = np.argsort(-score, kind="stable")
            boxes, norm = boxes[order], (score[order] - lo) / span
            found, proposal = match(boxes, t.boxes, counts)
            # Per threshold: the last detection at or above it, the proposals up to it, the faces found.
            last = np.searchsorted(-norm, -thresholds, side="right") - 1
            ok = last >= 0
            cum_prop = np.cumsum(proposal)
            curve[ok, 0] += cum_prop[last[ok]]
            curve[ok, 1] += found[last[ok]]
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = curve[:, 1] / curve[:, 0]
        recall = curve[:, 1] / max(1, faces)
        out[setting] = round(voc_ap(recall, np.nan_to_num(precision, nan=0.0)), 4)
    return out


def at_cut(
    detections: dict[str, tuple[np.ndarray, np.ndarray]], truth: dict[str, Truth], cut: float, setting: str = "hard"
) -> dict[str, object]:
    """Recall, precision and recall by face height of the detections scoring at least `cut`, and of
    the faces 32 px and taller, recall by each of WIDER's labels (ATTRIBUTES).

    The faces that count are the setting's keep list (hard: every face WIDER's evaluation scores).
    """
    hits = proposals = faces = 0
    by_height = np.zeros((len(HEIGHT_BINS), 2), dtype=np.int64)  # found, total
    by_label = {label: np.zeros((len(v), 2), dtype=np.int64) for label, v in ATTRIBUTES.items()}  # found, total
    for name, t in truth.items():
        counts = t.keep[setting]
        boxes, score = detections.get(name, (np.zeros((0, 4)), np.zeros(0)))
        keep = score >= cut
        boxes, score = boxes[keep], score[keep]
        order = np.argsort(-score, kind="stable")
        found_faces = np.zeros(len(t.boxes), dtype=bool)
        if len(boxes) and len(t.boxes):
            iou = overlaps(boxes[order], t.boxes)
            claimed = np.zeros(len(t.boxes), dtype=bool)
            for h in range(len(order)):
                j = int(iou[h].argmax())
                if iou[h, j] >= IOU and not counts[j]:
                    continue  # on a face that does not count: neither hit nor false positive
                proposals += 1
                if iou[h, j] >= IOU and not claimed[j]:
                    claimed[j] = True
                    hits += 1
            found_faces = claimed
        faces += int(counts.sum())
        heights = t.boxes[:, 3] - t.boxes[:, 1]
        for k, (a, b) in enumerate(HEIGHT_BINS):
            sel = counts & (heights >= a) & (heights < b)
            by_height[k] += (int((found_faces & sel).sum()), int(sel.sum()))
        for label, values in t.attributes.items():
            for v in range(len(by_label[label])):
                sel = counts & (heights >= 32) & (values == v)
                by_label[label][v] += (int((found_faces & sel).sum()), int(sel.sum()))
    big = sum(by_height[k] for k, (a, _) in enumerate(HEIGHT_BINS) if a >= 32)
    return {
        "cut": cut,
        "recall": round(hits / max(1, faces), 4),
        "precision": round(hits / max(1, proposals), 4),
        "recall_32px_and_taller": round(int(big[0]) / max(1, int(big[1])), 4),
        "recall_by_height": {
            f"{a}-{b}" if b < 1e9 else f">{a}": _recall(row) for (a, b), row in zip(HEIGHT_BINS, by_height, strict=True)
        },
        "recall_32px_and_taller_by_label": {
            label: {name: _recall(by_label[label][v]) for v, name in enumerate(names) if by_label[label][v][1]}
            for label, names in ATTRIBUTES.items()
            if by_label[label][:, 1].any()
        },
        "faces": faces,
        "detections": int(sum(int((s >= cut).sum()) for _, s in detections.values())),
    }


def _recall(row: np.ndarray) -> dict[str, float | int]:
    """{"recall", "faces"} of a (found, total) row."""
    found, total = int(row[0]), int(row[1])
    return {"recall": round(found / max(1, total), 4), "faces": total}


def union(
    first: dict[str, tuple[np.ndarray, np.ndarray]],
    second: dict[str, tuple[np.ndarray, np.ndarray]],
    first_cut: float,
    second_cut: float,
    iou: float = 0.3,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A second detector as a second opinion: each image's first detections at their cut, plus the
    second's at theirs that overlap none of them (IoU < `iou`). Scores are ranks only: every first
    detection outranks every second one, so `at_cut(..., 0.0)` measures the pair at both cuts."""
    out = {}
    for name in first.keys() | second.keys():
        empty = (np.zeros((0, 4)), np.zeros(0))
        b1, s1 = first.get(name, empty)
        b2, s2 = second.get(name, empty)
        b1, s1, b2, s2 = b1[s1 >= first_cut], s1[s1 >= first_cut], b2[s2 >= second_cut], s2[s2 >= second_cut]
        if len(b1) and len(b2):
            new = overlaps(b2, b1).max(axis=1) < iou
            b2, s2 = b2[new], s2[new]
        out[name] = (np.concatenate([b1, b2]), np.concatenate([2.0 + s1, np.clip(s2, 0.0, 1.0)]))
    return out
