"""ONet's second opinion on YuNet's faces: how it moves a score, what it says of faces and of none,
where it places their landmarks, and YuNet with it as a configuration runs it."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from photomatch.faces.alignment import TEMPLATES
from photomatch.faces.detection import DETECTOR_CONFIGS, Detector, detector_for
from photomatch.faces.verify import LOGIT_BOUND, WEIGHT, OnetVerifier, average_landmarks, combine, floor_for
from photomatch.faces.yunet import YuNet
from photomatch.imaging import load_image


def _sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def test_an_undecided_opinion_changes_nothing_and_a_sure_one_moves_the_score_a_bounded_step() -> None:
    s = np.array([0.3, 0.6, 0.9])
    assert np.allclose(combine(s, np.full(3, 0.5)), s)
    up, down = combine(s, np.ones(3)), combine(s, np.zeros(3))
    step = WEIGHT * LOGIT_BOUND
    assert np.allclose(up, [_sigmoid(math.log(p / (1 - p)) + step) for p in s])
    assert np.allclose(down, [_sigmoid(math.log(p / (1 - p)) - step) for p in s])
    assert (down < s).all() and (up > s).all()
    # The floor is the lowest score a sure yes lifts exactly to the cut; below it nothing can reach it.
    for cut in (0.5, 0.6, 0.02):
        assert combine(np.array([floor_for(cut)]), np.ones(1))[0] == pytest.approx(cut)
        assert floor_for(cut) < cut
    assert floor_for(0.0) == 0.0


@pytest.fixture(scope="module")
def verifier() -> OnetVerifier:
    torch.set_num_threads(2)
    return OnetVerifier(torch.device("cpu"))


def test_onet_says_yes_to_the_faces_of_group_photos_and_no_to_their_background(
    verifier: OnetVerifier, group_images: list[Path]
) -> None:
    yunet = YuNet(torch.device("cpu"))
    faces_p, elsewhere_p = [], []
    for path in group_images[:5]:
        rgb = load_image(path).rgb
        faces = yunet.detect([rgb])[0]
        boxes = np.array([f.box for f in faces])
        image = torch.from_numpy(rgb)
        faces_p.extend(verifier.probabilities(image, boxes))
        # The same boxes moved down by three of their heights: shirts, tables, floor.
        moved = boxes + np.outer(3 * (boxes[:, 3] - boxes[:, 1]), [0, 1, 0, 1])
        inside = moved[:, 3] <= rgb.shape[0]
        elsewhere_p.extend(verifier.probabilities(image, moved[inside]))
    assert len(faces_p) > 20 and len(elsewhere_p) > 5
    assert np.median(faces_p) > 0.9 and np.median(elsewhere_p) < 0.5
    grey = torch.full((200, 200, 3), 128, dtype=torch.uint8)
    assert verifier.probabilities(grey, np.array([[50.0, 50.0, 150.0, 150.0]]))[0] < 0.5
    assert verifier.probabilities(grey, np.zeros((0, 4))).shape == (0,)


def test_on_a_cpu_onet_runs_channels_last_and_says_what_the_plain_layout_says(
    verifier: OnetVerifier, group_images: list[Path]
) -> None:
    rgb = load_image(group_images[0]).rgb
    boxes = np.array([f.box for f in YuNet(torch.device("cpu")).detect([rgb])[0]])
    fast = verifier.probabilities(torch.from_numpy(rgb), boxes)
    assert verifier.layout == torch.channels_last and len(fast) > 3
    plain = OnetVerifier(torch.device("cpu"))
    plain.layout = torch.contiguous_format
    assert np.abs(plain.probabilities(torch.from_numpy(rgb), boxes) - fast).max() < 1e-6


def test_yunet_with_onet_gives_each_face_its_combined_score_and_cuts_after_it(
    verifier: OnetVerifier, group_images: list[Path]
) -> None:
    rgb = load_image(group_images[0]).rgb
    checked = YuNet(torch.device("cpu"), vote=False, min_score=0.5, verifier=verifier)
    wide = YuNet(torch.device("cpu"), vote=False, min_score=floor_for(0.5))  # everything ONet could lift
    faces, candidates = checked.detect([rgb])[0], wide.detect([rgb])[0]
    assert faces and all(f.probability >= 0.5 for f in faces)
    boxes = np.array([c.box for c in candidates])
    expected = combine(
        np.array([c.probability for c in candidates]), verifier.probabilities(torch.from_numpy(rgb), boxes)
    )
    kept = sorted(p for p in expected if p >= 0.5)
    assert sorted(f.probability for f in faces) == pytest.approx(kept, abs=1e-6)


def test_the_onet_configurations_run_yunet_with_the_verifier_and_find_what_mtcnn_found(
    group_images: list[Path],
) -> None:
    config = DETECTOR_CONFIGS["yunet-1x-2x-onet"]
    detector = detector_for(config, torch.device("cpu"))
    assert isinstance(detector, YuNet) and isinstance(detector.verifier, OnetVerifier)
    assert detector.min_score == config.cut == 0.5 and config.describe()["verify"] is True
    assert DETECTOR_CONFIGS["yunet"].verify is False
    # Loading the detector loads ONet too, as a worker does before its first photo (not inside it).
    assert detector.verifier._onet is None
    detector.load()
    assert detector.verifier._onet is not None
    mtcnn = Detector(torch.device("cpu"))
    found = by_mtcnn = 0
    for path in group_images:
        rgb = load_image(path).rgb
        found += len(detector.detect([rgb])[0])
        by_mtcnn += len(mtcnn.detect([rgb])[0])
    assert found >= by_mtcnn > 0


def test_onet_places_each_faces_landmarks_near_yunets_and_the_average_keeps_only_close_ones(
    verifier: OnetVerifier, group_images: list[Path]
) -> None:
    rgb = load_image(group_images[0]).rgb
    faces = YuNet(torch.device("cpu")).detect([rgb])[0]
    boxes = np.array([f.box for f in faces])
    probs, points = verifier.judge(torch.from_numpy(rgb), boxes)
    assert np.allclose(probs, verifier.probabilities(torch.from_numpy(rgb), boxes))
    first = np.array([np.ravel(f.landmarks) for f in faces])
    sizes = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    # Both detectors put the eyes, nose and mouth of these faces within a fifth of the face of each other.
    assert len(faces) > 3 and np.median(np.abs(points - first).max(axis=1) / sizes) < 0.2
    assert verifier.judge(torch.from_numpy(rgb), np.zeros((0, 4)))[1].shape == (0, 10)
    near = first + 0.1 * sizes[:, None]
    far = first + 0.5 * sizes[:, None]
    assert np.allclose(average_landmarks(first, near, sizes), first + 0.05 * sizes[:, None])
    assert np.array_equal(average_landmarks(first, far, sizes), first)


def test_the_landmarks_configuration_averages_yunets_points_with_onets_and_aligns_between_templates(
    verifier: OnetVerifier, group_images: list[Path]
) -> None:
    config = DETECTOR_CONFIGS["yunet-1x-2x-onet-landmarks"]
    assert config.landmarks == "yunet+onet" and config.describe()["landmarks"] == "yunet+onet"
    assert DETECTOR_CONFIGS["yunet-1x-2x-onet"].landmarks == "yunet" and DETECTOR_CONFIGS["mtcnn"].landmarks == "mtcnn"
    assert all(c.landmarks in TEMPLATES for c in DETECTOR_CONFIGS.values())
    for frame in ("dlib", "arcface"):
        halfway = (TEMPLATES["yunet"][frame] + TEMPLATES["mtcnn"][frame]) / 2
        assert np.allclose(TEMPLATES["yunet+onet"][frame], halfway)
    with pytest.raises(ValueError, match="verifier"):
        YuNet(torch.device("cpu"), onet_landmarks=True)
    rgb = load_image(group_images[0]).rgb
    plain = YuNet(torch.device("cpu"), vote=False, min_score=0.5, verifier=verifier).detect([rgb])[0]
    averaged = YuNet(torch.device("cpu"), vote=False, min_score=0.5, verifier=verifier, onet_landmarks=True)
    faces = averaged.detect([rgb])[0]
    # The same faces and scores; only the landmarks move, to the mean of YuNet's and ONet's.
    assert [f.box for f in faces] == [f.box for f in plain] and len(faces) > 3
    assert [f.probability for f in faces] == [f.probability for f in plain]
    boxes = np.array([f.box for f in plain])
    _, onet = verifier.judge(torch.from_numpy(rgb), boxes)
    first = np.array([np.ravel(f.landmarks) for f in plain])
    sizes = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    expected = average_landmarks(first, onet, sizes)
    assert np.allclose([np.ravel(f.landmarks) for f in faces], expected, atol=1e-6)
    assert not np.allclose(expected, first)
