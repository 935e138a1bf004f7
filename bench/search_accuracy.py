"""Search accuracy per album family, through the real engine and the product's ranking. JSON out.

For each family (dev-faces; dev-lfw and dev-fiw as crowds of 250 people in 400 photos), an album is
rendered from people of the half of the identities that calibration never saw (bench/make_album.py
`generate_crowd`, half 1), the face engine runs on its photos and selfies once (cached under
bench/out/search-crowds/), and every selfie is searched with photomatch.search.ranking exactly as
the API does: the same query face choice and refusals, the same scan, cohort, models and tiers.

Printed per family: the tiers' precision and recall, recall at precision 0.99 and 0.95 of the
confidence ranking, mAP, a precision/recall curve, the calibration of `confidence` (expected
calibration error and a reliability table), and the share of selfies refused.

    uv run python bench/search_accuracy.py [--families dev-lfw ...] [--preset crowd|small] [--seed 0]

About 6 minutes per crowded family on 2 CPU cores the first time (rendering and the engine); then
seconds. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.make_album import generate_crowd
from bench.metrics import average_precision
from bench.search_data import FaceSet, analyze_images, engine_fingerprint, faces_of
from photomatch.config import Settings, get_settings
from photomatch.faces.types import Face
from photomatch.search.calibration import site_calibrations
from photomatch.search.ranking import (
    Candidates,
    Embeddings,
    Knn,
    Neighbours,
    Query,
    QueryRejected,
    Tiers,
    face_quality,
    pick_query_face,
    rank_photos,
)

OUT = Path(__file__).resolve().parent / "out" / "search-crowds"
PRESETS = {"crowd": {"targets": 250, "photos": 400}, "small": {"targets": 40, "photos": 30}}
TARGETS = {"matches_P": 0.98, "both_R": 0.95, "possible_P": 0.5}


def family_dirs(settings: Settings) -> dict[str, Path]:
    """The labelled face folders, from the settings."""
    return {"dev-faces": settings.dev_faces_dir, "dev-lfw": settings.dev_lfw_dir, "dev-fiw": settings.dev_fiw_dir}


def album_scan(photos: FaceSet, limit: int, radius: float) -> Knn:
    """The repository's scan over an album's cached faces (halfvec-rounded, like Postgres holds them)."""
    emb = photos.embedding.astype(np.float16).astype(np.float32)
    emb2 = None if photos.second_embedding is None else photos.second_embedding.astype(np.float16).astype(np.float32)
    quality = face_quality(photos.probability, photos.size, photos.sharpness)
    names = [photos.names[i] for i in photos.image]

    def knn(query: np.ndarray, second: np.ndarray | None = None, among: np.ndarray | None = None) -> Neighbours:
        q = query.astype(np.float16).astype(np.float32)
        d = np.linalg.norm(emb - q[None, :], axis=1).astype(np.float64)
        if among is None:
            order = np.argsort(d, kind="stable")[:limit]
        else:  # only these faces, as the product re-measures a scan's faces from an expanded query
            rows = np.asarray(among, dtype=np.int64)
            order = rows[np.argsort(d[rows], kind="stable")]
        near = order[d[order] <= radius]
        d2 = None
        if second is not None and emb2 is not None:  # the second model's distance of the same rows only
            q2 = second.astype(np.float16).astype(np.float32)
            d2 = np.full(len(emb), np.nan)
            d2[order] = np.linalg.norm(emb2[order] - q2[None, :], axis=1)
        c = Candidates(
            near.astype(np.int64), [names[i] for i in near], d[near], quality[near], None if d2 is None else d2[near]
        )
        return Neighbours(c, d[order], order.astype(np.int64), len(emb), None if d2 is None else d2[order])

    return knn


def album_embeddings(photos: FaceSet) -> Embeddings:
    """Face vectors by row index (the album scan's face ids), halfvec-rounded."""
    emb = photos.embedding.astype(np.float16).astype(np.float32)
    emb2 = None if photos.second_embedding is None else photos.second_embedding.astype(np.float16).astype(np.float32)

    def embeddings(face_ids: np.ndarray, second: bool = False) -> np.ndarray:
        table = emb2 if second and emb2 is not None else emb
        return table[np.asarray(face_ids, dtype=np.int64)]

    return embeddings


@dataclass
class Album:
    """A rendered album with the engine's faces of its photos and selfies."""

    truth: dict[str, Any]
    photos: FaceSet
    selfies: FaceSet
    engine_seconds: float


def load(family: str, faces_dir: Path, preset: str, seed: int, log: Any) -> Album:
    """The album for (family, preset, seed): rendered and analysed on first use, then read from the cache."""
    path = OUT / f"{family}-{preset}-seed{seed}"
    if not (path / "truth.json").is_file():
        log(f"rendering {family} {preset} album ...")
        kind = PRESETS[preset]
        # dev-faces has too few people for a crowd: all of its unseen half, in a party-sized album.
        small = family == "dev-faces"
        generate_crowd(
            faces_dir,
            path,
            targets=kind["targets"],
            photos=40 if small else kind["photos"],
            seed=seed,
            half=1,
        )
    truth = json.loads((path / "truth.json").read_text())
    from photomatch.faces.engine import FaceEngine

    key = engine_fingerprint(get_settings().embedder)
    photo_cache, selfie_cache, meta = (
        path / f"faces-{key}.npz",
        path / f"selfies-{key}.npz",
        path / f"engine-{key}.json",
    )
    if not (photo_cache.is_file() and selfie_cache.is_file() and meta.is_file()):
        engine = FaceEngine()
        log(f"analysing {family}: {len(truth['photos'])} photos, {len(truth['selfies'])} selfies ...")
        t0 = time.perf_counter()
        analyze_images(engine, [path / "album" / n for n in sorted(truth["photos"])]).save(photo_cache)
        seconds = time.perf_counter() - t0
        analyze_images(engine, [path / rel for _, rel in sorted(truth["selfies"].items())]).save(selfie_cache)
        meta.write_text(json.dumps({"engine_seconds": round(seconds, 1), "device": str(engine.device)}))
    return Album(
        truth, FaceSet.load(photo_cache), FaceSet.load(selfie_cache), json.loads(meta.read_text())["engine_seconds"]
    )


@dataclass
class Searches:
    """Every selfie's search of one album: per shown or candidate photo, its tier, confidence and truth."""

    confidence: list[float] = field(default_factory=list)
    tier: list[str] = field(default_factory=list)  # "match", "possible" or "" (a candidate not shown)
    relevant: list[bool] = field(default_factory=list)
    aps: list[float] = field(default_factory=list)
    total_relevant: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    selfies: int = 0
    within_radius: int = 0


def query_face(album: Album, selfie: str, settings: Settings) -> Face:
    """The face search would take from this selfie (its path in the album's truth), as the API does;
    QueryRejected if it would refuse it."""
    i = album.selfies.names.index(Path(selfie).name)
    return pick_query_face(
        faces_of(album.selfies, i), min_size=settings.search_min_face_px, min_sharpness=settings.search_min_sharpness
    )


def search_album(album: Album, settings: Settings) -> Searches:
    """Search every selfie whose person is in the album, as the API would."""
    out = Searches()
    cals = site_calibrations(settings)
    knn = album_scan(album.photos, settings.search_max_candidates, cals.search.candidate_radius)
    embeddings = album_embeddings(album.photos)
    fuse = album.photos.second_embedding is not None and bool(settings.second_embedder)
    tiers = Tiers().resolved(cals.for_models(settings.embedder, settings.second_embedder if fuse else None))
    everything = Tiers(match=tiers.match, possible=1e-12)  # every candidate, to draw the curves
    for identity, rel in sorted(album.truth["selfies"].items()):
        relevant = set(album.truth["identities"].get(identity, []))
        if not relevant:
            continue
        out.selfies += 1
        try:
            face = query_face(album, rel, settings)
        except QueryRejected as e:
            out.refused[e.reason] = out.refused.get(e.reason, 0) + 1
            continue
        ranked = rank_photos(Query.of(face, fuse=fuse), knn, embeddings, everything, cals)
        shown = {h.photo for h in ranked.matches} | {h.photo for h in ranked.possible if h.confidence >= tiers.possible}
        hits = ranked.matches + ranked.possible
        out.total_relevant += len(relevant)
        out.within_radius += len(relevant & {str(h.photo) for h in hits})
        order = sorted(hits, key=lambda h: (h.photo not in shown, h.own_evidence < tiers.match, -h.confidence))
        out.aps.append(average_precision([str(h.photo) in relevant for h in order], len(relevant)))
        for h in hits:
            out.confidence.append(h.confidence)
            out.relevant.append(str(h.photo) in relevant)
            out.tier.append("match" if h.own_evidence >= tiers.match else "possible" if h.photo in shown else "")
    return out


def _recall_at(conf: np.ndarray, rel: np.ndarray, total: int, precision: float) -> float:
    order = np.argsort(-conf, kind="stable")
    tp = np.cumsum(rel[order])
    ok = np.flatnonzero(tp / np.arange(1, len(order) + 1) >= precision)
    return float(tp[ok[-1]] / total) if len(ok) else 0.0


def reliability(conf: np.ndarray, rel: np.ndarray, bins: int = 10) -> tuple[float, list[dict[str, float]]]:
    """Expected calibration error and the table behind it: per confidence bin, count, mean, accuracy."""
    idx = np.clip((conf * bins).astype(int), 0, bins - 1)
    rows, ece = [], 0.0
    for k in range(bins):
        m = idx == k
        if m.any():
            ece += m.mean() * abs(conf[m].mean() - rel[m].mean())
            rows.append(
                {
                    "bin": f"{k / bins:.1f}-{(k + 1) / bins:.1f}",
                    "n": int(m.sum()),
                    "confidence": round(float(conf[m].mean()), 3),
                    "accuracy": round(float(rel[m].mean()), 3),
                }
            )
    return round(float(ece), 4), rows


def report(s: Searches, album: Album) -> dict[str, Any]:
    """The measures of one family's searches."""
    conf, rel, tier = np.array(s.confidence), np.array(s.relevant, dtype=bool), np.array(s.tier)
    total = max(1, s.total_relevant)
    m, p = tier == "match", tier == "possible"
    shown = m | p
    ece, table = reliability(conf[shown], rel[shown])
    curve = []
    for t in (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.95, 0.99):
        sel = conf >= t
        curve.append(
            {
                "confidence_at_least": t,
                "precision": round(float(rel[sel].mean()) if sel.any() else 1.0, 4),
                "recall": round(float((sel & rel).sum() / total), 4),
            }
        )
    return {
        "photos": len(album.truth["photos"]),
        "faces": int(len(album.photos.image)),
        "selfies": s.selfies,
        "selfies_refused": round(sum(s.refused.values()) / max(1, s.selfies), 4),
        "refused_by_reason": s.refused,
        "matches_P": round(float(rel[m].mean()) if m.any() else 1.0, 4),
        "matches_R": round(float((m & rel).sum() / total), 4),
        "possible_P": round(float(rel[p].mean()) if p.any() else 1.0, 4),
        "both_R": round(float((shown & rel).sum() / total), 4),
        "R@P0.99": round(_recall_at(conf, rel, total, 0.99), 4),
        "R@P0.95": round(_recall_at(conf, rel, total, 0.95), 4),
        "mAP": round(float(np.mean(s.aps)) if s.aps else 0.0, 4),
        "true_photos_within_radius": round(s.within_radius / total, 4),
        "calibration_error": ece,
        "reliability": table,
        "pr_curve": curve,
        "engine_seconds": album.engine_seconds,
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", nargs="+", default=["dev-faces", "dev-lfw", "dev-fiw"])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="crowd")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    settings = get_settings()

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    out: dict[str, Any] = {"preset": args.preset, "seed": args.seed, "targets": TARGETS, "families": {}}
    for family in args.families:
        faces_dir = family_dirs(settings)[family]
        if not (faces_dir / "MANIFEST.md").is_file():
            log(f"{family}: no MANIFEST.md under {faces_dir}; skipped")
            continue
        album = load(family, faces_dir, args.preset, args.seed, log)
        out["families"][family] = report(search_album(album, settings), album)
        log(f"{family}: " + json.dumps({k: v for k, v in out["families"][family].items() if not isinstance(v, list)}))
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
