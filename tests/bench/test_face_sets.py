"""Benchmark caches are keyed to the engine that made them: code, detection settings and detector."""

from __future__ import annotations

import pytest

from bench.lib.face_sets import code_of, engine_fingerprint
from photomatch.config import get_settings


@pytest.fixture
def detector(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    def use(name: str) -> str:
        monkeypatch.setenv("PHOTOMATCH_DETECTOR", name)
        get_settings.cache_clear()
        return engine_fingerprint("dlib-resnet-v1")

    yield use
    get_settings.cache_clear()


def test_each_detector_has_its_own_caches(detector) -> None:  # type: ignore[no-untyped-def]
    # Same code, other faces: a YuNet study must never read MTCNN's embeddings (or the reverse).
    assert detector("mtcnn") != detector("yunet")
    assert detector("yunet") == detector("yunet")


def test_the_code_hashed_ignores_comments_and_docstrings_but_not_what_runs() -> None:
    source = 'def f(x):\n    """Twice x."""\n    return 2 * x  # doubled\n'
    reworded = '"""A module."""\n\n\ndef f(x):\n    """Two times x, reworded."""\n    # new\n    return 2 * x\n'
    assert code_of(source) == code_of(reworded)
    assert code_of(source) != code_of(source.replace("2 * x", "3 * x"))
    assert code_of('def g():\n    """Only a docstring."""\n') != code_of("def g():\n    return 1\n")
