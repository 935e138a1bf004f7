"""Command lines of the service processes (Celery worker, beat, Flower), shared by `photomatch worker`
and friends (which exec them) and by `photomatch run` (which supervises them)."""

from __future__ import annotations

import sys
from collections.abc import Mapping

from cli.errors import CliError
from photomatch.config import get_settings, is_placeholder_secret
from photomatch.queue import FACES_QUEUE, QUEUES

# The Celery application module (celery -A); `celery` finds its `app`/`celery` attribute.
CELERY_APP = "workers.celery_app"
# Pools that never fork: the face queue loads torch (and maybe CUDA) in the worker process itself.
_NONFORKING_POOLS = ("solo", "threads")


def celery_argv(*args: str) -> list[str]:
    """`python -m celery -A workers.celery_app <args>` with this interpreter."""
    return [sys.executable, "-m", "celery", "-A", CELERY_APP, *args]


def worker_argv(queues: str, pool: str | None, concurrency: int | None, name: str | None, loglevel: str) -> list[str]:
    """The Celery worker command line for these options (validated)."""
    wanted = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = sorted(set(wanted) - set(QUEUES))
    if not wanted or unknown:
        raise CliError(f"unknown queue(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(QUEUES)}")
    if pool is None:
        pool = "solo" if FACES_QUEUE in wanted else "prefork"
    if FACES_QUEUE in wanted and pool not in _NONFORKING_POOLS:
        # A prefork parent that ever touched torch/CUDA hands broken state to its children.
        raise CliError("the faces queue needs --pool solo or --pool threads (CUDA must not be used across fork)")
    argv = celery_argv("worker", "--queues", ",".join(wanted), "--pool", pool, "--loglevel", loglevel)
    argv += ["--hostname", name or f"{'-'.join(wanted)}@%h"]
    if concurrency is not None and pool != "solo":
        argv += ["--concurrency", str(concurrency)]
    return argv


def beat_argv(loglevel: str = "info") -> list[str]:
    """The Celery beat command line; its schedule file lives in data_dir, not the working directory."""
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return celery_argv("beat", "--loglevel", loglevel, "--schedule", str(settings.data_dir / "celerybeat-schedule"))


def flower_argv(port: int, address: str) -> list[str]:
    """The Flower command line (through cli.flower, which puts its /metrics behind the login); its
    credentials come from FLOWER_BASIC_AUTH (`flower_env`), not argv, where any local user could read them."""
    return [sys.executable, "-m", "cli.flower", "-A", CELERY_APP, "flower", f"--port={port}", f"--address={address}"]


def flower_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment Flower runs with: FLOWER_BASIC_AUTH always set, never to a placeholder.

    Flower without credentials shows every task's arguments and tracebacks to anyone who can reach
    it. Production must bring its own (`user:password[,user2:password2]`); development gets one
    generated into data_dir (`photomatch run` prints it).
    """
    from cli.credentials import flower_basic_auth

    settings = get_settings()
    given = environ.get("FLOWER_BASIC_AUTH", "").strip()
    if given:
        for entry in given.split(","):
            user, _, password = entry.partition(":")
            if not user or is_placeholder_secret(password):
                raise CliError("FLOWER_BASIC_AUTH must be user:password with a real password (12+ characters)")
        return {**environ, "FLOWER_BASIC_AUTH": given}
    if settings.environment == "production":
        raise CliError("set FLOWER_BASIC_AUTH=user:password: Flower is never served without a login in production")
    return {**environ, "FLOWER_BASIC_AUTH": flower_basic_auth(settings)}
