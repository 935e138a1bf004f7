"""CPU inference on one thread of its own, whichever thread asks for it.

torch's CPU kernels parallelise through OpenMP, and libgomp keeps a team of worker threads per
thread that starts a parallel region. Once a long-lived thread other than the caller has run torch
(a process that warmed its engine up in its main thread, as the search benchmark did), libgomp
stops spin-waiting between parallel regions and every small convolution pays a futex wake-up: a
selfie's detection and embedding from the API's request threads took 73 ms against 50 ms
(`uv run python bench/torch_threads.py`, 2 cores). Running every CPU inference call on this one
thread keeps one team, so each call runs at that speed whatever ran before; concurrent callers
queue here, where they would otherwise have fought over the same cores. Other devices are called
directly.
"""

from __future__ import annotations

import contextvars
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

import torch

THREAD_NAME = "photomatch-torch"
# Off only to measure what it saves (bench/torch_threads.py): then every caller runs torch itself.
enabled = True
_executor: ThreadPoolExecutor | None = None
_lock = threading.Lock()

R = TypeVar("R")


class OnDevice(Protocol):
    device: torch.device


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:  # created on first use: never in a forking parent that only imports this
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=THREAD_NAME)
        return _executor


def on_torch_thread(method: Callable[..., R]) -> Callable[..., R]:
    """Run this method of an object with a `device` on the inference thread when that device is the CPU.

    Calls made on the inference thread itself (one engine method calling another) run in place. The
    caller's context variables (a request's log fields) and its torch thread count travel with the
    call: `torch.set_num_threads` is per thread, and a caller's setting must still hold.
    """

    @functools.wraps(method)
    def run(self: OnDevice, *args: Any, **kwargs: Any) -> R:
        if not enabled or self.device.type != "cpu" or threading.current_thread().name.startswith(THREAD_NAME):
            return method(self, *args, **kwargs)
        threads = torch.get_num_threads()

        def call() -> R:
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
            return method(self, *args, **kwargs)

        return _pool().submit(contextvars.copy_context().run, call).result()

    return run
