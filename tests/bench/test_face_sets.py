"""Benchmark caches are keyed to the engine that made them: code, detection settings and detector."""

from __future__ import annotations

import pytest

from bench.lib.face_sets import engine_fingerprint
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
