"""Infrastructure settings: derived paths and the refusal of placeholder secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from photomatch.config import Settings


def test_paths_are_resolved_and_storage_defaults_under_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings(environment="test")
    assert settings.data_dir == tmp_path / "var"
    assert settings.storage_dir == tmp_path / "var" / "storage"
    assert settings.database_url == "" and settings.redis_url == ""


def test_env_vars_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PHOTOMATCH_STORAGE_DIR", str(tmp_path / "originals"))
    monkeypatch.setenv("PHOTOMATCH_REDIS_URL", "redis://cache:6379/1")
    settings = Settings(environment="test")
    assert settings.storage_dir == tmp_path / "originals"
    assert settings.redis_url == "redis://cache:6379/1"


def test_placeholder_secret_refused_outside_development() -> None:
    Settings(environment="development")  # the placeholder is fine locally
    with pytest.raises(ValidationError, match="PHOTOMATCH_SECRET_KEY"):
        Settings(environment="production")
    with pytest.raises(ValidationError, match="at least 32"):
        Settings(environment="production", secret_key="short")
    Settings(environment="production", secret_key="x" * 40)


def test_s3_backend_needs_a_bucket() -> None:
    with pytest.raises(ValidationError, match="PHOTOMATCH_S3_BUCKET"):
        Settings(environment="test", storage_backend="s3")
