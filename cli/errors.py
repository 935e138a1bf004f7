"""The CLI's one error type: something the user can fix, printed as one line (exit code 2)."""

from __future__ import annotations

from typing import Any


class CliError(Exception):
    """An error the user can fix; printed as one line."""


def refuse_uncalibrated(settings: Any) -> None:
    """CliError before any service starts when search has no calibration for this site's engine."""
    from photomatch.search.calibration import NotCalibrated, require_calibrated

    try:
        require_calibrated(settings)
    except NotCalibrated as e:
        raise CliError(str(e)) from None
