"""CPU inference on one thread of its own, for processes that serve requests from many threads.

torch's CPU kernels parallelise through OpenMP, and libgomp keeps a team of worker threads per
thread that starts a parallel region. Once a long-lived thread other than the caller has run torch
(a process that warmed its engine up in its main thread, as the search benchmark did), libgomp
stops spin-waiting between parallel regions and every small convolution pays a futex wake-up: a
selfie's detection and embedding from the API's request threads took 73 ms against 50 ms
(`uv run python bench/torch_threads.py`, 2 cores). With `enabled`, every CPU inference call runs
on this one thread, so there is one team and each call runs at that speed whatever ran before;
concurrent callers queue here, where they would otherwise have fought over the same cores.

The API turns it on (api/main.py). A face worker's solo pool runs every task on its main thread,
already one team, and measured slower with it (`bench/ingest.py`: 1.14-1.21 photos/s against
1.22-1.25, its Pillow decoding and thumbnails too), so it stays off there. Other devices are
always called directly. torch is imported at the first call, so turning this on imports nothing.
"""

from __future__ import annotations

import contextvars
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    import torch

THREAD_NAME = "photomatch-torch"
# Off: every caller runs torch itself (a worker's solo pool). The API sets it (api/main.py).
enabled = False
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
        import torch

        threads = torch.get_num_threads()

        def call() -> R:
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
            return method(self, *args, **kwargs)

        return _pool().submit(contextvars.copy_context().run, call).result()

    return run
