"""The full pipeline (MTCNN, our alignment, the torch dlib ResNet) on every dev-faces identity pair."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.lib.metrics import balanced_accuracy, best_threshold, roc_auc
from photomatch.imaging import load_image


@pytest.fixture(scope="module")
def pair_distances(engine, identity_images: list[tuple[str, Path]]):  # type: ignore[no-untyped-def]
    """(same-person flags, distances) over all pairs of identity images where a face was found."""
    labels, vectors = [], []
    images = [(identity, load_image(path).rgb) for identity, path in identity_images]
    for start in range(0, len(images), 16):
        chunk = images[start : start + 16]
        for (identity, _), faces in zip(chunk, engine.analyze([img for _, img in chunk]), strict=True):
            if faces:  # the largest face is the labelled person
                labels.append(identity)
                vectors.append(faces[0].embedding)
    v = np.stack(vectors)
    i, j = np.triu_indices(len(v), k=1)
    same = np.array(labels)[i] == np.array(labels)[j]
    dist = np.linalg.norm(v[i] - v[j], axis=1)
    return len(identity_images), len(v), same, dist


def test_balanced_accuracy_at_default_threshold(engine, pair_distances, record_property) -> None:  # type: ignore[no-untyped-def]
    n_images, n_faces, same, dist = pair_distances
    # 7 identity images hold 0 or several faces per the MANIFEST; MTCNN must find the rest.
    assert n_faces >= n_images - 7
    threshold = engine.settings.verify_threshold
    acc = balanced_accuracy(same, dist, threshold)
    auc = roc_auc(same, dist)
    best_t, best_acc = best_threshold(same, dist)
    report = {
        "pairs_same": int(same.sum()),
        "pairs_different": int((~same).sum()),
        "threshold": threshold,
        "balanced_accuracy": round(acc, 4),
        "roc_auc": round(auc, 5),
        "best_threshold": round(best_t, 4),
        "best_balanced_accuracy": round(best_acc, 4),
    }
    for k, v in report.items():
        record_property(k, v)
    print("pipeline accuracy:", report)
    assert acc >= 0.98, report
    assert auc >= 0.99, report
