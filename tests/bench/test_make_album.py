"""The benchmark album generator: deterministic output and a consistent truth.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from bench.lib.datasets import dev_data

FACES = dev_data().faces_dir
if not FACES.is_dir():
    pytest.skip(f"dev-faces folder not found at {FACES} (set PHOTOMATCH_DEV_FACES_DIR)", allow_module_level=True)
pytest.importorskip("dlib", reason="make_album locates faces with dlib (dev dependency dlib-bin)")

from bench.lib.albums import generate_album, list_sources  # noqa: E402 - after the skips above

SIZE = (800, 600)
# 4 photos x at least 7 faces leaves a slot for every selfie identity in dev-faces (26).
KWARGS = {"photos": 4, "size": SIZE, "faces_per_photo": (7, 8)}


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def album(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("album_a")
    summary = generate_album(FACES, out, seed=1, **KWARGS)
    return out, summary


def test_same_seed_is_byte_identical(album: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = album
    generate_album(FACES, tmp_path, seed=1, **KWARGS)
    a, b = _files(out), _files(tmp_path)
    assert sorted(a) == sorted(b)
    assert [k for k in a if a[k] != b[k]] == []


def test_other_seed_differs(album: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = album
    generate_album(FACES, tmp_path, seed=2, **KWARGS)
    assert (out / "truth.json").read_bytes() != (tmp_path / "truth.json").read_bytes()
    assert (out / "album" / "0000.jpg").read_bytes() != (tmp_path / "album" / "0000.jpg").read_bytes()


def test_truth_is_consistent(album: tuple[Path, dict]) -> None:
    out, summary = album
    truth = json.loads((out / "truth.json").read_text())
    assert truth["seed"] == 1 and truth["size"] == list(SIZE)
    assert sorted(truth["photos"]) == [f"{i:04d}.jpg" for i in range(4)]
    assert sorted(p.name for p in (out / "album").iterdir()) == sorted(truth["photos"])
    assert summary["faces"] == sum(len(f) for f in truth["photos"].values())

    known = {s.rel for srcs in list_sources(FACES).values() for s in srcs}
    selfie_sources = set(truth["selfie_sources"].values())
    appears: dict[str, list[str]] = {}
    w, h = SIZE
    for name, faces in truth["photos"].items():
        with Image.open(out / "album" / name) as im:
            assert im.size == SIZE and im.format == "JPEG"
        assert 7 <= len(faces) <= 8
        idents = [f["identity"] for f in faces]
        assert len(set(idents)) == len(idents), "a person appears twice in one photo"
        for f in faces:
            x1, y1, x2, y2 = f["box"]
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h, f
            assert f["source"] in known and not f["source"].startswith("groups/")
            assert f["source"].split("/")[0] == f["identity"]
            assert f["source"] not in selfie_sources, "a selfie image was reused in the album"
            appears.setdefault(f["identity"], []).append(name)
        boxes = [f["box"] for f in faces]
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], "tiles overlap"

    assert {k: v for k, v in truth["identities"].items() if v} == appears
    assert truth["selfies"], "no selfies written"
    for ident, rel in truth["selfies"].items():
        assert (out / rel).is_file()
        with Image.open(out / rel) as im:
            assert im.format == "JPEG" and min(im.size) >= 300
        assert appears.get(ident), f"selfie identity {ident} appears in no album photo"
