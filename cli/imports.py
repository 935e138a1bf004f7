"""`photomatch import PREFIX --event SLUG`: import the photos under a prefix of the storage bucket.

For albums already in object storage (a card reader's sync, another tool's export): nothing passes
through this machine. The API records every image under the prefix and workers copy them into the
event; `--wait` follows the copies and the processing to the end, like `photomatch status --wait`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cli.client import ApiClient, ApiError
from cli.errors import CliError
from cli.status import fetch_status, finish, wait


def register(sub: Any) -> None:
    """Add `photomatch import`."""
    p = sub.add_parser("import", help="import the photos under a prefix of the storage bucket into an event")
    p.add_argument("prefix", help="a prefix of the bucket (local storage: a folder in it), e.g. imports/wedding/")
    p.add_argument("--event", required=True, help="the event's slug")
    p.add_argument("--wait", action="store_true", help="follow the copies and the processing until done")
    p.add_argument("--timeout", type=float, default=None, help="with --wait: give up after this many seconds")
    p.add_argument("--api", default=None, help="API base URL")
    p.add_argument("--key", default=None, help="API key")
    p.set_defaults(handler=cmd_import)


def cmd_import(args: argparse.Namespace) -> int:
    """Start the import; with --wait, follow it. Exit 1 if objects were rejected or photos failed."""
    from cli import credentials
    from photomatch.config import get_settings

    creds = credentials.resolve(get_settings(), args.api, args.key)
    with ApiClient(creds) as client:
        client.get_event(args.event)  # a wrong slug or key fails here with its own message
        try:
            started = client.request(
                "POST", f"/events/{args.event}/import", body=lambda: {"json": {"prefix": args.prefix}}
            )
        except ApiError as e:
            raise CliError(e.detail) from None
        print(f"{started['found']} images found under {started['prefix']!r}: importing into event {args.event!r}")
        if not args.wait:
            print(f"follow the import with: photomatch status {args.event} --wait")
            return 0
        st = wait(client, args.event, fetch_status(client, args.event), args.timeout)
    return finish(st, creds.api_url, args.event, waited=True, out=sys.stdout)
