"""The CLI's one error type: something the user can fix, printed as one line (exit code 2)."""

from __future__ import annotations


class CliError(Exception):
    """An error the user can fix; printed as one line."""
