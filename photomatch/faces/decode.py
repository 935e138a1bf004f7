"""JPEG decoding on the face engine's device: nvJPEG through torchvision on a GPU, Pillow elsewhere.

On a GPU worker, decoding 12 MP JPEGs with Pillow on the host would bound the whole pipeline
(about 70 ms a photo on one core). `torchvision.io.decode_jpeg(device="cuda")` decodes on the GPU
and leaves the pixels where detection runs. Pillow still reads the header first, so every check of
photomatch.imaging.load_image (format, pixel and aspect limits) applies unchanged, and EXIF
orientation is applied here with the same meaning as Pillow's `exif_transpose`. Anything nvJPEG
cannot take (PNG, WebP, CMYK JPEGs, a decoder error) is decoded by load_image, which also gives
corrupt files their usual reason.
"""

from __future__ import annotations

import torch

from photomatch.imaging import UPRIGHT_STEPS, LoadedImage, jpeg_header, load_image


def _upright(chw: torch.Tensor, orientation: int) -> torch.Tensor:
    """A C x H x W image made upright for its EXIF orientation (imaging.UPRIGHT_STEPS)."""
    transpose, flip_rows, flip_cols = UPRIGHT_STEPS[orientation]
    if transpose:
        chw = chw.transpose(1, 2)
    if flip_rows:
        chw = chw.flip(1)
    if flip_cols:
        chw = chw.flip(2)
    return chw


def load_image_on(data: bytes, device: torch.device, *, on_device: bool | None = None) -> LoadedImage:
    """The photo decoded on `device` (H x W x 3 uint8 tensor) when it is a GPU and the file a plain JPEG,
    else by Pillow (numpy). `on_device=True` forces torchvision's decoder on any device (tests)."""
    if not (device.type == "cuda" if on_device is None else on_device):
        return load_image(data)
    header = jpeg_header(data)
    if header is None or header.mode not in ("RGB", "L"):
        return load_image(data)
    from torchvision.io import ImageReadMode, decode_jpeg

    try:
        chw = decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB, device=device)
    except RuntimeError:
        return load_image(data)  # nvJPEG refused it: Pillow decodes it, or says why it is corrupt
    rgb = _upright(chw, header.orientation).permute(1, 2, 0).contiguous()
    return LoadedImage(rgb=rgb, format="JPEG", captured_at=header.captured_at)  # type: ignore[arg-type]
