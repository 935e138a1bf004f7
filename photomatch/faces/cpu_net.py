"""What the CPU runtimes' networks share (photomatch.faces.ort_net, opencv_net): called like the torch
graph (photomatch.faces.onnx_graph.OnnxGraph), a float N x 3 x H x W tensor in and a dict of named
output tensors out, each runtime running numpy batches."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


class CpuNet(torch.nn.Module):
    """An ONNX graph run by a CPU runtime. A torch module only so that the engine can place it like one:
    it holds no parameters, and moving it is a no-op.

    With `one_at_a_time`, a batch goes through image by image: a graph exported for a batch of one
    (YuNet's output reshapes) would mix a batch's images.
    """

    def __init__(self, outputs: Sequence[str], *, one_at_a_time: bool = False) -> None:
        super().__init__()
        self.output_names = list(outputs)
        self.one_at_a_time = one_at_a_time

    def _run(self, batch: np.ndarray) -> list[np.ndarray]:
        """The graph's outputs, in output_names' order, for one float32 NCHW batch."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        batch = x.detach().to("cpu", torch.float32).contiguous().numpy()
        parts = [batch[i : i + 1] for i in range(len(batch))] if self.one_at_a_time else [batch]
        outs = [self._run(part) for part in parts]
        return {
            name: torch.from_numpy(np.concatenate([o[k] for o in outs])) for k, name in enumerate(self.output_names)
        }
