"""The tiers a search applies: the calibration's, or a request's within the configured bounds."""

from __future__ import annotations

from photomatch.config import Settings
from photomatch.search.calibration import Calibration
from photomatch.search.errors import InvalidThresholds
from photomatch.search.ranking import Tiers


def resolve_thresholds(
    settings: Settings, match: float | None, possible: float | None, calibration: Calibration
) -> Tiers:
    """The request's tier thresholds (minimum probabilities), defaulting to the calibrated ones.

    InvalidThresholds if one is out of bounds or the possible tier would demand more than matches.
    A threshold nobody asked for (request or settings) stays None: the ranking applies the
    calibration it actually used (photomatch.search.ranking.Tiers).
    """
    asked_m = match if match is not None else settings.search_match_probability
    asked_p = possible if possible is not None else settings.search_possible_probability
    m = asked_m if asked_m is not None else calibration.match
    p = asked_p if asked_p is not None else calibration.possible
    # A possible tier stricter than the matches' would be empty, which is fine when only the
    # match threshold was raised; the reverse cannot be expressed as two tiers.
    if match is not None and possible is None:
        p = min(p, m)
    if possible is not None and match is None:
        m = max(m, p)
    lo, hi = settings.search_threshold_min, settings.search_threshold_max
    if not (lo <= m <= hi and lo <= p <= hi):
        raise InvalidThresholds(f"thresholds are probabilities between {lo} and {hi}")
    if p > m:
        raise InvalidThresholds("possible_threshold must not be larger than match_threshold")
    return Tiers(
        match=m if asked_m is not None or asked_p is not None else None,
        possible=p if asked_p is not None or asked_m is not None else None,
    )
