"""The face engine: images in, faces with quality signals and unit-length embeddings out."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch

from photomatch.config import Settings, get_settings
from photomatch.faces.alignment import align_faces, sharpness
from photomatch.faces.decode import load_image_on
from photomatch.faces.detection import DETECTOR_CONFIGS, detector_for
from photomatch.faces.device import choose_device, out_of_memory, release_cached_memory
from photomatch.faces.embedders import Embedder, get_embedder_class
from photomatch.faces.torch_thread import on_torch_thread
from photomatch.faces.types import Detection, DeviceOutOfMemory, Face
from photomatch.imaging import LoadedImage
from photomatch.logs import get_logger
from photomatch.metrics import timed

log = get_logger(__name__)

ImageLike = np.ndarray | torch.Tensor  # H x W x 3 uint8 RGB


class FaceEngine:
    """Detection (MTCNN or YuNet), alignment and embedding, each batched; models load on first use."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        embedder: str | Embedder | None = None,
        device: str | torch.device | None = None,
        second_embedder: str | Embedder | None = None,
    ) -> None:
        """`second_embedder` None takes the settings' (Settings.second_embedder); "" means none."""
        s = settings or get_settings()
        self.settings = s
        self.device = device if isinstance(device, torch.device) else choose_device(device or s.device)
        # The configuration Settings.detector names; recorded on every face it finds.
        self.detector_name = s.detector
        # Whose landmarks its faces carry, which picks each embedder's chip template.
        self.landmarks = DETECTOR_CONFIGS[s.detector].landmarks
        self.detector = detector_for(s.detector, self.device, s)
        if isinstance(embedder, Embedder):
            self.embedder = embedder
        else:
            self.embedder = get_embedder_class(embedder or s.embedder).from_settings(self.device, s)
        second = s.second_embedder if second_embedder is None else second_embedder
        self.second: Embedder | None = (
            second
            if isinstance(second, Embedder)
            else get_embedder_class(second).from_settings(self.device, s)
            if second
            else None
        )
        # The mirror pass is part of the configuration the calibration was fitted for (DetectorConfig).
        # Embedders handed in ready-made keep their own setting.
        mirror = DETECTOR_CONFIGS[s.detector].embed_mirror
        if not isinstance(embedder, Embedder):
            self.embedder.flip = mirror
        if self.second is not None and not isinstance(second, Embedder):
            self.second.flip = mirror
        # Images per call that fitted in the device's memory after it last ran out (None: no limit yet).
        self._batch_cap: int | None = None

    @property
    def model_name(self) -> str:
        """The name recorded with every embedding this engine makes."""
        return self.embedder.name

    @property
    def second_model_name(self) -> str | None:
        """The second embedder's name, recorded with its vectors; None without one."""
        return self.second.name if self.second else None

    @on_torch_thread
    def load(self) -> None:
        """Load every model now rather than on the first photo (workers call this at start)."""
        self.detector.load()
        self.embedder.load()
        if self.second:
            self.second.load()

    def decode(self, data: bytes) -> LoadedImage:
        """The photo decoded where this engine runs: on a GPU by nvJPEG (photomatch.faces.decode)."""
        return load_image_on(data, self.device, on_device=None if self.settings.decode_on_device else False)

    @on_torch_thread
    def detect(self, images: Sequence[ImageLike]) -> list[list[Detection]]:
        """Faces per image, largest first, in original pixels."""
        return self.detector.detect(images)

    @on_torch_thread
    @torch.inference_mode()
    def chips(
        self,
        image: ImageLike,
        detections: Sequence[Detection],
        embedder: Embedder | None = None,
        landmarks: str | None = None,
    ) -> torch.Tensor:
        """Aligned chips (N x 3 x S x S, 0-255) for one image's detections, in the embedder's frame, from
        landmarks of the convention `landmarks` names (default: this engine's detector's)."""
        emb = embedder or self.embedder
        img = torch.from_numpy(np.ascontiguousarray(image)) if isinstance(image, np.ndarray) else image
        img = img.to(self.device)
        lm = torch.tensor([d.landmarks for d in detections], dtype=torch.float64).reshape(-1, 5, 2)
        # Replicate the border where a chip runs off the photo: black bands made tightly cropped faces
        # of different people look alike (dev-faces pairs: +0.1 points balanced accuracy).
        template = emb.template_for(landmarks or self.landmarks)
        return align_faces(img, lm, template, emb.chip_size, fill="replicate")

    @on_torch_thread
    @torch.inference_mode()
    def embed_faces(self, image: ImageLike, faces: Sequence[Face]) -> list[Face]:
        """These faces of one image (found by `analyze(..., embed=False)`) with their vectors.

        A selfie needs only its chosen face embedded, not every bystander's: with two embedders,
        embedding a 3-face selfie whole cost ~50 ms more than its one face (CPU, 2 cores).
        """
        dets = [f.detection for f in faces]
        # Stored faces (a fused older event) keep the landmarks of the detector that found them.
        conventions = {DETECTOR_CONFIGS[f.detector].landmarks for f in faces if f.detector in DETECTOR_CONFIGS}
        landmarks = conventions.pop() if len(conventions) == 1 else None
        with timed("align"):
            chips = self.chips(image, dets, None, landmarks)
            chips2 = self.chips(image, dets, self.second, landmarks) if self.second else None
        return self._embedded(list(faces), chips, chips2)

    def _embedded(self, faces: list[Face], chips: torch.Tensor, chips2: torch.Tensor | None) -> list[Face]:
        """`faces` with the vectors of their chips: one batched pass per embedder, both models recorded."""
        with timed("embed"):
            vectors = self.embedder.embed(chips)
            vectors2 = self.second.embed(chips2) if self.second and chips2 is not None else None
        return [
            replace(
                f,
                embedding=vectors[i],
                model=self.model_name,
                second_embedding=None if vectors2 is None else vectors2[i],
                second_model=self.second_model_name,
            )
            for i, f in enumerate(faces)
        ]

    @on_torch_thread
    def analyze(self, images: Sequence[ImageLike], *, embed: bool = True) -> list[list[Face]]:
        """Detect, align and (by default) embed every face of every image, batching across images.

        Every face found is returned; those narrower than Settings.embed_min_face_px come without
        vectors (`Face.embedded` False): too small to identify, so not worth the embedders' time.

        The batch adapts to the device's memory: when the device runs out, the images are split in
        halves and each half analysed again, and later calls take at most the size that fitted
        (growing back by one image per successful call). Only an image that does not fit alone
        raises, as DeviceOutOfMemory, so its task retries instead of failing the photo.
        """
        cap = self._batch_cap or len(images)
        out: list[list[Face]] = []
        for start in range(0, len(images), max(1, cap)):
            out += self._analyze_fitting(images[start : start + cap], embed)
        if self._batch_cap is not None:
            self._batch_cap += 1
        return out

    def _analyze_fitting(self, images: Sequence[ImageLike], embed: bool) -> list[list[Face]]:
        try:
            return self._analyze(images, embed=embed)
        except RuntimeError as e:  # torch.OutOfMemoryError is one
            if not out_of_memory(e):
                raise
            release_cached_memory(self.device)
            if len(images) <= 1:
                raise DeviceOutOfMemory(f"one image does not fit in {self.device}'s free memory: {e}") from e
            half = len(images) // 2
            self._batch_cap = half
            log.warning("faces.engine.out_of_memory", device=self.device, images=len(images), retry_with=half)
            return self._analyze_fitting(images[:half], embed) + self._analyze_fitting(images[half:], embed)

    @torch.inference_mode()
    def _analyze(self, images: Sequence[ImageLike], *, embed: bool = True) -> list[list[Face]]:
        # Stage timings (photomatch_stage_duration_seconds): each ends on a host copy, so on a GPU
        # they measure finished work, not queued kernels.
        with timed("detect"):
            detections = self.detect(images)
        second = self.second if embed else None
        # Faces too small to identify are found and counted but not embedded (Settings.embed_min_face_px).
        min_px = self.settings.embed_min_face_px
        with timed("align"):
            per_image = [self.chips(img, dets) for img, dets in zip(images, detections, strict=True)]
            all_chips = torch.cat(per_image) if per_image else torch.zeros((0, 3, 1, 1))
            sharp = sharpness(all_chips).cpu().numpy() if all_chips.shape[0] else np.zeros(0)
            # The second embedder was trained on its own frame: the same landmarks, its template.
            pairs = zip(images, detections, strict=True)
            all_chips2 = (
                torch.cat([self.chips(i, [d for d in ds if d.size >= min_px], second) for i, ds in pairs])
                if second and per_image
                else None
            )
        flat = [
            Face(detection=d, sharpness=float(s), detector=self.detector_name)
            for d, s in zip((d for ds in detections for d in ds), sharp, strict=True)
        ]
        if embed:
            keep = [i for i, f in enumerate(flat) if f.detection.size >= min_px]
            chips = all_chips[torch.tensor(keep, dtype=torch.long, device=all_chips.device)]
            for i, face in zip(keep, self._embedded([flat[i] for i in keep], chips, all_chips2), strict=True):
                flat[i] = face
        out: list[list[Face]] = []
        k = 0
        for dets in detections:
            out.append(flat[k : k + len(dets)])
            k += len(dets)
        return out


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two unit vectors (0 identical, 2 opposite)."""
    return float(np.linalg.norm(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)))


_engines: dict[tuple[str, str, str], FaceEngine] = {}
_engines_lock = threading.Lock()


def get_engine(
    embedder: str | None = None, settings: Settings | None = None, second_embedder: str | None = None
) -> FaceEngine:
    """A process-wide engine per (model, second model, device), created lazily: never in a forking parent.

    `second_embedder` None takes the settings'; "" means none (an event created without one).
    """
    s = settings or get_settings()
    second = s.second_embedder if second_embedder is None else second_embedder
    key = (embedder or s.embedder, second, s.device)
    with _engines_lock:
        if key not in _engines:
            _engines[key] = FaceEngine(s, embedder=key[0], second_embedder=key[1])
        return _engines[key]


def get_engine_for(models: tuple[str, str], settings: Settings | None = None) -> FaceEngine:
    """The engine for an event's (embedder, second embedder or "") pair, as processing names them."""
    return get_engine(models[0], settings, second_embedder=models[1])
