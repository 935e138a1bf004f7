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


def test_production_refuses_placeholder_database_and_s3_passwords() -> None:
    real = "x" * 40
    with pytest.raises(ValidationError, match="DATABASE_URL"):
        Settings(environment="production", secret_key=real, database_url="postgresql+psycopg://pm:photomatch@db/pm")
    with pytest.raises(ValidationError, match="DATABASE_URL"):
        Settings(environment="production", secret_key=real, database_url="postgresql+psycopg://pm:@db/pm")
    with pytest.raises(ValidationError, match="S3_SECRET_KEY"):
        Settings(
            environment="production", secret_key=real, storage_backend="s3", s3_bucket="b",
            s3_secret_key="photomatch-minio-secret",
        )  # fmt: skip
    # Real values, or none in the URL (a socket or IAM login), are fine.
    Settings(environment="production", secret_key=real, database_url="postgresql+psycopg://pm:Zq8-long-random-pw@db/pm")
    Settings(environment="production", secret_key=real, database_url="postgresql+psycopg:///pm?host=/run/pg")
    # Development keeps its conveniences.
    Settings(environment="development", database_url="postgresql+psycopg://pm:photomatch@db/pm")


def test_flower_always_gets_a_login(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from cli.argv import flower_env
    from cli.errors import CliError
    from photomatch.config import get_settings

    monkeypatch.setenv("PHOTOMATCH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PHOTOMATCH_ENVIRONMENT", "development")
    get_settings.cache_clear()
    try:
        generated = flower_env({})["FLOWER_BASIC_AUTH"]
        assert generated.startswith("admin:") and len(generated) > 20
        assert flower_env({})["FLOWER_BASIC_AUTH"] == generated  # kept in data_dir, same on restart
        assert (tmp_path / "flower-auth").stat().st_mode & 0o077 == 0
        for bad in ("admin:change-me", "admin:", "admin:short", ":Zq8-long-random-pw"):
            with pytest.raises(CliError, match="FLOWER_BASIC_AUTH"):
                flower_env({"FLOWER_BASIC_AUTH": bad})
        given = "ops:Zq8-long-random-pw,alice:An0ther-long-password"
        assert flower_env({"FLOWER_BASIC_AUTH": given})["FLOWER_BASIC_AUTH"] == given

        monkeypatch.setenv("PHOTOMATCH_ENVIRONMENT", "production")
        monkeypatch.setenv("PHOTOMATCH_SECRET_KEY", "x" * 40)
        get_settings.cache_clear()
        with pytest.raises(CliError, match="never served without a login"):
            flower_env({})
    finally:
        get_settings.cache_clear()


def test_the_library_starts_no_server_it_asks_for_the_url() -> None:
    """Only the `photomatch` command starts or attaches to the embedded servers (cli/embedded.py)."""
    from photomatch.config import NotConfigured, database_url, redis_url

    empty = Settings(database_url="", redis_url="")
    with pytest.raises(NotConfigured, match="PHOTOMATCH_DATABASE_URL is not set"):
        database_url(empty)
    with pytest.raises(NotConfigured, match="PHOTOMATCH_REDIS_URL is not set"):
        redis_url(empty)
