"""ONNX models run by OpenCV's dnn module on a CPU: the runtime OpenCV Zoo runs YuNet and SFace with.

The product runs SFace here on a CPU, and YuNet in ONNX Runtime, which measured faster still for it
(photomatch.faces.ort_net; "opencv" stays selectable). The same graphs also run as torch operations
(photomatch.faces.onnx_graph), which batch and run on a GPU; on a CPU OpenCV's dnn measured faster
with outputs equal to 1e-5 (tests/faces/test_yunet.py, test_sface.py; `uv run python
bench/detect_speed.py`, CPU, 2 threads):

| model | input | torch | OpenCV |
|---|---|---|---|
| YuNet | a 2048 x 1536 photo | 0.32 s | 0.13 s |
| SFace | 112 px chips | 13.6 ms a chip (2 at once) | 9.0 ms (8 at once) |

An `OpenCvNet` is called like the torch graph (photomatch.faces.cpu_net). YuNet's graph reshapes
its outputs for a batch of one, so its photos go through one at a time (`one_at_a_time`; a CPU takes
them one at a time anyway).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from photomatch.faces.cpu_net import CpuNet


def opencv_following_torch() -> Any:
    """The cv2 module, its thread pool set to the caller's torch thread count (a worker's --threads,
    tests' 2): OpenCV's pool is the process's, and torch's count is the engine's setting."""
    import cv2

    cv2.setNumThreads(torch.get_num_threads())
    return cv2


class OpenCvNet(CpuNet):
    """An ONNX graph read by cv2.dnn, called like photomatch.faces.onnx_graph.OnnxGraph (CPU tensors)."""

    def __init__(self, path: Path, input_name: str, outputs: Sequence[str], *, one_at_a_time: bool = False) -> None:
        super().__init__(outputs, one_at_a_time=one_at_a_time)
        import cv2

        if not Path(path).is_file():
            raise FileNotFoundError(f"{path} is not a file")
        self._net = cv2.dnn.readNet(str(path))
        self.input_name = input_name
        self._lock = threading.Lock()  # a cv2.dnn.Net holds its buffers: one call at a time

    def _run(self, batch: np.ndarray) -> list[np.ndarray]:
        opencv_following_torch()
        with self._lock:
            self._net.setInput(batch, self.input_name)
            return [np.array(o, copy=True) for o in self._net.forward(self.output_names)]
