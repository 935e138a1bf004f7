"""The one place that decides where face models run."""

from __future__ import annotations

import threading

import torch

from photomatch.logs import get_logger

log = get_logger(__name__)
_logged: set[str] = set()
_lock = threading.Lock()


def choose_device(setting: str = "auto") -> torch.device:
    """CUDA when present, otherwise CPU; `setting` (auto, cpu, cuda, cuda:N) overrides. Logged once."""
    if setting == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(setting)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"PHOTOMATCH_DEVICE={setting} but CUDA is not available in this process")
    with _lock:
        if str(device) not in _logged:
            _logged.add(str(device))
            name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} threads"
            log.info("faces.device.selected", device=device, name=name, setting=setting)
    return device


def half_precision(device: torch.device) -> bool:
    """Whether embedders run in float16: on CUDA yes, on CPU no (slower and no more accurate)."""
    return device.type == "cuda"


def out_of_memory(error: BaseException) -> bool:
    """Whether `error` is the device running out of memory (CUDA's, or the CPU allocator's)."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "can't allocate memory" in str(error)


def release_cached_memory(device: torch.device) -> None:
    """Give the caching allocator's free blocks back, so the retry with fewer images can use them."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
