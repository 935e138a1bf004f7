"""Service and ingest subcommands: api, worker, beat, flower, db, photographer, event, upload, import, run."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from cli import imports, stack, status, upload
from cli.argv import beat_argv, flower_argv, flower_env, worker_argv
from cli.errors import CliError, refuse_uncalibrated
from photomatch.config import get_settings
from photomatch.queue import QUEUES


def register(sub: Any) -> None:
    """Add the service, account, event, upload, import and run subcommands."""
    p = sub.add_parser("api", help="serve the HTTP API (uvicorn)")
    p.add_argument("--host", default=None, help="default: PHOTOMATCH_API_HOST (127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="default: PHOTOMATCH_API_PORT (8000)")
    p.add_argument("--log-level", default="info")
    p.set_defaults(handler=cmd_api)

    p = sub.add_parser("worker", help="run a Celery worker")
    p.add_argument("--queues", "-Q", default=",".join(QUEUES), help="comma-separated: faces, cpu (default: both)")
    p.add_argument("--pool", choices=["solo", "threads", "prefork"], default=None,
                   help="default: solo when consuming faces, prefork otherwise")  # fmt: skip
    p.add_argument("--concurrency", type=int, default=None, help="pool size (threads/prefork)")
    p.add_argument("--name", default=None, help="node name (default: <queues>@<host>)")
    p.add_argument("--loglevel", default="info")
    p.set_defaults(handler=cmd_worker)

    p = sub.add_parser("beat", help="run the Celery beat scheduler (the reconciler)")
    p.add_argument("--loglevel", default="info")
    p.set_defaults(handler=cmd_beat)

    p = sub.add_parser("flower", help="run Flower, the Celery web monitor")
    p.add_argument("--port", type=int, default=None, help="default: PHOTOMATCH_FLOWER_PORT (5555)")
    p.add_argument("--address", default="127.0.0.1")
    p.set_defaults(handler=cmd_flower)

    db = sub.add_parser("db", help="database maintenance").add_subparsers(dest="db_command", required=True)
    p = db.add_parser("upgrade", help="apply migrations (embedded Postgres unless PHOTOMATCH_DATABASE_URL is set)")
    p.add_argument("--revision", default="head")
    p.set_defaults(handler=cmd_db_upgrade)

    ph = sub.add_parser("photographer", help="photographer accounts").add_subparsers(dest="ph_command", required=True)
    p = ph.add_parser("create", help="create a photographer and print their API key (shown once)")
    p.add_argument("name")
    p.add_argument("email")
    p.add_argument("--no-save", action="store_true", help="do not save the key to data_dir/credentials.json")
    p.set_defaults(handler=cmd_photographer_create)

    p = ph.add_parser("keys", help="list a photographer's API keys (prefix, created, last used, revoked)")
    p.add_argument("email")
    p.set_defaults(handler=cmd_photographer_keys)
    p = ph.add_parser("new-key", help="give a photographer another API key (shown once)")
    p.add_argument("email")
    p.set_defaults(handler=cmd_photographer_new_key)
    p = ph.add_parser(
        "revoke-key", help="revoke an API key by its prefix (the part after pm_); it stops working at once"
    )
    p.add_argument("prefix", help="a prefix that starts with '-' (keys made before 2026-12-07) goes after --")
    p.set_defaults(handler=cmd_photographer_revoke_key)

    ev = sub.add_parser("event", help="events").add_subparsers(dest="event_command", required=True)
    p = ev.add_parser("create", help="create an event (through the API with --api, else directly in the database)")
    p.add_argument("name")
    p.add_argument("--slug", default=None)
    p.add_argument("--retention-days", type=int, default=None)
    p.add_argument("--api", default=None, help="API base URL; without it the database is used directly")
    p.add_argument("--key", default=None, help="API key (default: PHOTOMATCH_API_KEY or the saved credentials)")
    p.add_argument("--email", default=None, help="direct mode: the owning photographer's email instead of a key")
    p.set_defaults(handler=cmd_event_create)
    p = ev.add_parser(
        "fuse",
        help="search events created without a second embedder with both models: record it and queue their"
        " photos for its vectors (directly in the database; watch progress with `photomatch status`)",
    )
    p.add_argument("slugs", nargs="*", help="the events; or --all")
    p.add_argument("--all", action="store_true", help="every event of the calibrated model without a second one")
    p.add_argument("--model", default=None, help="the second embedder (default: PHOTOMATCH_SECOND_EMBEDDER)")
    p.set_defaults(handler=cmd_event_fuse)

    upload.register(sub)
    imports.register(sub)
    status.register(sub)
    stack.register(sub)


def _settings(*, postgres: bool = True, redis: bool = True) -> Any:
    """The process settings, with the embedded Postgres and Redis attached where no URL is set: for the
    commands that use them, called before they do."""
    from cli.embedded import attach

    try:
        return attach(get_settings(), postgres=postgres, redis=redis)
    except RuntimeError as e:  # the embedded servers explain themselves
        raise CliError(str(e)) from None


def _exec(argv: list[str]) -> int:
    """Replace this process with `argv` so signals (Ctrl-C, SIGTERM) reach the service directly; it
    inherits the service URLs this process attached to."""
    s = get_settings()
    env = dict(os.environ)
    for name, value in (("PHOTOMATCH_DATABASE_URL", s.database_url), ("PHOTOMATCH_REDIS_URL", s.redis_url)):
        if value:
            env[name] = value
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(argv[0], argv, env)
    return 0  # not reached


def cmd_api(args: argparse.Namespace) -> int:
    """Serve api.main:create_app with uvicorn."""
    import uvicorn

    from photomatch.logs import configure_logging

    refuse_uncalibrated(get_settings())
    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    uvicorn.run(
        "api.main:create_app",
        factory=True,
        host=args.host or settings.api_host,
        port=args.port or settings.api_port,
        log_level=args.log_level,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        # Our handler (JSON, redacted) instead of uvicorn's own formatters.
        log_config=None,
    )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Run a Celery worker on the chosen queues."""
    refuse_uncalibrated(get_settings())
    _settings()
    return _exec(worker_argv(args.queues, args.pool, args.concurrency, args.name, args.loglevel))


def cmd_beat(args: argparse.Namespace) -> int:
    """Run Celery beat (periodic reconciler)."""
    _settings(postgres=False)  # beat only sends: the broker, no database
    return _exec(beat_argv(args.loglevel))


def cmd_flower(args: argparse.Namespace) -> int:
    """Run Flower."""
    env = flower_env(os.environ)
    if "FLOWER_BASIC_AUTH" not in os.environ:
        print(f"Flower login: {env['FLOWER_BASIC_AUTH']}  (generated; set FLOWER_BASIC_AUTH to choose one)", flush=True)
    os.environ.update(env)
    return _exec(flower_argv(args.port or _settings(postgres=False).flower_port, args.address))


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """Apply migrations up to --revision."""
    from photomatch.migrate import upgrade

    upgrade(_settings(redis=False).database_url, args.revision)
    print(f"database upgraded to {args.revision}")
    return 0


def cmd_photographer_create(args: argparse.Namespace) -> int:
    """Create a photographer; print (and save) the API key."""
    from cli import credentials
    from photomatch.accounts.service import AccountError, create_photographer
    from photomatch.db import session_scope

    settings = _settings(redis=False)
    try:
        with session_scope() as session:
            photographer, key = create_photographer(session, args.name, args.email)
    except AccountError as e:
        raise CliError(str(e)) from None
    print(f"photographer {photographer.name} <{photographer.email}> created")
    print(f"API key (shown once): {key}")
    if not args.no_save:
        path = credentials.save(settings, api_key=key, email=photographer.email)
        print(f"saved to {path} (photomatch upload and event create use it)")
    return 0


def _photographer(session: Any, email: str) -> Any:
    from photomatch.accounts.service import get_photographer_by_email

    photographer = get_photographer_by_email(session, email)
    if photographer is None:
        raise CliError(f"no photographer with email {email}")
    return photographer


def cmd_photographer_keys(args: argparse.Namespace) -> int:
    """Print the photographer's keys: only their public prefixes, never the keys (stored hashed)."""
    _settings(redis=False)
    from photomatch.accounts.service import list_api_keys
    from photomatch.db import session_scope

    with session_scope() as session:
        keys = list_api_keys(session, _photographer(session, args.email))
        print(f"{'PREFIX':<14} {'CREATED':<17} {'LAST USED':<17} STATUS")
        for k in keys:
            used = f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "never"
            state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
            print(f"{k.prefix:<14} {k.created_at:%Y-%m-%d %H:%M} {used:<17} {state}")
    return 0


def cmd_photographer_new_key(args: argparse.Namespace) -> int:
    """Create another key for the photographer (e.g. before revoking a leaked one)."""
    _settings(redis=False)
    from photomatch.accounts.service import create_api_key
    from photomatch.db import session_scope

    with session_scope() as session:
        key = create_api_key(session, _photographer(session, args.email))
    print(f"API key (shown once): {key}")
    return 0


def cmd_photographer_revoke_key(args: argparse.Namespace) -> int:
    """Revoke a key by prefix: requests with it get 401 from now on."""
    _settings(redis=False)
    from photomatch.accounts.service import AccountError, revoke_api_key_by_prefix
    from photomatch.db import session_scope

    try:
        with session_scope() as session:
            key = revoke_api_key_by_prefix(session, args.prefix)
    except AccountError as e:
        raise CliError(str(e)) from None
    print(f"API key {key.prefix} revoked")
    return 0


def cmd_event_create(args: argparse.Namespace) -> int:
    """Create an event over the API (--api) or directly in the database."""
    from cli import credentials

    # Through the API nothing local is needed; directly, the database is (attached here).
    settings = get_settings() if args.api else _settings(redis=False)
    creds = credentials.resolve(settings, args.api, args.key)
    if args.api:
        from cli.client import ApiClient

        with ApiClient(creds) as client:
            event = client.create_event(args.name, slug=args.slug, retention_days=args.retention_days)
    else:
        event = _create_event_direct(args, creds.api_key)
    print(f"event {event['name']!r} created: slug {event['slug']}, access code {event['access_code']}")
    if event.get("attendee_url"):
        print(f"attendee link: {event['attendee_url']}")
    return 0


def _create_event_direct(args: argparse.Namespace, api_key: str | None) -> dict[str, Any]:
    from photomatch.accounts.service import authenticate, get_photographer_by_email
    from photomatch.db import session_scope
    from photomatch.events.service import EventError, attendee_path, create_event

    with session_scope() as session:
        if args.email:
            photographer = get_photographer_by_email(session, args.email)
        elif api_key:
            photographer = authenticate(session, api_key)
        else:
            raise CliError("no photographer: pass --email, --key, or create one with `photomatch photographer create`")
        if photographer is None:
            raise CliError("unknown photographer (check --email or the API key)")
        try:
            event = create_event(session, photographer, args.name, slug=args.slug, retention_days=args.retention_days)
        except EventError as e:
            raise CliError(str(e)) from None
        return {
            "name": event.name,
            "slug": event.slug,
            "access_code": event.access_code,
            "attendee_url": attendee_path(event),
        }


def cmd_event_fuse(args: argparse.Namespace) -> int:
    """Add the second embedder to the named events (or all that lack one); queue their photos."""
    _settings()
    from photomatch.db import session_scope
    from photomatch.events.service import get_event
    from photomatch.photos.second_embedder import SecondEmbedderError, add_second_embedder, events_to_fuse

    if bool(args.slugs) == bool(args.all):
        raise CliError("name the events to fuse, or pass --all")
    queued: list[tuple[str, int]] = []
    with session_scope() as session:
        if args.all:
            events = events_to_fuse(session)
        else:
            found = {slug: get_event(session, slug) for slug in args.slugs}
            if missing := [slug for slug, event in found.items() if event is None]:
                raise CliError(f"no event {missing[0]!r}")
            events = [e for e in found.values() if e is not None]
        for event in events:
            try:
                queued.append((event.slug, add_second_embedder(session, event, args.model, settings=_settings())))
            except SecondEmbedderError as e:
                raise CliError(str(e)) from None
    for slug, photos in queued:
        print(f"event {slug}: {photos} photos queued for the second model's vectors")
    if not queued:
        print("no event needs a second embedder")
    return 0
