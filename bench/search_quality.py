"""How blurred or small a selfie may be before search goes wrong: degrade selfies on purpose, search.

Each selfie is blurred (Gaussian, sigma proportional to its face size, so "1.0" means the same
softness at any resolution) or shrunk until its face has a given size, then analysed and searched
like any other. The face's sharpness and size at the level where precision or mAP break down give
Settings.search_min_sharpness and search_min_face_px. Engine results are cached per album.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from bench.search_data import Album, FaceSet, analyze_arrays, engine_fingerprint
from bench.search_eval import QueryRun, album_knn, faces_of, mean_ap, pr_at

# Blur sigma in units of face size / 100 px, and target face sizes in px.
BLUR_LEVELS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0)
SIZE_LEVELS = (20, 28, 36, 48, 64, 96)


def _selfie(album: Album, identity: str) -> tuple[Image.Image, float]:
    """The selfie image and its (largest) face size as the engine saw it."""
    path = album.path / album.truth["selfies"][identity]
    i = album.selfies.names.index(path.name)
    rows = album.selfies.of(i)
    size = float(album.selfies.size[rows].max()) if len(rows) else 0.0
    return Image.open(path).convert("RGB"), size


def degrade(image: Image.Image, face_size: float, kind: str, level: float) -> np.ndarray:
    """The selfie blurred (kind "blur") or scaled so its face is `level` px (kind "size")."""
    if kind == "blur":
        if level == 0:
            return np.asarray(image)
        return np.asarray(image.filter(ImageFilter.GaussianBlur(level * face_size / 100)))
    scale = level / face_size
    w, h = max(1, round(image.width * scale)), max(1, round(image.height * scale))
    return np.asarray(image.resize((w, h), Image.Resampling.LANCZOS))


def degraded_faces(album: Album, kind: str, level: float, engine_factory: Callable[[], Any], model: str) -> FaceSet:
    """Faces of the album's degraded selfies (cached beside the album)."""
    cache = album.path / f"quality-{kind}{level}-{engine_fingerprint(model)}.npz"
    if cache.is_file():
        return FaceSet.load(cache)
    ids = [i for i in album.identities if _selfie(album, i)[1] > 0]
    sources = [_selfie(album, i) for i in ids]
    faces = analyze_arrays(engine_factory(), ids, lambda k: degrade(sources[k][0], sources[k][1], kind, level))
    faces.save(cache)
    return faces


def selfie_quality_report(
    albums: list[Album], params: Any, settings: Any, engine_factory: Callable[[], Any], log: Callable[[str], None]
) -> dict[str, Any]:
    """Per degradation level: the selfie faces' sharpness/size, and mAP / precision / recall of search."""
    from photomatch.search.ranking import pick_query_face, rank_photos

    out: dict[str, Any] = {}
    for kind, levels in (("blur", BLUR_LEVELS), ("size", SIZE_LEVELS)):
        rows = []
        for level in levels:
            runs: list[QueryRun] = []
            sharp, sizes, missing = [], [], 0
            for album in albums:
                faces = degraded_faces(album, kind, level, engine_factory, settings.embedder)
                knn = album_knn(album.photos)
                for i, identity in enumerate(faces.names):
                    found = faces_of(faces, i)
                    if not found:
                        missing += 1
                        continue
                    # No quality bounds here: this measures what the bounds should be.
                    face = pick_query_face(found, min_size=0, min_sharpness=0)
                    sharp.append(face.sharpness)
                    sizes.append(face.detection.size)
                    ranked = rank_photos(face.embedding, knn, params)  # type: ignore[arg-type]
                    hits = ranked.matches + ranked.possible
                    relevant = set(album.truth["identities"][identity])
                    runs.append(QueryRun(identity, [(str(h.photo), h.distance) for h in hits], relevant))
            p_match, r_match = pr_at(runs, params.match_threshold)
            _, r_both = pr_at(runs, params.possible_threshold)
            row = {
                "level": level,
                "no_face": missing,
                "sharpness_median": round(float(np.median(sharp)), 1) if sharp else None,
                "sharpness_p10": round(float(np.percentile(sharp, 10)), 1) if sharp else None,
                "size_median": round(float(np.median(sizes)), 1) if sizes else None,
                "mAP": round(mean_ap(runs), 4),
                "matches_precision": round(p_match, 4),
                "matches_recall": round(r_match, 4),
                "both_recall": round(r_both, 4),
            }
            log(f"selfie {kind} {level}: {row}")
            rows.append(row)
        out[kind] = rows
    return out
