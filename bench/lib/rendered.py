"""Rendered albums of unseen people, analysed by the real engine, searched with the product's ranking.

An album per family (bench/lib/albums.py `generate_crowd`, half 1: people the calibration never saw)
is rendered and its photos and selfies analysed once (cached under bench/out/search-crowds/); every
selfie is then searched with photomatch.search.ranking exactly as the API does. bench/search_accuracy.py
reports it; bench/selfie_pose.py slices it by head pose.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.lib.albums import generate_crowd, tile_found
from bench.lib.datasets import OUT as BENCH_OUT
from bench.lib.face_sets import FaceSet, analyze_images, engine_fingerprint, faces_of
from bench.lib.metrics import average_precision, why_missed
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

OUT = BENCH_OUT / "search-crowds"
PRESETS = {"crowd": {"targets": 250, "photos": 400}, "small": {"targets": 40, "photos": 30}}


def album_scan(photos: FaceSet, limit: int, radius: float) -> Knn:
    """The repository's scan over an album's cached faces (halfvec-rounded, like Postgres holds them)."""
    quality = face_quality(photos.probability, photos.size, photos.sharpness)
    names = [photos.names[i] for i in photos.image]
    return scan_of(photos.embedding, photos.second_embedding, names, quality, limit, radius)


def scan_of(
    embedding: np.ndarray,
    second_embedding: np.ndarray | None,
    photo: list[Any],
    quality: np.ndarray,
    limit: int,
    radius: float,
) -> Knn:
    """The repository's scan over faces held in memory (row i: face id i of `photo[i]`), their vectors
    halfvec-rounded like Postgres holds them."""
    emb = embedding.astype(np.float16).astype(np.float32)
    emb2 = None if second_embedding is None else second_embedding.astype(np.float16).astype(np.float32)

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
            near.astype(np.int64), [photo[i] for i in near], d[near], quality[near], None if d2 is None else d2[near]
        )
        return Neighbours(c, d[order], order.astype(np.int64), len(emb), None if d2 is None else d2[order])

    return knn


def album_embeddings(photos: FaceSet) -> Embeddings:
    """Face vectors by row index (the album scan's face ids), halfvec-rounded."""
    return embeddings_of(photos.embedding, photos.second_embedding)


def embeddings_of(embedding: np.ndarray, second_embedding: np.ndarray | None) -> Embeddings:
    """Face vectors held in memory by row index (scan_of's face ids), halfvec-rounded."""
    emb = embedding.astype(np.float16).astype(np.float32)
    emb2 = None if second_embedding is None else second_embedding.astype(np.float16).astype(np.float32)

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


def parser(description: str) -> argparse.ArgumentParser:
    """The arguments of a benchmark over the rendered albums: which families, preset and seed."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--families", nargs="+", default=["dev-faces", "dev-lfw", "dev-fiw"])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="crowd")
    ap.add_argument("--seed", type=int, default=0)
    return ap


def log(msg: str) -> None:
    """Progress, to stderr (stdout carries the benchmark's JSON)."""
    print(msg, file=sys.stderr, flush=True)


def family_albums(args: argparse.Namespace) -> Iterator[tuple[str, Album]]:
    """Each family's rendered album for (args.families, args.preset, args.seed), rendered and analysed
    on first use; a family without its data is skipped with a message."""
    from bench.lib.datasets import dev_data

    for family in args.families:
        faces_dir = dev_data().families()[family]
        if not (faces_dir / "MANIFEST.md").is_file():
            log(f"{family}: no MANIFEST.md under {faces_dir}; skipped")
            continue
        yield family, load(family, faces_dir, args.preset, args.seed, log)


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
    # Why each of the person's photos that neither tier showed was missed: "not_detected" (no
    # detection on their pasted face), "not_a_candidate" (no face of the photo within the scan's
    # radius), "below_tiers" (a candidate scored under both tiers); and the confidences of the last.
    missed: Counter[str] = field(default_factory=Counter)
    missed_confidence: list[float] = field(default_factory=list)


def query_face(album: Album, selfie: str, settings: Settings) -> Face:
    """The face search would take from this selfie (its path in the album's truth), as the API does;
    QueryRejected if it would refuse it."""
    i = album.selfies.names.index(Path(selfie).name)
    return pick_query_face(
        faces_of(album.selfies, i), min_size=settings.search_min_face_px, min_sharpness=settings.search_min_sharpness
    )


def person_found(album: Album, identity: str) -> Callable[[Hashable], bool]:
    """Whether a photo has a detection on the person's pasted face (bench.lib.albums.tile_found)."""

    def found(photo: Hashable) -> bool:
        boxes = album.photos.box[album.photos.of(album.photos.names.index(str(photo)))]
        return any(tile_found(f["box"], boxes) for f in album.truth["photos"][str(photo)] if f["identity"] == identity)

    return found


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
        scored = {str(h.photo): h.confidence for h in hits}
        why, confidence = why_missed(sorted(relevant - {str(p) for p in shown}), scored, person_found(album, identity))
        out.missed += why
        out.missed_confidence += confidence
    return out
