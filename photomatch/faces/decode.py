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

from photomatch.imaging import LoadedImage, jpeg_header, load_image

# EXIF orientation -> how to make a C x H x W image upright (Pillow's exif_transpose).
_UPRIGHT = {
    1: lambda t: t,
    2: lambda t: t.flip(2),  # mirrored left-right
    3: lambda t: t.flip(1).flip(2),  # rotated 180
    4: lambda t: t.flip(1),  # mirrored top-bottom
    5: lambda t: t.transpose(1, 2),  # transposed
    6: lambda t: torch.rot90(t, -1, dims=(1, 2)),  # needs a quarter turn clockwise
    7: lambda t: t.transpose(1, 2).flip(1).flip(2),  # transversed
    8: lambda t: torch.rot90(t, 1, dims=(1, 2)),  # needs a quarter turn anticlockwise
}


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
    rgb = _UPRIGHT[header.orientation](chw).permute(1, 2, 0).contiguous()
    return LoadedImage(rgb=rgb, format="JPEG", captured_at=header.captured_at)  # type: ignore[arg-type]
