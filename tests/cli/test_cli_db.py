"""`photomatch db upgrade`, `photographer create` and `event create` as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from cli.credentials import CREDENTIALS_FILE


def photomatch(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a subprocess, as `photomatch ...` would."""
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def empty_db(pg_url: str) -> Iterator[str]:
    """URL of a new, empty (unmigrated) database."""
    name = f"cli_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_db_upgrade_migrates_an_empty_database(empty_db: str, tmp_path: Path) -> None:
    env = {"PHOTOMATCH_DATABASE_URL": empty_db, "PHOTOMATCH_DATA_DIR": str(tmp_path)}
    result = photomatch("db", "upgrade", env=env)
    assert result.returncode == 0, result.stderr
    assert "upgraded" in result.stdout
    engine = sa.create_engine(empty_db, poolclass=NullPool)
    with engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
        extension = conn.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'vector'")).scalar()
    engine.dispose()
    assert {"photographers", "api_keys", "events", "photos", "faces", "alembic_version"} <= tables
    assert extension == 1
    # Idempotent: a second run is a no-op.
    assert photomatch("db", "upgrade", env=env).returncode == 0


def test_photographer_and_event_create_directly_in_the_database(fresh_db: str, tmp_path: Path) -> None:
    env = {"PHOTOMATCH_DATABASE_URL": fresh_db, "PHOTOMATCH_DATA_DIR": str(tmp_path)}
    created = photomatch("photographer", "create", "Ann", "ann@example.com", env=env)
    assert created.returncode == 0, created.stderr
    key = next(line.split(": ", 1)[1] for line in created.stdout.splitlines() if line.startswith("API key"))
    saved = (tmp_path / CREDENTIALS_FILE).read_text()
    assert key in saved
    assert (tmp_path / CREDENTIALS_FILE).stat().st_mode & 0o077 == 0

    # The saved key identifies the photographer when no --email/--key is given.
    event = photomatch("event", "create", "Summer Party", env=env)
    assert event.returncode == 0, event.stderr
    assert "slug summer-party" in event.stdout

    again = photomatch("photographer", "create", "Ann", "ANN@example.com", env=env)
    assert again.returncode == 2
    assert again.stderr.strip() == "photomatch: error: a photographer with email ann@example.com already exists"
    taken = photomatch("event", "create", "x", "--slug", "summer-party", "--email", "ann@example.com", env=env)
    assert taken.returncode == 2 and "not available" in taken.stderr


def test_api_keys_are_listed_by_prefix_and_revoked_from_the_cli(fresh_db: str, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from api.main import create_app
    from photomatch.config import Settings

    env = {"PHOTOMATCH_DATABASE_URL": fresh_db, "PHOTOMATCH_DATA_DIR": str(tmp_path)}
    created = photomatch("photographer", "create", "Bo", "bo@example.com", "--no-save", env=env)
    first = next(line.split(": ", 1)[1] for line in created.stdout.splitlines() if line.startswith("API key"))
    second_out = photomatch("photographer", "new-key", "bo@example.com", env=env)
    second = second_out.stdout.strip().split(": ", 1)[1]
    prefix = first.split("_")[1]

    listed = photomatch("photographer", "keys", "bo@example.com", env=env)
    assert listed.returncode == 0, listed.stderr
    assert prefix in listed.stdout and second.split("_")[1] in listed.stdout
    assert first not in listed.stdout and second not in listed.stdout  # only prefixes: keys are stored hashed
    assert listed.stdout.count("active") == 2

    settings = Settings(environment="test", database_url=fresh_db, data_dir=tmp_path, rate_limits_enabled=False)
    with TestClient(create_app(settings)) as api:
        assert api.get("/events", headers={"Authorization": f"Bearer {first}"}).status_code == 200
        revoked = photomatch("photographer", "revoke-key", prefix, env=env)
        assert revoked.returncode == 0 and f"API key {prefix} revoked" in revoked.stdout
        assert api.get("/events", headers={"Authorization": f"Bearer {first}"}).status_code == 401
        assert api.get("/events", headers={"Authorization": f"Bearer {second}"}).status_code == 200
    assert "revoked" in photomatch("photographer", "keys", "bo@example.com", env=env).stdout
    again = photomatch("photographer", "revoke-key", prefix, env=env)
    assert again.returncode == 2 and "already revoked" in again.stderr
    assert photomatch("photographer", "revoke-key", "nope", env=env).returncode == 2


def test_event_fuse_names_what_it_did_and_refuses_what_it_cannot(fresh_db: str, tmp_path: Path) -> None:
    env = {"PHOTOMATCH_DATABASE_URL": fresh_db, "PHOTOMATCH_DATA_DIR": str(tmp_path)}
    assert photomatch("photographer", "create", "Ann", "ann@example.com", env=env).returncode == 0
    for name in ("Old party", "New party"):
        assert photomatch("event", "create", name, env=env).returncode == 0
    engine = sa.create_engine(fresh_db, poolclass=NullPool)
    with engine.begin() as conn:  # an event from before the second embedder
        conn.execute(sa.text("UPDATE events SET second_embedder = NULL WHERE slug = 'old-party'"))

    usage = photomatch("event", "fuse", env=env)
    assert usage.returncode == 2 and "name the events to fuse, or pass --all" in usage.stderr
    unknown = photomatch("event", "fuse", "old-party", "nope", env=env)
    assert unknown.returncode == 2 and "no event 'nope'" in unknown.stderr
    wrong = photomatch("event", "fuse", "old-party", "--model", "facenet-vggface2", env=env)
    assert wrong.returncode == 2 and "no fused calibration for 'facenet-vggface2'" in wrong.stderr

    fused = photomatch("event", "fuse", "--all", env=env)
    assert fused.returncode == 0, fused.stderr
    assert fused.stdout.splitlines() == ["event old-party: 0 photos queued for the second model's vectors"]
    with engine.connect() as conn:
        models = dict(conn.execute(sa.text("SELECT slug, second_embedder FROM events")).all())
    engine.dispose()
    assert models == {"old-party": "sface-2021dec-int8bq", "new-party": "sface-2021dec-int8bq"}
    assert photomatch("event", "fuse", "--all", env=env).stdout.strip() == "no event needs a second embedder"
