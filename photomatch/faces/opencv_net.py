"""An ONNX model run by OpenCV's dnn module, for the CPU: the runtime OpenCV Zoo runs YuNet with.

On a CPU, OpenCV's dnn runs YuNet's int8 graph in 0.13 s at 2048x1536 against 0.32 s for the same
graph as torch operations (photomatch.faces.onnx_graph), 2 threads, with outputs equal to 1e-7
(`uv run python bench/detect_speed.py`, tests/faces/test_yunet.py). The torch graph stays for GPUs,
where it batches. The network is called like the torch one: a float N x 3 x H x W tensor in, a dict
of named output tensors out. YuNet's graph reshapes its outputs for a batch of one, so the photos of
a batch go through one at a time (a CPU takes them one at a time anyway).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch


class OpenCvNet:
    """An ONNX graph read by cv2.dnn, called like a torch module (CPU tensors in and out)."""

    def __init__(self, path: Path, outputs: Sequence[str]) -> None:
        import cv2

        self._cv2 = cv2
        self._net = cv2.dnn.readNet(str(path))
        self.output_names = list(outputs)
        self._lock = threading.Lock()  # a cv2.dnn.Net holds its buffers: one call at a time

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        # OpenCV's thread pool follows the caller's torch setting (a worker's --threads, tests' 2).
        self._cv2.setNumThreads(torch.get_num_threads())
        per_image = []
        with self._lock:
            for one in x.detach().to("cpu", torch.float32).contiguous().numpy():
                self._net.setInput(np.ascontiguousarray(one[None]))
                per_image.append([np.array(o, copy=True) for o in self._net.forward(self.output_names)])
        return {
            name: torch.from_numpy(np.concatenate([outs[k] for outs in per_image]))
            for k, name in enumerate(self.output_names)
        }
