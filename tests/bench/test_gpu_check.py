"""bench/gpu_check.py, the script a lent GPU runs, works end to end on CPU and prints its keys."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_gpu_check_runs_on_cpu_and_reports_every_key(dev_faces: Path, tmp_path: Path) -> None:
    album = tmp_path / "album"
    album.mkdir()
    groups = sorted((dev_faces / "groups").glob("*.jp*g"))[:2]
    for i, path in enumerate(groups):
        shutil.copyfile(path, album / f"{i}.jpg")
    out = tmp_path / "gpu_check.json"
    argv = ["--album", str(album), "--photos", "3", "--batches", "2", "--device", "cpu", "--out", str(out)]
    done = subprocess.run([sys.executable, "bench/gpu_check.py", *argv], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["album"]["photos"] == 3 and report["decode_on_device"] is False
    (run,) = report["runs"]
    assert run["batch"] == 2 and run["photos"] == 3 and run["faces"] > 0
    assert run["photos_per_s"] > 0 and set(run["stage_s"]) == {"read", "decode", "detect_align_embed"}
    assert run["bounding_stage"] in run["stage_s"] and run["gpu_util_mean_pct"] is None  # no NVML on CPU
    assert report["best"]["batch"] == 2
    assert report["batched_crops"] is False and report["other_crops"]["batched_crops"] is True  # CPU default
    assert abs(report["other_crops"]["faces"] - run["faces"]) <= max(1, run["faces"] // 20)
