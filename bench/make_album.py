"""Generate a synthetic event album with ground truth from a folder of labelled identity photos. JSON out.

Real faces are cropped to head-and-shoulders, scaled, feathered and pasted onto procedural
backgrounds (bench/lib/albums.py); one image per identity is held back as that identity's selfie.
Same arguments give byte-identical output.

    uv run python bench/make_album.py --faces DIR --out DIR --photos 20 --seed 0
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.lib.albums import generate_album
from bench.lib.datasets import dev_data


def _pair(text: str, sep: str, kind: type = int) -> tuple:
    a, b = text.lower().split(sep)
    return kind(a), kind(b)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=Path, default=dev_data().faces_dir)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--photos", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", default="4000x3000", help="WxH")
    ap.add_argument("--quality", type=int, default=90)
    ap.add_argument("--faces-per-photo", default="3-8", help="MIN-MAX")
    ap.add_argument("--face-width", default="60-400", help="MIN-MAX px, for a 4000x3000 photo")
    a = ap.parse_args(argv)
    summary = generate_album(
        a.faces,
        a.out,
        photos=a.photos,
        seed=a.seed,
        size=_pair(a.size, "x"),
        quality=a.quality,
        faces_per_photo=_pair(a.faces_per_photo, "-"),
        face_width=_pair(a.face_width, "-", float),
    )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
