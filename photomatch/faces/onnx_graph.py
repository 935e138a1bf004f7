"""Small ONNX graphs run as torch operations: the models that ship as .onnx files (SFace, YuNet).

The graph is read once with the `onnx` package: int8 block-quantised weights are dequantised and
constant subgraphs folded at load, batch norms that follow a convolution are folded into it, and
the remaining operations run in graph order on torch tensors, so the model batches and runs on a
GPU like the rest of the engine. Shapes that the exporter fixed (a batch of 1, a 640x640 input) are
taken from the tensors at run time instead. `tests/faces/test_sface.py` and `test_yunet.py` check
the results against ONNX's reference evaluator.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

SUPPORTED = {
    *("DequantizeLinear", "Reshape", "Constant", "Sub", "Mul", "Add"),
    *("Conv", "BatchNormalization", "PRelu", "Relu", "Sigmoid", "Dropout", "Flatten", "Gemm"),
    *("MaxPool", "Resize", "Transpose"),
}


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


class OnnxGraph(torch.nn.Module):
    """An ONNX graph of the operations above, executed in order; constants become buffers.

    `forward` returns the graph's outputs by name.
    """

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
            if node.op_type not in SUPPORTED:
                raise ValueError(f"{path.name}: unsupported ONNX operation {node.op_type}")
            ins, out = list(node.input), node.output[0]
            if node.op_type == "Constant":
                const[out] = numpy_helper.to_array(attrs["value"])
            elif node.op_type in ("DequantizeLinear", "Reshape") and all(i in const for i in ins if i):
                # Fold constant subgraphs (dequantised, reshaped weights) at load.
                const[out] = self._fold(node.op_type, [const[i] if i else None for i in ins], attrs)
            else:
                self.steps.append((node.op_type, ins, out, attrs))
        self.input_name = graph.input[0].name
        self.output_names = [o.name for o in graph.output]
        self.steps = _fold_batch_norms(self.steps, const)
        # Shape operands stay numbers (reshape targets, resize scales); tensors become buffers.
        self._static: dict[str, list[float]] = {}
        self._names: dict[str, str] = {}
        for i, (op, ins, _, _) in enumerate(self.steps):
            for j, name in enumerate(ins):
                if name not in const:
                    continue
                if (op == "Reshape" and j == 1) or (op == "Resize" and j > 0):
                    self._static[name] = [float(v) for v in np.asarray(const[name]).reshape(-1)]
                elif name not in self._names:
                    buf = f"c{i}_{j}"
                    self.register_buffer(buf, torch.from_numpy(np.array(const[name], copy=True)))
                    self._names[name] = buf

    @staticmethod
    def _fold(op: str, args: list, attrs: dict) -> np.ndarray:
        if op == "DequantizeLinear":
            q, s, z = (args + [None])[:3]
            return dequantize_blocks(q, s, z, attrs.get("axis", 1), attrs.get("block_size", 0))
        return args[0].reshape([int(d) for d in args[1]])  # Reshape

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The graph's input in (NCHW), its outputs out by name."""
        vals: dict[str, torch.Tensor] = {self.input_name: x}

        def get(name: str) -> torch.Tensor:
            return vals[name] if name in vals else getattr(self, self._names[name])

        for op, ins, out, a in self.steps:
            if op == "Reshape":
                # The exporter fixed the batch at 1 ([1, -1, C]): keep the batch, infer the middle.
                target = [int(v) for v in self._static[ins[1]]]
                x0 = get(ins[0])
                vals[out] = x0.reshape(x0.shape[0], *target[1:]) if len(target) > 1 else x0.reshape(target)
                continue
            if op == "Resize":
                scales = self._static[ins[2]] if len(ins) > 2 and ins[2] else []
                if a.get("mode", b"nearest") != b"nearest" or len(scales) != 4:
                    raise ValueError("only nearest resizing by constant scales is supported")
                # ONNX nearest with asymmetric coordinates and floor rounding is torch's "nearest".
                vals[out] = F.interpolate(get(ins[0]), scale_factor=scales[2:], mode="nearest")
                continue
            args = [get(i) for i in ins if i]
            vals[out] = _run(op, args, a)
        return {name: vals[name] for name in self.output_names}


def _run(op: str, args: list[torch.Tensor], a: dict) -> torch.Tensor:
    """One operation on tensors."""
    if op == "Sub":
        return args[0] - args[1]
    if op == "Mul":
        return args[0] * args[1]
    if op == "Add":
        return args[0] + args[1]
    if op == "Conv":
        pads = a.get("pads", [0, 0, 0, 0])
        if pads[:2] != pads[2:]:
            raise ValueError("asymmetric padding is not supported")
        bias = args[2] if len(args) > 2 else None
        return F.conv2d(args[0], args[1], bias, a.get("strides", 1), pads[:2], a.get("dilations", 1), a.get("group", 1))
    if op == "BatchNormalization":
        return F.batch_norm(args[0], args[3], args[4], args[1], args[2], False, 0.0, a.get("epsilon", 1e-5))
    if op == "PRelu":  # slopes per channel, (C, 1, 1) in the graph
        return F.prelu(args[0], args[1].reshape(-1))
    if op == "Relu":
        return F.relu(args[0])
    if op == "Sigmoid":
        return torch.sigmoid(args[0])
    if op == "MaxPool":
        if any(a.get("pads", [0])) or a.get("ceil_mode", 0):
            raise ValueError("only unpadded, floor-mode max pooling is supported")
        return F.max_pool2d(args[0], a["kernel_shape"], a.get("strides", a["kernel_shape"]))
    if op == "Transpose":
        return args[0].permute(*a["perm"])
    if op == "Dropout":
        return args[0]
    if op == "Flatten":
        return torch.flatten(args[0], a.get("axis", 1))
    if op == "Gemm":
        w = args[1].t() if a.get("transB", 0) else args[1]
        r = a.get("alpha", 1.0) * (args[0] @ w)
        return r + a.get("beta", 1.0) * args[2] if len(args) > 2 else r
    raise ValueError(op)  # pragma: no cover - rejected at load


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
