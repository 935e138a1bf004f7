"""Embeddings of every labelled image of a face folder, as a selfie and as an album face, cached.

Search studies need many albums of many identities. Rendering and analysing thousands of album
photos per study is slow on a CPU, so this runs the engine once per labelled image, twice:

- as a selfie: the image as it is (upscaled to a 300 px short side, like bench/make_album.py);
- as an album face: shrunk so the face is 55-190 px wide (log-uniform, fixed per image by a seed),
  JPEG-compressed at quality 90 like the album photos, then analysed.

Synthetic albums are then sampled from these faces in milliseconds (bench/lib/study.py). The
final figures still come from rendered albums through the real pipeline (bench/search_accuracy.py).
Command line: bench/identity_cache.py; the cache goes to bench/out/identity-cache/.
"""

from __future__ import annotations

import io
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.lib.datasets import OUT as BENCH_OUT
from bench.lib.face_sets import engine_fingerprint

OUT = BENCH_OUT / "identity-cache"
SUFFIXES = {".jpg", ".jpeg", ".png"}
ALBUM_FACE_PX = (55.0, 190.0)
# dev-fiw has 11,050 images; its first 6,000 (whole families) keep the one-off run near 25 minutes.
DEFAULT_MAX_IMAGES = {"dev-fiw": 6000}
SELFIE_MIN_SIDE = 300


def labelled_images(faces_dir: Path) -> list[tuple[str, Path]]:
    """(identity, path) of every image in <faces_dir>/<identity>/, sorted; skips groups/."""
    out = []
    for d in sorted(p for p in faces_dir.iterdir() if p.is_dir() and p.name != "groups"):
        out += [(d.name, f) for f in sorted(d.iterdir()) if f.suffix.lower() in SUFFIXES]
    return out


def _rgb(path: Path) -> Image.Image:
    with Image.open(path) as im:
        im.load()
        return im.convert("RGB")


def _central(faces: list, w: int, h: int) -> object | None:
    """The embedded face nearest the image centre, weighted by size: the labelled person of a portrait."""
    faces = [f for f in faces if f.embedded]  # type: ignore[attr-defined]
    if not faces:
        return None

    def score(f: object) -> float:
        x1, y1, x2, y2 = f.detection.box  # type: ignore[attr-defined]
        cx, cy = (x1 + x2) / 2 - w / 2, (y1 + y2) / 2 - h / 2
        return f.detection.size / (1.0 + math.hypot(cx, cy) / max(w, h))  # type: ignore[attr-defined]

    return max(faces, key=score)


def _album_version(im: Image.Image, face_w: float, rng: np.random.Generator) -> np.ndarray:
    """The image shrunk so the face is album-sized, centred on a grey canvas, JPEG round-tripped."""
    lo, hi = ALBUM_FACE_PX
    target = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    s = min(1.0, target / max(face_w, 1.0))
    small = im.resize((max(8, round(im.width * s)), max(8, round(im.height * s))), Image.Resampling.LANCZOS)
    # One canvas size for every image, so the engine batches them (MTCNN batches same-sized images).
    canvas = Image.new("RGB", (SELFIE_MIN_SIDE, SELFIE_MIN_SIDE), (128, 128, 128))
    canvas.paste(small, ((canvas.width - small.width) // 2, (canvas.height - small.height) // 2))
    buf = io.BytesIO()
    canvas.save(buf, "JPEG", quality=90)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))


def _selfie_version(path: Path) -> Image.Image:
    """The image stretched to a 300 px square (LFW and FIW images are square): batchable."""
    return _rgb(path).resize((SELFIE_MIN_SIDE, SELFIE_MIN_SIDE), Image.Resampling.LANCZOS)


def cache_path(faces_dir: Path, model: str, max_images: int = 0) -> Path:
    """Where the cache of `faces_dir` embedded by `model` (with today's engine settings) lives."""
    return OUT / f"{faces_dir.name}-{engine_fingerprint(model)}{f'-first{max_images}' if max_images else ''}.npz"


def _also_embed(engine: Any, extra: list, image: np.ndarray, face: Any) -> list[np.ndarray]:
    """The same detected face embedded by each extra embedder, aligned in that embedder's frame."""
    return [e.embed(engine.chips(image, [face.detection], e))[0] for e in extra]


def build(
    faces_dir: Path,
    *,
    seed: int = 0,
    log: bool = True,
    batch: int = 16,
    max_images: int = 0,
    also: tuple[str, ...] = (),
) -> Path:
    """Embed every labelled image of `faces_dir` as selfie and album face; returns the cache path.

    `also` names extra embedders: each embeds the same detected faces, and gets a cache of its own
    (same rows and quality columns), so studies can fuse embedders face by face.
    """
    import torch

    from photomatch.faces.embedders import get_embedder_class
    from photomatch.faces.engine import FaceEngine

    engine = FaceEngine()
    path = cache_path(faces_dir, engine.model_name, max_images)
    extra_paths = [cache_path(faces_dir, m, max_images) for m in also]
    if path.is_file() and all(p.is_file() for p in extra_paths):
        return path
    extra = [get_embedder_class(m)(torch.device("cpu")) for m in also]
    items = labelled_images(faces_dir)
    if max_images:  # whole identities (sorted, so relatives stay together), up to about this many images
        last = items[min(max_images, len(items)) - 1][0]
        items = [it for it in items if it[0] <= last]
    dim = engine.embedder.dim
    n = len(items)
    sel = np.full((n, dim), np.nan, np.float32)
    alb = np.full((n, dim), np.nan, np.float32)
    xsel = [np.full((n, e.dim), np.nan, np.float32) for e in extra]
    xalb = [np.full((n, e.dim), np.nan, np.float32) for e in extra]
    qual = np.full((n, 6), np.nan, np.float64)  # selfie: prob, size, sharp; album: prob, size, sharp
    t0 = time.perf_counter()
    side = SELFIE_MIN_SIDE
    for start in range(0, n, batch):
        idx = list(range(start, min(n, start + batch)))
        ims = [_selfie_version(items[i][1]) for i in idx]
        found = [_central(f, side, side) for f in engine.analyze([np.asarray(im) for im in ims])]
        album_in: list[tuple[int, np.ndarray]] = []
        for i, im, face in zip(idx, ims, found, strict=True):
            if face is None:
                continue
            sel[i] = face.embedding
            for arr, v in zip(xsel, _also_embed(engine, extra, np.asarray(im), face), strict=True):
                arr[i] = v
            qual[i, :3] = face.detection.probability, face.detection.size, face.sharpness
            rng = np.random.Generator(np.random.PCG64([seed, i]))
            album_in.append((i, _album_version(im, face.detection.size, rng)))
        if album_in:
            for (i, a), faces in zip(album_in, engine.analyze([a for _, a in album_in]), strict=True):
                af = _central(faces, side, side)
                if af is not None:
                    alb[i] = af.embedding
                    for arr, v in zip(xalb, _also_embed(engine, extra, a, af), strict=True):
                        arr[i] = v
                    qual[i, 3:] = af.detection.probability, af.detection.size, af.sharpness
        if log and start % (batch * 40) == 0:
            print(f"{faces_dir.name}: {start}/{n} {time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    for out_path, s_, a_ in [(path, sel, alb), *zip(extra_paths, xsel, xalb, strict=True)]:
        np.savez_compressed(
            out_path,
            identity=np.array([ident for ident, _ in items]),
            paths=np.array([str(p.relative_to(faces_dir)) for _, p in items]),
            selfie=s_,
            album=a_,
            quality=qual,
        )
    return path
