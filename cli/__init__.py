"""`photomatch` command line: one entry point, one module per group of subcommands."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from cli import faces, services
from cli.errors import CliError

# Each module adds its subcommands; a subcommand's handler returns the process exit code.
_MODULES = [faces, services]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every module's subcommands."""
    parser = argparse.ArgumentParser(prog="photomatch", description="Find a person's event photos from a selfie.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in _MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; user errors print one line to stderr and exit non-zero, never a traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except CliError as e:
        print(f"photomatch: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


__all__ = ["CliError", "build_parser", "main"]
