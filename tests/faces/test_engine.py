"""Detection, alignment and embedder plumbing, on real photos where geometry matters."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from photomatch.config import Settings
from photomatch.faces.alignment import (
    DLIB_CHIP_TEMPLATE,
    align_faces,
    invert_affine,
    sharpness,
    similarity_transforms,
    warp_chips,
)
from photomatch.faces.detection import Detector
from photomatch.faces.device import choose_device
from photomatch.faces.embedders import EMBEDDERS, FacenetEmbedder, ModelUnavailable, get_embedder_class
from photomatch.faces.engine import FaceEngine
from photomatch.imaging import load_image


def test_similarity_transform_recovers_a_known_one() -> None:
    rng = np.random.default_rng(0)
    src = torch.tensor(rng.uniform(0, 500, (3, 5, 2)))
    a, s, t = 0.3, 1.7, torch.tensor([12.0, -40.0])
    r = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=torch.float64)
    dst = s * src @ r.T + t
    m = similarity_transforms(src, dst)
    assert torch.allclose(m[:, :, :2], (s * r).expand(3, 2, 2), atol=1e-9)
    assert torch.allclose(m[:, :, 2], t.double().expand(3, 2), atol=1e-7)
    back = invert_affine(m)
    assert torch.allclose(back[:, :, :2] @ m[:, :, :2], torch.eye(2, dtype=torch.float64).expand(3, 2, 2), atol=1e-12)


def test_similarity_transform_never_reflects() -> None:
    src = torch.tensor([[[0.0, 0], [3, 0], [0, 1], [1, 2], [0.2, 0.7]]])
    mirrored = src.clone()
    mirrored[..., 0] *= -1
    m = similarity_transforms(src, mirrored[0])
    assert torch.linalg.det(m[0, :, :2]) > 0


def details_width(dlib, shape) -> float:  # type: ignore[no-untyped-def]
    """Width in source pixels of the window dlib cuts the 150 px chip from."""
    r = dlib.get_face_chip_details(shape, size=150, padding=0.25).rect
    return float(r.right() - r.left())


def test_warp_matches_dlib_chip_extraction(identity_images: list[tuple[str, Path]]) -> None:
    """Our sampler, given dlib's own chip transform, reproduces dlib.get_face_chip's pixels."""
    dlib = pytest.importorskip("dlib")
    from bench.lib.dlib_chips import dlib_chip_to_image
    from photomatch.faces.dlib_dat import default_model_path

    det = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(str(default_model_path().parent / "shape_predictor_5_face_landmarks.dat"))
    diffs, large = [], []
    for _, path in identity_images[::12]:
        img = dlib.load_rgb_image(str(path))
        rects = det(img, 1)
        if not rects:
            continue
        shape = sp(img, rects[0])
        chip = dlib.get_face_chip(img, shape, size=150, padding=0.25).astype(np.float64)
        m = torch.from_numpy(dlib_chip_to_image(dlib.get_face_chip_details(shape, size=150, padding=0.25)))
        ours = warp_chips(torch.from_numpy(img), m[None], 150)[0].permute(1, 2, 0).numpy()
        d = float(np.abs(ours - chip).mean())
        # The chip window is about twice the detector's box: below ~75 px boxes the chip is upsampled.
        (diffs if details_width(dlib, shape) <= 150 else large).append(d)
    assert len(diffs) + len(large) >= 10
    # Upsampled faces: both are bilinear, so nearly identical. Downsampled ones differ by the
    # prefilter (dlib's pyramid vs our antialiased resize), a few grey levels on average.
    # Windows running off a tight crop differ a little more along the zero-filled border.
    assert diffs and np.median(diffs) < 0.6 and max(diffs) < 2.0, diffs
    assert not large or max(large) < 5.0, large


def test_align_puts_landmarks_on_the_template() -> None:
    img = torch.zeros((400, 600, 3), dtype=torch.uint8)
    # Five bright dots at a rotated, scaled copy of the template, then align them back.
    a, s, t = -0.4, 1.6, np.array([200.0, 90.0])
    r = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    pts = s * DLIB_CHIP_TEMPLATE @ r.T + t
    for x, y in pts:
        img[round(y) - 2 : round(y) + 3, round(x) - 2 : round(x) + 3] = 255
    chips = align_faces(img, torch.tensor(pts)[None], DLIB_CHIP_TEMPLATE, 150)
    grey = chips[0].mean(0).numpy()
    for x, y in DLIB_CHIP_TEMPLATE:
        assert grey[round(y), round(x)] > 100, (x, y)
    assert chips.shape == (1, 3, 150, 150)


def test_sharpness_ranks_blur_lower() -> None:
    rng = np.random.default_rng(0)
    sharp = torch.tensor(rng.uniform(0, 255, (1, 3, 150, 150)), dtype=torch.float32)
    blurred = torch.nn.functional.avg_pool2d(sharp, 5, stride=1, padding=2)
    assert sharpness(sharp)[0] > 10 * sharpness(blurred)[0]


def test_detects_every_face_in_group_photos(group_images: list[Path]) -> None:
    det = Detector(torch.device("cpu"))
    total = 0
    for path in group_images:
        img = load_image(path).rgb
        faces = det.detect([img])[0]
        total += len(faces)
        h, w = img.shape[:2]
        for f in faces:
            x1, y1, x2, y2 = f.box
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h and f.probability >= 0.9
            ex, ey = f.landmarks[0]
            assert x1 - 5 <= ex <= x2 + 5 and y1 - 5 <= ey <= y2 + 5
    # keep_all=True: MTCNN's default keeps one face per photo, which would give 15.
    assert total >= 100, total


def test_downscaled_detection_maps_back_to_original_pixels(group_images: list[Path]) -> None:
    img = load_image(group_images[0]).rgb
    big = np.asarray(Image.fromarray(img).resize((img.shape[1] * 3, img.shape[0] * 3), Image.BICUBIC))
    det = Detector(torch.device("cpu"), max_side=max(img.shape[:2]))
    assert det.scale_for(*big.shape[:2]) == pytest.approx(1 / 3, rel=1e-3)
    small_faces = det.detect([img])[0]
    big_faces = det.detect([big])[0]
    assert len(big_faces) == len(small_faces) > 0
    for a in small_faces:
        # Sizes can tie, so pair faces by position rather than by list order.
        b = min(big_faces, key=lambda f: float(np.abs(np.array(f.box) / 3 - a.box).sum()))
        # The resampled photo is not pixel-identical, so MTCNN's regression wobbles by a few
        # percent of the face; a wrong mapping would be off by a factor of 3.
        assert np.allclose(np.array(b.box) / 3, a.box, atol=0.1 * a.size)
        assert np.allclose(np.array(b.landmarks) / 3, a.landmarks, atol=0.1 * a.size)


def test_same_sized_images_batch_like_singles(group_images: list[Path]) -> None:
    det = Detector(torch.device("cpu"))
    img = load_image(group_images[1]).rgb
    flipped = np.ascontiguousarray(img[:, ::-1])
    single = [det.detect([img])[0], det.detect([flipped])[0]]
    batch = det.detect([img, flipped])
    for s, b in zip(single, batch, strict=True):
        assert len(s) == len(b)
        for fs, fb in zip(s, b, strict=True):
            assert np.allclose(fs.box, fb.box, atol=0.5)


@pytest.mark.parametrize("shape", [(10, 10, 3), (19, 400, 3), (1, 10_000, 3), (12_000, 2, 3)])
def test_images_too_small_for_any_face_have_none_and_do_not_sink_a_batch(
    shape: tuple[int, int, int], group_images: list[Path]
) -> None:
    """MTCNN builds an empty image pyramid below its minimum face size and raised, failing the whole
    batch (issue 9: selfies got a 500, worker batches were retried until too_many_attempts)."""
    det = Detector(torch.device("cpu"))
    tiny = np.full(shape, 128, dtype=np.uint8)
    assert det.detect([tiny]) == [[]]
    photo = load_image(group_images[0]).rgb
    alone = det.detect([photo])[0]
    tiny_faces, faces = det.detect([tiny, photo])
    assert tiny_faces == [] and len(faces) == len(alone) > 0


def test_device_choice() -> None:
    assert choose_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert choose_device("auto") == torch.device("cpu")
        with pytest.raises(RuntimeError, match="CUDA"):
            choose_device("cuda")


def test_registry() -> None:
    assert set(EMBEDDERS) == {"dlib-resnet-v1", "facenet-vggface2", "sface-2021dec-int8bq"}
    with pytest.raises(ValueError, match="known: dlib-resnet-v1, facenet-vggface2, sface-2021dec-int8bq"):
        get_embedder_class("arcface")


def test_facenet_shapes_and_batching_with_random_weights() -> None:
    torch.manual_seed(0)
    emb = FacenetEmbedder(torch.device("cpu"), random_init=True, batch_size=3, flip=False)
    chips = torch.rand(7, 3, 160, 160) * 255
    v = emb.embed(chips)
    assert v.shape == (7, 512) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    whole = FacenetEmbedder(torch.device("cpu"), random_init=True, batch_size=64, flip=False)
    whole._net = emb._net  # same weights, one batch of 7 instead of 3+3+1
    assert np.allclose(whole.embed(chips), v, atol=1e-5)
    assert emb.embed(torch.zeros(0, 3, 160, 160)).shape == (0, 512)


def test_facenet_loads_a_weights_file(tmp_path: Path) -> None:
    torch.manual_seed(1)
    src = FacenetEmbedder(torch.device("cpu"), random_init=True, flip=False)
    src.load()
    assert src._net is not None
    path = tmp_path / "vggface2.pt"
    torch.save(src._net.state_dict(), path)
    loaded = FacenetEmbedder(torch.device("cpu"), weights=path, flip=False)
    chips = torch.rand(2, 3, 160, 160) * 255
    assert np.allclose(loaded.embed(chips), src.embed(chips), atol=1e-6)


def test_facenet_missing_weights_names_the_setting(tmp_path: Path) -> None:
    emb = FacenetEmbedder(torch.device("cpu"), weights=tmp_path / "absent.pt")
    with pytest.raises(ModelUnavailable, match="PHOTOMATCH_FACENET_WEIGHTS"):
        emb.embed(torch.zeros(1, 3, 160, 160))


def test_engine_with_facenet_end_to_end(group_images: list[Path]) -> None:
    """The engine's code path for the 512-d model: every detected face gets a vector and the model name."""
    torch.manual_seed(0)
    emb = FacenetEmbedder(torch.device("cpu"), random_init=True)
    eng = FaceEngine(Settings(), embedder=emb, device="cpu")
    faces = eng.analyze([load_image(group_images[0]).rgb])[0]
    assert faces and all(f.embedding is not None and f.embedding.shape == (512,) for f in faces)
    assert {f.model for f in faces} == {"facenet-vggface2"}


def test_batched_crops_find_the_faces_facenets_loop_finds(group_images: list[Path]) -> None:
    """photomatch.faces.mtcnn cuts every candidate with one roi_align; facenet-pytorch cut them one by one.
    Same faces, boxes and landmarks within a few percent of the face (bench/detect_speed.py has the timing).
    GPU workers use it by default, CPU ones do not; it must find what the CPU path finds."""
    ours = Detector(torch.device("cpu"), batched_crops=True)
    theirs = Detector(torch.device("cpu"), batched_crops=False)
    found = same = 0
    for path in group_images[:6]:
        img = load_image(path).rgb
        a, b = ours.detect([img])[0], theirs.detect([img])[0]
        found += len(b)
        assert abs(len(a) - len(b)) <= max(1, len(b) // 20), (path.name, len(a), len(b))
        for f in b:
            g = min(a, key=lambda g: float(np.abs(np.array(g.box) - f.box).sum()), default=None)
            if g is not None and np.allclose(g.box, f.box, atol=0.1 * f.size):
                same += 1
                assert np.allclose(g.landmarks, f.landmarks, atol=0.08 * f.size)
    assert found >= 30 and same >= 0.95 * found, (same, found)


class _OutOfMemoryAbove:
    """A detector that runs out of device memory on batches of more than `limit` images."""

    def __init__(self, detector: Detector, limit: int, error: BaseException) -> None:
        self.detector, self.limit, self.error = detector, limit, error
        self.calls: list[int] = []

    def detect(self, images):  # type: ignore[no-untyped-def]
        self.calls.append(len(images))
        if len(images) > self.limit:
            raise self.error
        return self.detector.detect(images)


@pytest.mark.parametrize(
    "error", [torch.OutOfMemoryError("CUDA out of memory."), RuntimeError("DefaultCPUAllocator: can't allocate memory")]
)
def test_out_of_memory_halves_the_batch_and_remembers_what_fitted(
    engine: FaceEngine, group_images: list[Path], error: BaseException
) -> None:
    images = [load_image(p).rgb for p in group_images[:5]]
    expected = [[f.detection.box for f in faces] for faces in engine.analyze(images, embed=False)]
    tight = FaceEngine(Settings(environment="test", device="cpu"), embedder=engine.embedder)
    fake = _OutOfMemoryAbove(engine.detector, 2, error)
    tight.detector = fake  # type: ignore[assignment]
    got = [[f.detection.box for f in faces] for faces in tight.analyze(images, embed=False)]
    assert got == expected
    assert fake.calls == [5, 2, 3, 1, 2]  # 5 fails: 2, then 3 fails: 1 + 2
    fake.calls.clear()
    tight.analyze(images, embed=False)  # the next call starts at the size that fitted, plus one
    assert fake.calls[0] <= 3


def test_an_image_that_does_not_fit_alone_raises_device_out_of_memory(
    engine: FaceEngine, group_images: list[Path]
) -> None:
    from photomatch.faces.types import DeviceOutOfMemory

    tight = FaceEngine(Settings(environment="test", device="cpu"), embedder=engine.embedder)
    tight.detector = _OutOfMemoryAbove(engine.detector, 0, torch.OutOfMemoryError("CUDA out of memory."))  # type: ignore[assignment]
    with pytest.raises(DeviceOutOfMemory):
        tight.analyze([load_image(group_images[0]).rgb])
    other = FaceEngine(Settings(environment="test", device="cpu"), embedder=engine.embedder)
    other.detector = _OutOfMemoryAbove(engine.detector, 0, RuntimeError("shape mismatch"))  # type: ignore[assignment]
    with pytest.raises(RuntimeError, match="shape mismatch"):  # not memory: raised as it is
        other.analyze([load_image(group_images[0]).rgb])


def test_faces_too_small_to_identify_are_found_but_not_embedded(engine: FaceEngine, group_images: list[Path]) -> None:
    """Settings.embed_min_face_px: faces under it come back without vectors, and the vectors of the
    faces over it are exactly those a bound of 0 gives them (each chip goes to its own face)."""
    images = [load_image(p).rgb for p in group_images[:3]]
    every = engine.analyze(images)
    sizes = sorted(f.detection.size for faces in every for f in faces)
    bound = sizes[len(sizes) // 2]  # about half of the faces on each side
    settings = engine.settings.model_copy(update={"embed_min_face_px": bound})
    bounded = FaceEngine(settings, embedder=engine.embedder, second_embedder=engine.second, device="cpu")
    bounded.detector = engine.detector
    got = bounded.analyze(images)
    assert [len(g) for g in got] == [len(e) for e in every]
    small = big = 0
    for g_faces, e_faces in zip(got, every, strict=True):
        for g, e in zip(g_faces, e_faces, strict=True):
            assert g.detection == e.detection and g.sharpness == pytest.approx(e.sharpness)
            if g.detection.size < bound:
                small += 1
                assert not g.embedded and g.embedding is None and g.second_embedding is None
                assert g.to_json(embeddings=True)["embedding"] is None
            else:
                big += 1
                assert g.embedded and g.model == e.model and g.second_model == e.second_model
                assert e.embedding is not None and e.second_embedding is not None
                assert np.allclose(g.embedding, e.embedding, atol=1e-4)
                assert np.allclose(g.second_embedding, e.second_embedding, atol=1e-4)
    assert small > 0 and big > 0
