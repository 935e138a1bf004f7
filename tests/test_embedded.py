"""The embedded services: Redis persists across restarts; a second start attaches instead."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from cli.embedded import start_postgres, start_redis, stop_redis


def test_redis_persists_across_restart(tmp_path: Path) -> None:
    url = start_redis(tmp_path, stop_at_exit=False)
    try:
        client = redis.Redis.from_url(url)
        assert client.ping()
        client.set("photomatch:test", "survives")
        client.close()
        assert start_redis(tmp_path) == url  # a second start attaches to the running server
    finally:
        stop_redis(tmp_path)

    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(url, socket_connect_timeout=0.2).ping()

    url = start_redis(tmp_path, stop_at_exit=False)
    try:
        client = redis.Redis.from_url(url)
        assert client.get("photomatch:test") == b"survives"
        client.close()
    finally:
        stop_redis(tmp_path)
    assert (tmp_path / "redis" / "appendonly.aof").exists()


def test_start_postgres_attaches_to_running_server(pg_url: str, pg_data_dir: Path) -> None:
    assert start_postgres(pg_data_dir) == pg_url
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"))
    engine.dispose()
