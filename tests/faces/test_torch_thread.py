"""With the inference thread on (as the API sets it), CPU inference runs on one thread whichever
thread calls, keeps the caller's context and torch thread count, and raises the callee's errors;
other devices, and every call while it is off (a worker's solo pool), run in place."""

from __future__ import annotations

import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from photomatch.faces import torch_thread
from photomatch.faces.torch_thread import THREAD_NAME, on_torch_thread

REQUEST = contextvars.ContextVar("request", default="none")


@pytest.fixture(autouse=True)
def inference_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch_thread, "enabled", True)


class Model:
    def __init__(self, device: str) -> None:
        self.device = torch.device(device)

    @on_torch_thread
    def where(self) -> tuple[str, str]:
        return threading.current_thread().name, REQUEST.get()

    @on_torch_thread
    def threads(self) -> int:
        return torch.get_num_threads()

    @on_torch_thread
    def outer(self) -> tuple[str, str]:
        return self.where()  # already on the inference thread: runs in place, no deadlock

    @on_torch_thread
    def fail(self) -> None:
        raise ValueError("bad image")


def test_cpu_calls_from_any_thread_run_on_the_one_inference_thread_with_their_context() -> None:
    model = Model("cpu")

    def call(i: int) -> tuple[str, str]:
        REQUEST.set(f"req-{i}")
        return model.outer()

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(call, range(12)))
    assert {name for name, _ in results} == {results[0][0]} and results[0][0].startswith(THREAD_NAME)
    assert [req for _, req in results] == [f"req-{i}" for i in range(12)]
    with pytest.raises(ValueError, match="bad image"):
        model.fail()


def test_other_devices_and_every_call_while_it_is_off_run_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Model("meta").where()[0] == threading.current_thread().name
    monkeypatch.setattr(torch_thread, "enabled", False)
    assert Model("cpu").where()[0] == threading.current_thread().name


def test_the_api_turns_it_on(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from api.main import create_app
    from photomatch.config import Settings

    monkeypatch.setattr(torch_thread, "enabled", False)
    create_app(Settings(environment="test", data_dir=tmp_path))
    assert torch_thread.enabled


def test_the_callers_torch_thread_count_holds_on_the_inference_thread() -> None:
    model, before = Model("cpu"), torch.get_num_threads()
    try:
        for n in (1, 2, 1):
            torch.set_num_threads(n)
            assert model.threads() == n
    finally:
        torch.set_num_threads(before)
