"""Fixtures for face-engine tests: the real dev-faces photos, skipped cleanly when absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from photomatch.config import get_settings


@pytest.fixture(scope="session")
def identity_images(dev_faces: Path) -> list[tuple[str, Path]]:
    """(identity, path) for every labelled image, sorted."""
    return [
        (p.parent.name, p)
        for p in sorted(dev_faces.glob("*/*"))
        if p.parent.name != "groups" and p.suffix.lower() in (".jpg", ".jpeg", ".png")
    ]


@pytest.fixture(scope="session")
def group_images(dev_faces: Path) -> list[Path]:
    return sorted(p for p in (dev_faces / "groups").iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


@pytest.fixture(scope="session")
def engine():  # type: ignore[no-untyped-def]
    """One CPU engine for the whole session: loading the detector and the embedders costs seconds."""
    import torch

    from photomatch.faces.engine import FaceEngine

    torch.set_num_threads(2)
    return FaceEngine(get_settings(), device="cpu")
