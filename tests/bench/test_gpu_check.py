"""bench/gpu_check.py, the script a lent GPU runs, works end to end on CPU and prints its keys."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("detector", ["mtcnn", "yunet-1x-2x-onet-landmarks"])
def test_the_gpu_check_runs_on_cpu_and_reports_every_key(dev_faces: Path, tmp_path: Path, detector: str) -> None:
    album = tmp_path / "album"
    album.mkdir()
    groups = sorted((dev_faces / "groups").glob("*.jp*g"))[:2]
    for i, path in enumerate(groups):
        shutil.copyfile(path, album / f"{i}.jpg")
    out = tmp_path / "gpu_check.json"
    argv = ["--album", str(album), "--photos", "3", "--batches", "2", "--device", "cpu", "--out", str(out)]
    env = os.environ | {"PHOTOMATCH_DETECTOR": detector}
    command = [sys.executable, "bench/gpu_check.py", *argv]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["album"]["photos"] == 3 and report["decode_on_device"] is False
    (run,) = report["runs"]
    assert run["batch"] == 2 and run["photos"] == 3 and run["faces"] > 0
    assert run["photos_per_s"] > 0 and set(run["stage_s"]) == {"read", "decode", "detect_align_embed"}
    assert run["bounding_stage"] in run["stage_s"] and run["gpu_util_mean_pct"] is None  # no NVML on CPU
    assert report["best"]["batch"] == 2
    assert report["detector"] == detector
    if detector == "mtcnn":  # MTCNN's two ways of cutting crops, compared on the best batch
        assert report["batched_crops"] is False and report["other_crops"]["batched_crops"] is True  # CPU default
        assert abs(report["other_crops"]["faces"] - run["faces"]) <= max(1, run["faces"] // 20)
