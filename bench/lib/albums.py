"""Synthetic event albums with ground truth, rendered from a folder of labelled identity photos.

Real faces from ``<faces>/<identity>/<n>.jpg|png`` are cropped to head-and-shoulders, scaled,
feathered and pasted onto procedural backgrounds; one image per identity is held back as that
identity's selfie. Same arguments give byte-identical output.

Command line: bench/make_album.py.
"""

from __future__ import annotations

import colorsys
import hashlib
import json
import math
import re
import shutil
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from bench.lib.datasets import OUT as BENCH_OUT

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
# Folders in the faces dir that hold unlabelled photos and must never be pasted.
EXCLUDED_DIRS = {"groups"}
# Face widths are specified for a 4000x3000 photo and scaled with the album size.
REF_SIZE = (4000, 3000)
# dlib's HOG detector is slow on big images and needs no more than this to find a portrait face.
LOCATE_MAX_SIDE = 640


@dataclass(frozen=True)
class Source:
    """One labelled identity image."""

    identity: str
    rel: str  # "<identity>/<n>.jpg", as written to truth.json
    path: Path


def manifest_face_counts(faces_dir: Path) -> dict[str, int]:
    """Per-file face counts from the last column of MANIFEST.md's file table, if there is one."""
    manifest = faces_dir / "MANIFEST.md"
    if not manifest.is_file():
        return {}
    counts: dict[str, int] = {}
    for line in manifest.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^\|\s*([^|\s]+/[^|\s]+)\s*\|.*\|\s*(\d+)\s*\|\s*$", line)
        if m:
            counts[m.group(1)] = int(m.group(2))
    return counts


def list_sources(faces_dir: Path) -> dict[str, list[Source]]:
    """Usable images per identity, sorted; skips groups/ and images the manifest says hold != 1 face."""
    # A photo with 0 or several detected faces would make the identity label wrong or unmatchable.
    counts = manifest_face_counts(faces_dir)
    out: dict[str, list[Source]] = {}
    for d in sorted(p for p in faces_dir.iterdir() if p.is_dir() and p.name not in EXCLUDED_DIRS):
        srcs = [
            Source(d.name, f"{d.name}/{f.name}", f)
            for f in sorted(d.iterdir())
            if f.suffix.lower() in IMAGE_SUFFIXES and counts.get(f"{d.name}/{f.name}", 1) == 1
        ]
        if srcs:
            out[d.name] = srcs
    return out


def load_rgba(path: Path) -> Image.Image:
    """The image as RGBA, whatever its mode (grey PNGs, palettes, alpha)."""
    with Image.open(path) as im:
        im.load()
        return im.convert("RGBA")


@lru_cache(maxsize=1)
def _detector() -> Any:  # dlib ships no type stubs
    import dlib  # a dev dependency: imported late so listing sources works without it

    # Building the detector costs ~0.5 s, more than running it on a portrait.
    return dlib.get_frontal_face_detector()


@lru_cache(maxsize=1024)
def locate_face(path: Path) -> tuple[int, int, int, int] | None:
    """Box of the largest face dlib's HOG detector finds in the image, or None."""
    im = load_rgba(path).convert("RGB")
    s = min(1.0, LOCATE_MAX_SIDE / max(im.size))
    small = im.resize((round(im.width * s), round(im.height * s)), Image.Resampling.BILINEAR) if s < 1 else im
    det = _detector()
    arr = np.asarray(small)
    rects = det(arr, 0) or det(arr, 1)  # upsampling finds the small faces in web thumbnails
    if not rects:
        return None
    r = max(rects, key=lambda r: r.width() * r.height())
    x1, y1 = max(0, r.left()) / s, max(0, r.top()) / s
    x2, y2 = min(small.width, r.right()) / s, min(small.height, r.bottom()) / s
    return round(x1), round(y1), round(x2), round(y2)


def head_crop(path: Path) -> tuple[Image.Image, float, bool]:
    """RGBA head-and-shoulders crop, the face width in it, and whether the face was located."""
    im = load_rgba(path)
    face = locate_face(path)
    if face is None:
        # Most sources are tight portraits: use all of it and guess the face fills half of it.
        return im, 0.5 * min(im.size), False
    x1, y1, x2, y2 = face
    fw = x2 - x1
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    box = (
        max(0, round(cx - 1.0 * fw)),
        max(0, round(cy - 1.3 * fw)),
        min(im.width, round(cx + 1.0 * fw)),
        min(im.height, round(cy + 1.1 * fw)),
    )
    return im.crop(box), float(fw), True


def _colour(rng: np.random.Generator, hue: float | None = None) -> np.ndarray:
    """A muted RGB colour, optionally near a given hue, as floats 0..255."""
    h = rng.uniform(0, 1) if hue is None else (hue + rng.uniform(-0.08, 0.08)) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, rng.uniform(0.08, 0.6), rng.uniform(0.2, 0.92))
    return np.array([r, g, b]) * 255


def make_background(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A procedural background: gradient, colour blobs or flat field, with soft shapes and lighting."""
    w, h = size
    # Nothing here needs full resolution: the base is drawn at 1/16 scale, shapes at 1/4, and
    # bicubic upscaling supplies the smoothness of an out-of-focus background.
    sw, sh = max(16, w // 16), max(12, h // 16)
    qw, qh = max(64, w // 4), max(48, h // 4)
    hue = rng.uniform(0, 1)
    kind = int(rng.integers(3))
    if kind == 0:
        c1, c2 = _colour(rng, hue), _colour(rng, hue + rng.uniform(0.1, 0.5))
        a = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:sh, 0:sw]
        t = xx / sw * math.cos(a) + yy / sh * math.sin(a)
        t = (t - t.min()) / max(1e-6, np.ptp(t))
        base = c1 * (1 - t[..., None]) + c2 * t[..., None]
    elif kind == 1:
        gx, gy = int(rng.integers(3, 8)), int(rng.integers(3, 6))
        grid = np.stack([_colour(rng, hue) for _ in range(gx * gy)]).reshape(gy, gx, 3)
        coarse = Image.fromarray(grid.clip(0, 255).astype(np.uint8))
        base = np.asarray(coarse.resize((sw, sh), Image.Resampling.BICUBIC), dtype=np.float64)
    else:
        base = np.broadcast_to(_colour(rng, hue), (sh, sw, 3))
    # Uneven lighting so no background is a flat field.
    light = rng.normal(0, 1, (3, 4))
    light_img = Image.fromarray(((light - light.min()) / max(1e-6, np.ptp(light)) * 255).astype(np.uint8))
    light = np.asarray(light_img.resize((sw, sh), Image.Resampling.BICUBIC), dtype=np.float64) / 255
    base = base * (0.75 + 0.4 * light[..., None])
    img = Image.fromarray(base.clip(0, 255).astype(np.uint8)).resize((qw, qh), Image.Resampling.BICUBIC)
    # Translucent shapes (walls, tables, people out of focus) and bokeh give edges and clutter that
    # a detector has to reject, unlike a plain gradient.
    overlay = Image.new("RGBA", (qw, qh), (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    for _ in range(int(rng.integers(3, 25))):
        x0, y0 = rng.uniform(-0.2, 1.0) * qw, rng.uniform(-0.2, 1.0) * qh
        x1, y1 = x0 + rng.uniform(0.05, 0.6) * qw, y0 + rng.uniform(0.05, 0.6) * qh
        fill = (*(int(v) for v in _colour(rng, hue + rng.uniform(-0.3, 0.3))), int(rng.integers(60, 230)))
        pick = rng.uniform()
        if pick < 0.4:
            draw.ellipse((x0, y0, x1, y1), fill=fill)
        elif pick < 0.8:
            draw.rectangle((x0, y0, x1, y1), fill=fill)
        else:
            draw.line((x0, y0, x1, y1), fill=fill, width=max(1, int(rng.uniform(0.002, 0.02) * qw)))
    if rng.uniform() < 0.4:
        for _ in range(int(rng.integers(5, 30))):
            cx, cy, r = rng.uniform(0, qw), rng.uniform(0, qh), rng.uniform(0.005, 0.03) * qw
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(255, 240, 210, int(rng.integers(40, 140))))
    overlay = overlay.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 6.0)))
    img = Image.alpha_composite(img.convert("RGBA"), overlay).convert("RGB")
    return img.resize((w, h), Image.Resampling.BICUBIC)


def feather_mask(size: tuple[int, int]) -> Image.Image:
    """A rounded rectangle mask whose edge fades out, so pasted tiles show no hard border."""
    w, h = size
    f = max(2, round(0.07 * min(w, h)))
    mask = Image.new("L", (w, h), 0)
    ImageDraw.Draw(mask).rounded_rectangle((f, f, w - 1 - f, h - 1 - f), radius=2 * f, fill=255)
    return mask.filter(ImageFilter.GaussianBlur(f / 2))


def schedule(rng: np.random.Generator, counts: list[int], selfie_ids: list[str], all_ids: list[str]) -> list[list[str]]:
    """Identities per photo: every selfie identity up to twice (as slots allow), then random fill."""
    slots = [p for p, n in enumerate(counts) for _ in range(n)]
    order = [slots[i] for i in rng.permutation(len(slots))]  # spreads required faces over photos
    rounds = min(2, len(slots) // max(1, len(selfie_ids)))
    need = [selfie_ids[i] for _ in range(max(1, rounds)) for i in rng.permutation(len(selfie_ids))]
    need = need[: len(slots)]
    photos: list[list[str]] = [[] for _ in counts]
    for ident in need:
        for k, p in enumerate(order):
            if ident not in photos[p]:
                photos[p].append(ident)
                del order[k]
                break
    for p in order:
        free = [i for i in all_ids if i not in photos[p]]
        photos[p].append(free[int(rng.integers(len(free)))])
    return photos


def _overlaps(box: tuple[int, int, int, int], boxes: list[tuple[int, int, int, int]], gap: int) -> bool:
    x1, y1, x2, y2 = box
    return any(x1 < b[2] + gap and b[0] < x2 + gap and y1 < b[3] + gap and b[1] < y2 + gap for b in boxes)


def render_photo(
    rng: np.random.Generator,
    size: tuple[int, int],
    sources: list[Source],
    face_width: tuple[float, float],
) -> tuple[Image.Image, list[dict]]:
    """One album photo with the given sources pasted at non-overlapping positions, and its truth."""
    w, h = size
    canvas = make_background(rng, size)
    k = min(w / REF_SIZE[0], h / REF_SIZE[1])
    lo, hi = face_width[0] * k, face_width[1] * k
    plans = []
    for src in sources:
        crop, fw, located = head_crop(src.path)
        target = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        angle = rng.uniform(-10, 10)
        scale = target / fw
        # Keep every tile small enough that the whole set can still be packed.
        scale = min(scale, 0.45 * w / crop.width, 0.6 * h / crop.height)
        plans.append((src, crop, fw, located, scale, angle, rng.uniform(0.85, 1.15), rng.uniform(0.85, 1.15)))
    # Placing the largest tiles first packs much better than random order.
    plans.sort(key=lambda p: -(p[1].width * p[1].height * p[4] ** 2))
    boxes: list[tuple[int, int, int, int]] = []
    truth = []
    gap = max(2, w // 200)
    for src, crop, fw, located, scale, angle, bright, contrast in plans:
        for _ in range(12):
            tw, th = max(8, round(crop.width * scale)), max(8, round(crop.height * scale))
            c, s = abs(math.cos(math.radians(angle))), abs(math.sin(math.radians(angle)))
            bw, bh = math.ceil(tw * c + th * s) + 2, math.ceil(tw * s + th * c) + 2
            pos = None
            if bw < w and bh < h:
                for _ in range(100):
                    x, y = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
                    if not _overlaps((x, y, x + bw, y + bh), boxes, gap):
                        pos = (x, y)
                        break
            if pos is not None:
                break
            scale *= 0.8  # no room left at this size: shrink and retry
        else:
            raise RuntimeError(f"cannot place {len(plans)} faces in a {w}x{h} photo; lower --faces-per-photo")
        tile = crop.resize((tw, th), Image.Resampling.LANCZOS)
        rgb = np.asarray(tile.convert("RGB"), dtype=np.float32)
        mean = rgb.mean()
        rgb = ((rgb - mean) * contrast + mean * bright).clip(0, 255).astype(np.uint8)
        alpha = np.asarray(tile.getchannel("A"), dtype=np.float32) / 255
        mask = Image.fromarray((np.asarray(feather_mask((tw, th)), dtype=np.float32) * alpha).astype(np.uint8))
        tile_rgb = Image.fromarray(rgb).rotate(angle, Image.Resampling.BICUBIC, expand=True)
        mask = mask.rotate(angle, Image.Resampling.BICUBIC, expand=True)
        bbox = mask.getbbox() or (0, 0, mask.width, mask.height)
        tile_rgb, mask = tile_rgb.crop(bbox), mask.crop(bbox)
        x, y = pos
        canvas.paste(tile_rgb, (x, y), mask)
        box = (x, y, x + mask.width, y + mask.height)
        boxes.append(box)
        truth.append(
            {
                "identity": src.identity,
                "source": src.rel,
                "box": list(box),
                # Approximate (dlib HOG box width); None where no face was located in the source.
                "face_width": round(fw * scale) if located else None,
            }
        )
    # Sensor-like grain over the whole frame hides the difference between pasted and drawn areas.
    arr = np.asarray(canvas, dtype=np.int16)
    grain = (rng.standard_normal((h, w), dtype=np.float32) * 3).astype(np.int16)
    canvas = Image.fromarray((arr + grain[..., None]).clip(0, 255).astype(np.uint8))
    return canvas, truth


def selfie_image(path: Path, min_side: int = 300) -> Image.Image:
    """The held-back image as RGB, upscaled so its short side is at least min_side."""
    im = load_rgba(path)
    flat = Image.new("RGB", im.size, (128, 128, 128))
    flat.paste(im, (0, 0), im.getchannel("A"))
    if min(flat.size) < min_side:
        s = min_side / min(flat.size)
        flat = flat.resize((round(flat.width * s), round(flat.height * s)), Image.Resampling.LANCZOS)
    return flat


def write_truth(out_dir: Path, truth: dict) -> None:
    """truth.json, with each box kept on one line so a big album's truth stays readable."""
    text = json.dumps(truth, indent=1)
    text = re.sub(r"\[[\d,\s]*\]", lambda m: json.dumps(json.loads(m.group())), text)
    (out_dir / "truth.json").write_text(text + "\n", encoding="utf-8")


def render_album(
    out_dir: Path,
    rng: np.random.Generator,
    photo_sources: list[list[Source]],
    selfies: dict[str, Source],
    size: tuple[int, int],
    face_width: tuple[float, float],
    quality: int,
) -> tuple[dict[str, list[dict]], dict[str, list[str]]]:
    """Render and save each photo (empty ones skipped) and each selfie; (truth per photo, photos per identity)."""
    truth_photos: dict[str, list[dict]] = {}
    appears: dict[str, list[str]] = {}
    for i, srcs in enumerate(photo_sources):
        if not srcs:
            continue
        img, faces = render_photo(rng, size, srcs, face_width)
        name = f"{i:04d}.jpg"
        img.save(out_dir / "album" / name, "JPEG", quality=quality)
        truth_photos[name] = faces
        for f in faces:
            appears.setdefault(f["identity"], []).append(name)
    for ident, src in selfies.items():
        selfie_image(src.path).save(out_dir / "selfies" / f"{ident}.jpg", "JPEG", quality=95)
    return truth_photos, appears


def generate_album(
    faces_dir: Path | str,
    out_dir: Path | str,
    photos: int = 20,
    seed: int = 0,
    size: tuple[int, int] = REF_SIZE,
    quality: int = 90,
    faces_per_photo: tuple[int, int] = (3, 8),
    face_width: tuple[float, float] = (60, 400),
) -> dict:
    """Write album/, selfies/ and truth.json under out_dir and return a summary dict."""
    t0 = time.perf_counter()
    faces_dir, out_dir = Path(faces_dir), Path(out_dir)
    rng = np.random.Generator(np.random.PCG64(seed))
    pool = list_sources(faces_dir)
    if not pool:
        raise ValueError(f"no identity images under {faces_dir}")
    # Identities with a single usable image cannot spare a selfie; they stay in as distractors.
    selfies: dict[str, Source] = {}
    album_pool: dict[str, list[Source]] = {}
    for ident, srcs in pool.items():
        if len(srcs) >= 2:
            i = int(rng.integers(len(srcs)))
            selfies[ident] = srcs[i]
            album_pool[ident] = srcs[:i] + srcs[i + 1 :]
        else:
            album_pool[ident] = srcs
    all_ids = sorted(album_pool)
    lo, hi = faces_per_photo
    counts = [min(int(rng.integers(lo, hi + 1)), len(all_ids)) for _ in range(photos)]
    plan = schedule(rng, counts, sorted(selfies), all_ids)

    # Only our own previous output is replaced, so a mistyped --out cannot wipe unrelated files.
    if (out_dir / "truth.json").exists():
        for sub in ("album", "selfies"):
            shutil.rmtree(out_dir / sub, ignore_errors=True)
    elif (out_dir / "album").exists() and any((out_dir / "album").iterdir()):
        raise FileExistsError(f"{out_dir / 'album'} is not empty and holds no truth.json")
    (out_dir / "album").mkdir(parents=True, exist_ok=True)
    (out_dir / "selfies").mkdir(parents=True, exist_ok=True)

    # Each identity walks a shuffled cycle of its images so repeat appearances vary.
    cycles = {i: [s[j] for j in rng.permutation(len(s))] for i, s in album_pool.items()}
    used = dict.fromkeys(all_ids, 0)
    photo_sources: list[list[Source]] = []
    for idents in plan:
        srcs = []
        for ident in idents:
            srcs.append(cycles[ident][used[ident] % len(cycles[ident])])
            used[ident] += 1
        photo_sources.append(srcs)
    truth_photos, appears = render_album(out_dir, rng, photo_sources, selfies, size, face_width, quality)
    appears = {i: appears.get(i, []) for i in all_ids}

    truth = {
        "seed": seed,
        "size": list(size),
        "quality": quality,
        "faces_per_photo": list(faces_per_photo),
        "photos": truth_photos,
        "selfies": {i: f"selfies/{i}.jpg" for i in selfies},
        "selfie_sources": {i: s.rel for i, s in selfies.items()},
        "distractors": [i for i in all_ids if i not in selfies],
        "identities": appears,
    }
    write_truth(out_dir, truth)
    return {
        "photos": photos,
        "faces": sum(len(f) for f in truth_photos.values()),
        "identities": sum(1 for v in appears.values() if v),
        "selfies": len(selfies),
        "seconds": round(time.perf_counter() - t0, 2),
    }


def half_of(identity: str) -> int:
    """0 or 1, fixed by the name (sha256): search calibration fits on half 0 and is judged on half 1."""
    return hashlib.sha256(identity.encode()).digest()[0] & 1


def family_of(identity: str) -> str:
    """Relatives share a family: dev-fiw folders are <family>_<member>; elsewhere everyone is their own."""
    return identity.split("_MID")[0] if "_MID" in identity else identity


def generate_crowd(
    faces_dir: Path | str,
    out_dir: Path | str,
    *,
    targets: int = 250,
    photos: int = 400,
    seed: int = 0,
    half: int | None = 1,
    size: tuple[int, int] = (2400, 1600),
    quality: int = 90,
    faces_per_photo: tuple[int, int] = (3, 12),
    face_width: tuple[float, float] = (103, 356),
    max_appearances: int = 4,
) -> dict:
    """A crowded album: `targets` people with 3+ images (one held back as the selfie, up to
    `max_appearances` in the album) among distractors who appear once; relatives share photos.

    `half` keeps only the identities of that half (None: all), so albums can be built from people
    the calibration never saw. The default face widths give 55-190 px faces in a 2400x1600 photo.
    """
    t0 = time.perf_counter()
    faces_dir, out_dir = Path(faces_dir), Path(out_dir)
    rng = np.random.Generator(np.random.PCG64(seed))
    pool = {k: v for k, v in list_sources(faces_dir).items() if half is None or half_of(k) == half}
    eligible = sorted(k for k, v in pool.items() if len(v) >= 3)
    chosen = [eligible[i] for i in rng.permutation(len(eligible))[:targets]]
    selfies: dict[str, Source] = {}
    appearances: list[Source] = []
    for ident in chosen:
        srcs = [pool[ident][i] for i in rng.permutation(len(pool[ident]))]
        selfies[ident] = srcs[0]
        appearances += srcs[1 : 1 + max_appearances]
    counts = [int(rng.integers(faces_per_photo[0], faces_per_photo[1] + 1)) for _ in range(photos)]
    others = sorted(set(pool) - set(chosen))
    for i in rng.permutation(len(others))[: max(0, sum(counts) - len(appearances))]:
        srcs = pool[others[i]]
        appearances.append(srcs[int(rng.integers(len(srcs)))])
    # Fill photos family by family, so relatives stand in the same photos; never one person twice.
    by_family: dict[str, list[Source]] = {}
    for src in appearances:
        by_family.setdefault(family_of(src.identity), []).append(src)
    queue = [src for fam in rng.permutation(sorted(by_family)) for src in by_family[str(fam)]]
    plan: list[list[Source]] = [[] for _ in range(photos)]
    p = 0
    for src in queue:
        for _ in range(photos):
            if len(plan[p]) < counts[p] and all(s.identity != src.identity for s in plan[p]):
                break
            p = (p + 1) % photos
        else:
            continue  # every photo is full or holds this person already: leave the face out
        plan[p].append(src)
        if len(plan[p]) >= counts[p]:
            p = (p + 1) % photos
    if (out_dir / "truth.json").exists():
        for sub in ("album", "selfies"):
            shutil.rmtree(out_dir / sub, ignore_errors=True)
    (out_dir / "album").mkdir(parents=True, exist_ok=True)
    (out_dir / "selfies").mkdir(parents=True, exist_ok=True)
    truth_photos, appears = render_album(out_dir, rng, plan, selfies, size, face_width, quality)
    truth = {
        "seed": seed,
        "size": list(size),
        "quality": quality,
        "faces_per_photo": list(faces_per_photo),
        "half": half,
        "photos": truth_photos,
        "selfies": {i: f"selfies/{i}.jpg" for i in selfies},
        "selfie_sources": {i: s.rel for i, s in selfies.items()},
        "distractors": sorted(set(appears) - set(selfies)),
        "identities": appears,
    }
    write_truth(out_dir, truth)
    return {
        "photos": len(truth_photos),
        "faces": sum(len(f) for f in truth_photos.values()),
        "identities": len(appears),
        "selfies": len(selfies),
        "seconds": round(time.perf_counter() - t0, 2),
    }


def ensure_album(faces_dir: Path, photos: int, seed: int, face_width: tuple[int, int] | None = None) -> Path:
    """The generated album for these arguments (4000x3000 photos), made once under bench/out and reused."""
    out = BENCH_OUT / (f"album-{photos}-seed{seed}" + (f"-faces{face_width[0]}-{face_width[1]}" if face_width else ""))
    if not (out / "truth.json").is_file():
        kwargs = {"face_width": face_width} if face_width else {}
        generate_album(faces_dir, out, photos=photos, seed=seed, **kwargs)
    return out


def ingest_album(n: int, size: tuple[int, int], faces_dir: Path) -> Path:
    """The photos folder of an ingest benchmark's album (3-12 faces a photo, JPEG q90), made once and reused."""
    folder = BENCH_OUT / "ingest" / f"album-{n}-{size[0]}x{size[1]}"
    if not (folder / "truth.json").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        generate_album(faces_dir, folder, photos=n, size=size, quality=90, faces_per_photo=(3, 12))
    return folder / "album"


def tile_found(tile: Any, boxes: Any) -> bool:
    """Whether a pasted face (its tile, x1 y1 x2 y2) has a detection (one of `boxes`) centred inside it."""
    x1, y1, x2, y2 = tile
    return any(x1 <= (b[0] + b[2]) / 2 <= x2 and y1 <= (b[1] + b[3]) / 2 <= y2 for b in boxes)


def found_truth(truth: dict[str, Any], names: list[str], results: list[Any]) -> float:
    """Share of pasted faces that have a detection centred inside their tile."""
    hit = total = 0
    for name, (boxes, _) in zip(names, results, strict=True):
        for face in truth["photos"][name]:
            total += 1
            hit += tile_found(face["box"], boxes)
    return hit / max(total, 1)
