"""`photomatch status SLUG`: an event's processing progress from the API, optionally until it is finished."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, TextIO

from tqdm import tqdm

from cli.client import ApiClient, ApiError
from cli.errors import CliError

_POLL_SECONDS = 1.0


def register(sub: Any) -> None:
    """Add `photomatch status`."""
    p = sub.add_parser("status", help="an event's processing status (counts, faces, photos/s, ETA)")
    p.add_argument("event", help="the event's slug")
    p.add_argument("--wait", action="store_true", help="poll until no photo is waiting or processing")
    p.add_argument("--timeout", type=float, default=None, help="with --wait: give up after this many seconds")
    p.add_argument("--api", default=None, help="API base URL")
    p.add_argument("--key", default=None, help="API key")
    p.set_defaults(handler=cmd_status)


def fetch_status(client: ApiClient, slug: str) -> dict[str, Any]:
    """GET /events/{slug}/status."""
    try:
        result: dict[str, Any] = client.request("GET", f"/events/{slug}/status")
    except ApiError as e:
        raise CliError(f"no event {slug!r} for this API key" if e.status_code == 404 else e.detail) from None
    return result


def format_status(st: dict[str, Any]) -> str:
    """One line: counts per status, faces, rate and ETA."""
    counts = ", ".join(f"{n} {name}" for name, n in st["counts"].items())
    line = f"{st['event']}: {st['total']} photos ({counts}); {st['faces']} faces"
    if st.get("importing"):
        line += f"; {_objects(st['importing'])} still importing"
    if st["remaining"]:
        eta = "unknown" if st["eta_seconds"] is None else f"{st['eta_seconds']:.0f}s"
        line += f"; {st['photos_per_second']:.2f} photos/s, ETA {eta}"
    if st.get("second_embedding_pending"):
        line += f"; {st['second_embedding_pending']} photos still getting the second model's vectors"
    if st.get("import_rejected"):
        line += f"; {_objects(st['import_rejected'])} not imported"
    return line


def _objects(n: int) -> str:
    return f"{n} object{'' if n == 1 else 's'}"


def cmd_status(args: argparse.Namespace) -> int:
    """Print the status; with --wait, show a progress bar until done. Exit 1 if photos failed (or --wait timed out)."""
    from cli import credentials
    from photomatch.config import get_settings

    creds = credentials.resolve(get_settings(), args.api, args.key)
    with ApiClient(creds) as client:
        st = fetch_status(client, args.event)
        if args.wait and st["remaining"]:
            st = wait(client, args.event, st, args.timeout)
    return finish(st, creds.api_url, args.event, waited=args.wait, out=sys.stdout)


def finish(st: dict[str, Any], api_url: str, slug: str, *, waited: bool, out: TextIO) -> int:
    """Print the status line and where failures are listed; the exit code: 1 if photos failed, objects
    were not imported, or a wait ended with work remaining."""
    print(format_status(st), file=out)
    if st["counts"].get("failed"):
        print(f"list the failures: GET {api_url}/events/{slug}/photos/failed", file=sys.stderr)
    if st.get("import_rejected"):
        print(f"list the objects not imported: GET {api_url}/events/{slug}/imports/rejected", file=sys.stderr)
    return 1 if st["counts"].get("failed") or st.get("import_rejected") or (waited and st["remaining"]) else 0


def wait(client: ApiClient, slug: str, st: dict[str, Any], timeout: float | None) -> dict[str, Any]:
    """Poll the status with a progress bar until nothing remains (or `timeout` seconds pass)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    with tqdm(total=st["total"], desc="processing", unit="photo", file=sys.stderr) as bar:
        while True:
            # Objects still importing will be photos: the bar counts them from the start.
            bar.total = st["total"] + st.get("importing", 0)
            bar.n = bar.total - st["remaining"]
            bar.set_postfix(faces=st["faces"], failed=st["counts"].get("failed", 0))
            bar.refresh()
            if not st["remaining"] or (deadline is not None and time.monotonic() > deadline):
                return st
            time.sleep(_POLL_SECONDS)
            st = fetch_status(client, slug)
