"""`photomatch run`: the whole stack on one machine without Docker, supervised from one terminal.

Embedded Postgres and Redis run under data_dir (and keep their data there across restarts); the
worker, beat, API and Flower are child processes given the resolved URLs, so none of them starts
a second copy of a server. Ctrl-C or SIGTERM stops the children first, then Redis, then Postgres.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

import httpx

from cli import credentials
from cli.argv import beat_argv, flower_argv, flower_env
from cli.errors import CliError, refuse_uncalibrated
from photomatch.config import Settings, get_settings

DEFAULT_EMAIL = "photographer@photomatch.local"
DEFAULT_NAME = "Local photographer"
DEMO_SLUG = "demo"
_READY_TIMEOUT = 120.0
# A Celery worker finishing its current batch on warm shutdown; beyond this it is killed (the
# reconciler re-enqueues whatever it was doing).
_STOP_TIMEOUT = 30.0
# A child that dies is restarted, as a service manager would: after 1 s, doubling while it keeps
# dying, up to 30 s. More than _CRASH_LIMIT deaths within _CRASH_WINDOW is a crash loop (a broken
# setting, a port taken): the stack stops and shows the child's log instead.
_RESTART_DELAY, _RESTART_DELAY_MAX = 1.0, 30.0
_CRASH_LIMIT, _CRASH_WINDOW = 5, 300.0


def register(sub: Any) -> None:
    """Add `photomatch run`."""
    p = sub.add_parser("run", help="run the whole stack here, no Docker: Postgres, Redis, worker, beat, API, Flower")
    p.add_argument("--data-dir", type=Path, default=None, help="default: PHOTOMATCH_DATA_DIR (./var)")
    p.add_argument("--host", default=None, help="interface for the API and Flower (default 127.0.0.1)")
    p.add_argument("--api-port", type=int, default=None, help="default: PHOTOMATCH_API_PORT (8000)")
    p.add_argument("--flower-port", type=int, default=None, help="default: PHOTOMATCH_FLOWER_PORT (5555)")
    p.add_argument("--redis-port", type=int, default=None, help="embedded Redis port (default: a free one)")
    p.set_defaults(handler=cmd_run)


@dataclass
class Child:
    """One supervised service process and its log file."""

    name: str
    argv: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    log_file: IO[bytes] | None = field(default=None, repr=False)
    env: dict[str, str] = field(default_factory=dict, repr=False)
    # Variables only this child gets (Flower's login), on top of the stack's environment.
    extra_env: dict[str, str] = field(default_factory=dict, repr=False)
    crashes: list[float] = field(default_factory=list)
    restart_at: float | None = None

    def start(self, env: dict[str, str]) -> None:
        """Start it in its own session (so a terminal's Ctrl-C reaches only the supervisor)."""
        self.env = env
        if self.log_file is not None:
            self.log_file.close()
        self.log_file = self.log_path.open("ab")
        self.log_file.write(f"\n--- photomatch run: starting {self.name} at {time.ctime()} ---\n".encode())
        self.log_file.flush()
        self.proc = subprocess.Popen(
            self.argv, env={**env, **self.extra_env}, stdin=subprocess.DEVNULL, stdout=self.log_file,
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent,
        )  # fmt: skip

    def exited(self) -> int | None:
        """Its exit code, or None while it runs."""
        return None if self.proc is None else self.proc.poll()

    def supervise(self, now: float) -> None:
        """Restart it if it died (after a growing delay); CliError when it keeps dying."""
        if self.restart_at is not None:
            if now >= self.restart_at:
                self.restart_at = None
                self.start(self.env)
                print(f"photomatch: {self.name} restarted", flush=True)
            return
        code = self.exited()
        if code is None:
            return
        self.crashes = [t for t in self.crashes if now - t < _CRASH_WINDOW] + [now]
        if len(self.crashes) > _CRASH_LIMIT:
            raise CliError(
                f"{self.name} exited {len(self.crashes)} times in {_CRASH_WINDOW:.0f} s (last code {code}); "
                f"its log ends:\n{self.log_tail()}"
            )
        delay = min(_RESTART_DELAY * 2 ** (len(self.crashes) - 1), _RESTART_DELAY_MAX)
        self.restart_at = now + delay
        print(f"photomatch: {self.name} exited with code {code}; restarting in {delay:.0f} s", flush=True)

    def log_tail(self, lines: int = 20) -> str:
        """The end of its log, for a crash report."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the supervisor dies (even by SIGKILL), so nothing is orphaned."""
    # ctypes is imported at module level: importing in a freshly forked child is best avoided.
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _apply_overrides(args: argparse.Namespace) -> Settings:
    """Fold the flags into the environment (children inherit it) and reread Settings."""
    overrides = {
        "PHOTOMATCH_DATA_DIR": str(args.data_dir.resolve()) if args.data_dir else None,
        "PHOTOMATCH_API_HOST": args.host,
        "PHOTOMATCH_API_PORT": None if args.api_port is None else str(args.api_port),
        "PHOTOMATCH_FLOWER_PORT": None if args.flower_port is None else str(args.flower_port),
        "PHOTOMATCH_REDIS_PORT": None if args.redis_port is None else str(args.redis_port),
    }
    os.environ.update({k: v for k, v in overrides.items() if v is not None})
    get_settings.cache_clear()
    settings = get_settings()
    # Pin the resolved data_dir so children started from another directory agree.
    os.environ["PHOTOMATCH_DATA_DIR"] = str(settings.data_dir)
    # The stack may listen on every interface: it signs links with its own secret and keeps
    # /metrics behind its own token (both kept in data_dir) unless the operator set real ones.
    if settings.secret_key == Settings.model_fields["secret_key"].default:
        os.environ["PHOTOMATCH_SECRET_KEY"] = credentials.stack_secret_key(settings)
    if not settings.metrics_token:
        os.environ["PHOTOMATCH_METRICS_TOKEN"] = credentials.stack_metrics_token(settings)
    get_settings.cache_clear()
    return get_settings()


def _bootstrap(db_url: str, settings: Settings, api_url: str) -> tuple[str, dict[str, str]]:
    """Ensure a default photographer with a saved API key and a `demo` event; return (key, demo info)."""
    from photomatch.accounts.service import authenticate, create_api_key, create_photographer, get_photographer_by_email
    from photomatch.db import make_engine, make_session_factory, session_scope
    from photomatch.events.service import create_event, get_event

    engine = make_engine(db_url, pool_size=1, max_overflow=0)
    try:
        with session_scope(make_session_factory(engine)) as session:
            saved = credentials.load_saved(settings)
            key = saved.get("api_key")
            photographer = authenticate(session, key) if key else None
            if photographer is None:
                # First run, or a data_dir whose database was reset: make (or re-key) the default account.
                existing = get_photographer_by_email(session, DEFAULT_EMAIL)
                if existing is None:
                    photographer, key = create_photographer(session, DEFAULT_NAME, DEFAULT_EMAIL)
                else:
                    photographer, key = existing, create_api_key(session, existing)
            event = get_event(session, DEMO_SLUG) or create_event(session, photographer, "Demo", slug=DEMO_SLUG)
            email, demo = photographer.email, {"slug": event.slug, "access_code": event.access_code}
    finally:
        engine.dispose()
    assert key is not None
    # Saved only once the key is committed.
    credentials.save(settings, api_key=key, email=email, api_url=api_url)
    return key, demo


def _wait_ready(children: list[Child], url: str, what: str, deadline: float, stop: _Stop) -> bool:
    """Poll `url` until it answers 200 (True); False if a stop was requested meanwhile; fail if a child dies."""
    while not stop.requested:
        for child in children:
            code = child.exited()
            if code is not None:
                raise CliError(
                    f"{child.name} exited with code {code} while starting; its log ends:\n{child.log_tail()}"
                )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2.0).status_code == 200:
                return True
        if time.monotonic() > deadline:
            raise CliError(
                f"{what} did not answer at {url} within {_READY_TIMEOUT:.0f}s; see the logs under data_dir/logs"
            )
        time.sleep(0.3)
    return False


def _stop_children(children: list[Child]) -> None:
    """SIGTERM each child (front to back), then wait; kill what does not stop in time."""
    for child in children:
        if child.proc is not None and child.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + _STOP_TIMEOUT
    for child in children:
        if child.proc is None:
            continue
        try:
            child.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"photomatch: {child.name} did not stop in {_STOP_TIMEOUT:.0f}s; killing it", file=sys.stderr)
            # The service's own children (prefork pool, uvicorn reloader) share its session.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.proc.pid, signal.SIGKILL)
            child.proc.wait()
        if child.log_file is not None:
            child.log_file.close()


class _Stop:
    """Turns SIGINT/SIGTERM/SIGHUP (a closed terminal) into a flag the supervisor loop checks."""

    def __init__(self) -> None:
        self.requested = False
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True


def cmd_run(args: argparse.Namespace) -> int:
    """Start everything, print where it listens, supervise until Ctrl-C/SIGTERM, stop in order."""
    from cli.embedded import start_postgres, start_redis, stop_postgres, stop_redis
    from photomatch.migrate import upgrade

    settings = _apply_overrides(args)
    refuse_uncalibrated(settings)
    host, api_port, flower_port = settings.api_host, settings.api_port, settings.flower_port
    for what, port in (("API", api_port), ("Flower", flower_port)):
        if not _port_free(host, port):
            raise CliError(f"port {port} on {host} ({what}) is in use; pick another with --{what.lower()}-port")
    stop = _Stop()
    logs_dir = settings.data_dir / "logs"
    logs_dir.mkdir(parents=True, exist_ok=True)
    # Listening on all interfaces: this machine reaches the services on loopback.
    local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    api_url = f"http://{local}:{api_port}"
    flower_url = f"http://{local}:{flower_port}"

    print(f"photomatch: starting in {settings.data_dir} ...", flush=True)
    children: list[Child] = []
    try:
        try:
            db_url = settings.database_url or start_postgres(settings.data_dir)
            redis_url = settings.redis_url or start_redis(settings.data_dir, settings.redis_port)
        except RuntimeError as e:  # the embedded servers explain themselves
            raise CliError(str(e)) from None
        upgrade(db_url)
        api_key, demo = _bootstrap(db_url, settings, api_url)
        # Every child writes its Prometheus samples here and the API's /metrics serves them all;
        # samples of a previous run are not this run's counters.
        metrics_dir = settings.data_dir / "metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        env = {
            **os.environ,
            "PHOTOMATCH_DATABASE_URL": db_url,
            "PHOTOMATCH_REDIS_URL": redis_url,
            "PYTHONUNBUFFERED": "1",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        }
        cli = [sys.executable, "-m", "cli"]
        flower_auth = {"FLOWER_BASIC_AUTH": flower_env(os.environ)["FLOWER_BASIC_AUTH"]}
        # Stop order is list order: intake (API) first, the worker last so it can finish its batch.
        children = [
            Child("api", [*cli, "api", "--host", host, "--port", str(api_port)], logs_dir / "api.log"),
            Child("flower", flower_argv(flower_port, host), logs_dir / "flower.log", extra_env=flower_auth),
            Child("beat", beat_argv(), logs_dir / "beat.log"),
            Child("worker", [*cli, "worker", "--queues", "faces,cpu", "--pool", "solo"], logs_dir / "worker.log"),
        ]
        for child in children:
            child.start(env)
        deadline = time.monotonic() + _READY_TIMEOUT
        ready = _wait_ready(children, f"{api_url}/health", "the API", deadline, stop)
        if ready and _wait_ready(children, f"{flower_url}/healthcheck", "Flower", deadline, stop):
            flower_login = flower_auth["FLOWER_BASIC_AUTH"]
            _print_banner(settings, api_url, flower_url, flower_login, db_url, redis_url, api_key, demo, logs_dir)

        while not stop.requested:
            for child in children:
                child.supervise(time.monotonic())
            time.sleep(0.5)
        print("photomatch: stopping ...", flush=True)
        return 0
    finally:
        _stop_children(children)
        if not settings.redis_url:
            stop_redis(settings.data_dir)
        if not settings.database_url:
            stop_postgres(settings.data_dir)
        print("photomatch: stopped", flush=True)


def _print_banner(
    settings: Settings,
    api_url: str,
    flower_url: str,
    flower_login: str,
    db_url: str,
    redis_url: str,
    api_key: str,
    demo: dict[str, str],
    logs_dir: Path,
) -> None:
    rows = [
        ("API", f"{api_url}   (docs: {api_url}/docs)"),
        ("Upload", f"{api_url}/app   (photographer page: sign in with the API key below)"),
        ("Attendee", f"{api_url}/e/{demo['slug']}?code={demo['access_code']}"),
        ("Flower", f"{flower_url}   (login {flower_login})"),
        ("Metrics", f"{api_url}/metrics   (Bearer token in {settings.data_dir / credentials.METRICS_TOKEN_FILE})"),
        ("Postgres", db_url),
        ("Redis", redis_url),
        ("Storage", str(settings.storage_dir) if settings.storage_backend == "local" else f"s3://{settings.s3_bucket}"),
        ("Logs", f"{logs_dir}/{{api,worker,beat,flower}}.log"),
        ("API key", f"{api_key}   (saved in {settings.data_dir / 'credentials.json'})"),
        ("Event", f"slug {demo['slug']}, attendee code {demo['access_code']}"),
    ]
    print("\nphotomatch is running; Ctrl-C stops everything.\n")
    for label, value in rows:
        print(f"  {label:<9} {value}")
    print(f"\nUpload:  photomatch upload DIR --event {demo['slug']}", flush=True)
    print(f"Status:  photomatch status {demo['slug']} --wait\n", flush=True)
