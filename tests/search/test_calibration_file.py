"""The calibration is a file that belongs to an engine: the shipped one loads, a wrong one stops every door."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from photomatch.config import Settings
from photomatch.search.calibration import DEFAULT_FILE, CalibrationSet, NotCalibrated, require_calibrated

REPO = Path(__file__).resolve().parents[2]


def shipped() -> dict:
    return json.loads(DEFAULT_FILE.read_text())


def write(tmp_path: Path, data: dict | str) -> Path:
    path = tmp_path / "calibration.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_the_shipped_file_calibrates_the_default_engine_and_survives_a_round_trip(tmp_path: Path) -> None:
    cals = require_calibrated(Settings())
    assert cals.detector == Settings().detector
    assert cals.find("dlib-resnet-v1") and cals.find("dlib-resnet-v1", "sface-2021dec-int8bq")
    cals.write(tmp_path / "again.json")
    assert CalibrationSet.load(tmp_path / "again.json") == cals


@pytest.mark.parametrize("detector", typing.get_args(Settings.model_fields["detector"].annotation))
def test_every_selectable_detector_ships_its_own_calibration(detector: str) -> None:
    # PHOTOMATCH_DETECTOR may name any of them: each has a file fitted for it, not another's numbers.
    cals = require_calibrated(Settings(detector=detector))
    assert cals.detector == detector
    assert cals.source.endswith(f"calibrations/{detector}.json")
    assert cals.find("dlib-resnet-v1", "sface-2021dec-int8bq")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"detector": "yunet-2023mar"}, "fitted for the detector 'yunet-2023mar'"),
        (
            {"embedders": ["facenet-vggface2"]},
            f"this site runs '{Settings.model_fields['detector'].default}' with dlib-resnet-v1+sface-2021dec-int8bq",
        ),
    ],
)
def test_a_file_for_another_engine_is_refused_with_what_to_do(tmp_path: Path, change: dict, message: str) -> None:
    data = shipped()
    if "detector" in change:
        data["detector"] = change["detector"]
    else:  # every calibration fitted for another first model
        for c in data["calibrations"]:
            c["embedders"][0] = change["embedders"][0]
    settings = Settings(search_calibration_file=write(tmp_path, data))
    with pytest.raises(NotCalibrated, match="re-fit with `uv run python bench/calibrate.py`") as info:
        require_calibrated(settings)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid"),
        (json.dumps({"format": 99}), "format 99"),
        (None, "no search calibration file"),
    ],
)
def test_a_missing_or_malformed_file_is_refused(tmp_path: Path, content: str | None, message: str) -> None:
    path = write(tmp_path, content) if content is not None else tmp_path / "absent.json"
    with pytest.raises(NotCalibrated, match=message):
        require_calibrated(Settings(search_calibration_file=path))


def test_a_model_over_a_feature_search_does_not_compute_is_refused(tmp_path: Path) -> None:
    data = shipped()
    data["calibrations"][0]["own"]["features"][0] = "d_typo"
    with pytest.raises(NotCalibrated, match="unknown: \\['d_typo'\\]"):
        require_calibrated(Settings(search_calibration_file=write(tmp_path, data)))


def test_the_api_refuses_to_start_on_a_wrong_calibration(tmp_path: Path) -> None:
    from api.main import create_app

    data = shipped() | {"detector": "yunet-2023mar"}
    with pytest.raises(NotCalibrated, match="yunet-2023mar"):
        create_app(Settings(search_calibration_file=write(tmp_path, data), environment="test"))


@pytest.mark.slow
@pytest.mark.parametrize(
    "argv",
    [
        [sys.executable, "-m", "cli", "api", "--port", "1"],
        [sys.executable, "-m", "cli", "worker", "-Q", "cpu"],
        [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "-Q", "cpu", "--pool=solo"],
    ],
    ids=["photomatch api", "photomatch worker", "celery worker"],
)
def test_each_process_stops_at_startup_with_the_reason(tmp_path: Path, argv: list[str]) -> None:
    data = shipped() | {"detector": "yunet-2023mar"}
    env = os.environ | {
        "PHOTOMATCH_SEARCH_CALIBRATION_FILE": str(write(tmp_path, data)),
        # Nothing is reached: the check comes first. A raw Celery worker needs the broker's URL to start at all.
        "PHOTOMATCH_REDIS_URL": "redis://127.0.0.1:9/0",
        "PHOTOMATCH_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:9/none",
    }
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "fitted for the detector 'yunet-2023mar'" in done.stderr
    assert "Traceback" not in done.stderr
