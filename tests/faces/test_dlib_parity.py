"""The torch port of dlib's face ResNet reads dlib's own .dat and gives dlib's descriptors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bench.lib.datasets import dev_data
from photomatch.faces.dlib_dat import default_model_path, read_resnet_params
from photomatch.faces.dlib_resnet import DlibResNet, load_dlib_resnet

try:
    MODEL_PATH = default_model_path()
except FileNotFoundError as exc:
    pytest.skip(str(exc), allow_module_level=True)

# 232 identity images; dlib's HOG detector misses a few, finds two faces in others. The floor is just
# below the measured count so that a loop that silently skips images fails.
MIN_CHIPS = 225
MAX_ABS_DIFF = 1e-5


def test_parser_reads_whole_file() -> None:
    net = read_resnet_params(MODEL_PATH)  # raises unless the last byte was consumed
    kinds = [layer.kind for layer in net.layers]
    assert len(kinds) == 108
    assert kinds.count("con") == kinds.count("affine") == 29
    assert net.wrapper_count == 22  # tag1 per unit, plus tag2 and skip1 per downsampling unit
    assert net.input_size == (150, 150)
    assert net.input_mean == pytest.approx((122.782, 117.001, 104.298), abs=1e-4)
    fc = net.layers[-1]
    assert fc.kind == "fc" and fc.params["weight"].shape == (256, 128) and "bias" not in fc.params


@pytest.mark.parametrize("cut", ["truncated", "trailing"])
def test_damaged_file_raises_value_error(tmp_path: Path, cut: str) -> None:
    data = MODEL_PATH.read_bytes()
    bad = tmp_path / "damaged.dat"
    bad.write_bytes(data[: len(data) // 2] if cut == "truncated" else data + b"\x00")
    with pytest.raises(ValueError, match="damaged.dat") as info:
        load_dlib_resnet(bad)
    assert ("tensor data" if cut == "truncated" else "1 unread bytes") in str(info.value)


def _dlib_chips_and_descriptors() -> tuple[list[str], np.ndarray, np.ndarray]:
    """Aligned chips of every face dlib finds in the identity images, with dlib's descriptors."""
    dlib = pytest.importorskip("dlib")
    faces_dir = dev_data().faces_dir
    if not faces_dir.is_dir():
        pytest.skip(f"dev-faces not found at {faces_dir}; set PHOTOMATCH_DEV_FACES_DIR to run the parity test")
    images = sorted(
        p for p in faces_dir.glob("*/*") if p.parent.name != "groups" and p.suffix.lower() in (".jpg", ".jpeg", ".png")
    )
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(MODEL_PATH.with_name("shape_predictor_5_face_landmarks.dat")))
    recognizer = dlib.face_recognition_model_v1(str(MODEL_PATH))
    names, chips, descriptors = [], [], []
    for path in images:
        img = dlib.load_rgb_image(str(path))
        for i, det in enumerate(detector(img, 1)):
            chip = dlib.get_face_chip(img, predictor(img, det), size=150, padding=0.25)
            names.append(f"{path.parent.name}/{path.name}#{i}")
            chips.append(chip)
            descriptors.append(np.asarray(recognizer.compute_face_descriptor(chip)))
    return names, np.stack(chips), np.stack(descriptors)


def test_descriptors_match_dlib() -> None:
    names, chips, expected = _dlib_chips_and_descriptors()
    assert len(names) >= MIN_CHIPS, f"only {len(names)} faces compared"
    model: DlibResNet = load_dlib_resnet(MODEL_PATH)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        x = torch.from_numpy(chips).permute(0, 3, 1, 2)  # uint8 NHWC -> NCHW; forward casts
        with torch.inference_mode():
            got = torch.cat([model(batch) for batch in x.split(64)]).double().numpy()
    finally:
        torch.set_num_threads(threads)
    diff = np.abs(got - expected).max(axis=1)
    bad = [f"{n}: {d:.2e}" for n, d in zip(names, diff, strict=True) if d > MAX_ABS_DIFF]
    assert not bad, f"{len(bad)} of {len(names)} faces differ from dlib by more than {MAX_ABS_DIFF}: {bad[:10]}"
    cos = (got * expected).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(expected, axis=1)
    assert (1 - cos).max() < 1e-9
