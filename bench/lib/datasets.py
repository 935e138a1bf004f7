"""The dev data folders the benchmarks and tests read, from PHOTOMATCH_DEV_*_DIR (default ../shared/data).

They are not the product's settings: no site sets them. Each folder has a MANIFEST.md; code that
needs one skips, saying so, when it is absent.
"""

from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
# Where benchmarks keep what they render and cache (ignored by git).
OUT = Path(__file__).resolve().parents[1] / "out"


class DevData(BaseSettings):
    """Where the labelled face folders are: dev-faces, dev-lfw, dev-fiw and dev-wider."""

    model_config = SettingsConfigDict(env_prefix="PHOTOMATCH_DEV_", extra="ignore")

    faces_dir: Path = DATA / "dev-faces"
    lfw_dir: Path = DATA / "dev-lfw"
    fiw_dir: Path = DATA / "dev-fiw"
    wider_dir: Path = DATA / "dev-wider"

    def families(self) -> dict[str, Path]:
        """The labelled identity folders by family name (what search calibration and accuracy use)."""
        return {"dev-faces": self.faces_dir, "dev-lfw": self.lfw_dir, "dev-fiw": self.fiw_dir}


@lru_cache
def dev_data() -> DevData:
    """The dev folders, read once from the environment."""
    return DevData()


def lfw_pairs(lfw: Path, n: int) -> list[tuple[Path, Path, bool]]:
    """The first n/2 same-person and n/2 different-person pairs of pairs.tsv."""
    out: dict[bool, list[tuple[Path, Path, bool]]] = {True: [], False: []}
    with (lfw / "pairs.tsv").open() as f:
        for row in csv.DictReader(f, delimiter="\t"):
            same = row["same"] == "1"
            if len(out[same]) < n // 2:
                a = lfw / row["name_a"] / f"{row['image_a']}.jpg"
                b = lfw / row["name_b"] / f"{row['image_b']}.jpg"
                if a.is_file() and b.is_file():
                    out[same].append((a, b, same))
    return out[True] + out[False]


def crowd_photos(wider_dir: Path, n: int) -> list[Path]:
    """n of dev-wider's images, evenly spread over its sorted list (so over its events); [] without it."""
    images = sorted((wider_dir / "images").rglob("*.jpg"))
    if n <= 0 or not images:
        return []
    return [images[round(i * len(images) / min(n, len(images)))] for i in range(min(n, len(images)))]
