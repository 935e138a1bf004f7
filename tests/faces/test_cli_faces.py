"""`photomatch faces` and `photomatch compare` as a script would call them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_faces_json_and_a_bad_file(group_images: list[Path], tmp_path: Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(group_images[0].read_bytes()[:2000])
    r = _run("faces", str(group_images[0]), str(bad), "--embeddings")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [f"photomatch: {bad}: " + r.stderr.split(": ", 2)[2].strip()]
    out = json.loads(r.stdout)["images"]
    assert [o["path"] for o in out] == [str(group_images[0]), str(bad)]
    assert out[1]["error"]["reason"] == "corrupt_image"
    faces = out[0]["faces"]
    assert len(faces) >= 3
    f = faces[0]
    assert len(f["box"]) == 4 and len(f["landmarks"]) == 5 and 0.9 <= f["probability"] <= 1
    assert set(f["quality"]) == {"probability", "size", "sharpness"}
    assert f["model"] == "dlib-resnet-v1" and len(f["embedding"]) == 128


def test_faces_without_embeddings_omits_vectors(group_images: list[Path]) -> None:
    r = _run("faces", str(group_images[1]))
    assert r.returncode == 0, r.stderr
    assert all("embedding" not in f for f in json.loads(r.stdout)["images"][0]["faces"])


def test_compare_same_and_different_person(dev_faces: Path) -> None:
    same = json.loads(_run("compare", str(dev_faces / "obama/1.jpg"), str(dev_faces / "obama/2.jpg")).stdout)
    diff = json.loads(_run("compare", str(dev_faces / "obama/1.jpg"), str(dev_faces / "biden/1.jpg")).stdout)
    assert same["same_person"] is True and diff["same_person"] is False
    assert same["distance"] < same["threshold"] < diff["distance"]
    assert same["model"] == "dlib-resnet-v1"


def test_compare_errors_are_one_line(tmp_path: Path, dev_faces: Path) -> None:
    blank = tmp_path / "blank.png"
    from PIL import Image

    Image.new("RGB", (200, 200), "white").save(blank)
    r = _run("compare", str(blank), str(dev_faces / "obama/1.jpg"))
    assert r.returncode == 2 and "no face found" in r.stderr and "Traceback" not in r.stderr
    r = _run("compare", str(tmp_path / "missing.jpg"), str(blank))
    assert r.returncode == 2 and "no such file" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_compare_says_when_a_face_is_too_small_to_identify(dev_faces: Path) -> None:
    """With a size bound above every face, `compare` says why it cannot compare, in one line (the
    JSON of such a face, `"embedding": null`, is checked in test_engine)."""
    huge = {"PHOTOMATCH_EMBED_MIN_FACE_PX": "100000"}
    r = _run("compare", str(dev_faces / "obama/1.jpg"), str(dev_faces / "obama/2.jpg"), env=huge)
    assert r.returncode == 2 and "too small to identify" in r.stderr and "Traceback" not in r.stderr
