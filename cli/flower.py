"""Flower with its Prometheus page behind the same login as the rest of it: `python -m cli.flower`.

Flower serves /metrics (every task name, worker host name and count) without asking for its login:
its handler lacks the `authenticated` guard its pages and API carry. This entry point adds that
guard, then hands over to Celery's command line exactly as `celery ... flower` would. /healthcheck,
which answers only "OK", stays open for liveness probes.
"""

from __future__ import annotations

import sys


def guard_metrics() -> None:
    """Put Flower's /metrics handler behind its login (basic auth or OAuth), as its pages are."""
    from flower.views import monitor
    from tornado.web import authenticated

    if not getattr(monitor.Metrics.get, "_photomatch_guarded", False):
        guarded = authenticated(monitor.Metrics.get)
        guarded._photomatch_guarded = True  # type: ignore[attr-defined]
        monitor.Metrics.get = guarded  # type: ignore[method-assign]


def main() -> None:
    """Guard /metrics, then run `celery <argv>` (the argv flower_argv builds)."""
    guard_metrics()
    from celery.__main__ import main as celery_main

    sys.argv[0] = "celery"
    celery_main()


if __name__ == "__main__":
    main()
