"""Rate limits on the attendee doors: selfie search, code entry (/join, /api/resolve) and wrong codes.

A search is a face-lookup oracle and an attendee code can be guessed, so these limits are a privacy
control as much as a load control. They use the `limits` library on the Redis that carries the
work, with its sliding-window-counter strategy: each limit keeps a counter per window and weighs
the previous window by how much of it still overlaps, so a burst at a window's edge cannot double
the rate. Every API process shares the same counters.

Rules (Settings can change each; `<n>/<period>`, several joined by `;`):

- `search`: per client address and per event; a wedding of 300 people searching at once stays far
  below the per-event limit, a script walking one face through many events does not.
- `code_entry`: per client, on every code lookup (`/join`, `/api/resolve`).
- `code_failure`: wrong codes (lookups and searches), per client and across the whole site. The
  site-wide budget bounds how fast *any* number of addresses can guess: see README "Reliability"
  for the arithmetic. Only wrong codes count, and a spent site budget must not lock honest
  attendees out: while it is spent, an address with no wrong code that day still gets its code
  checked (`recent_code_failure`), so one try each; an address that guessed wrong waits.

When Redis cannot be reached the limits fail open, with a warning in the log: losing the broker
must not also take search away from attendees.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from limits import RateLimitItem, parse_many
from limits.storage import storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter

from photomatch.config import Settings
from photomatch.errors import UserError
from photomatch.logs import get_logger

log = get_logger(__name__)
_PREFIX = "photomatch-ratelimit"


class RateLimited(UserError):
    """Too many requests; `Retry-After` says when the oldest counted one leaves the window."""

    reason = "rate_limited"
    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)
        self.headers = {"Retry-After": str(self.retry_after)}


@dataclass(frozen=True)
class Rule:
    """A named set of limits, each applying to every key passed with it."""

    name: str
    limits: Sequence[RateLimitItem]
    message: str


class RateLimiter:
    """The site's limits, counted in Redis."""

    def __init__(self, settings: Settings, redis_url: str) -> None:
        self.enabled = settings.rate_limits_enabled
        self._url = redis_url
        self.search = Rule(
            "search", parse_many(settings.rate_limit_search), "Too many searches. Wait a moment and try again."
        )
        self.event_search = Rule(
            "event-search",
            parse_many(settings.rate_limit_event_search),
            "This event is getting too many searches right now. Try again in a moment.",
        )
        self.code_entry = Rule(
            "code", parse_many(settings.rate_limit_code_entry), "Too many codes entered. Wait a moment and try again."
        )
        self.code_failure = Rule(
            "code-failure",
            parse_many(settings.rate_limit_code_failures),
            "Too many wrong codes. Wait a while, or open the link you were given.",
        )
        self.site_code_failure = Rule(
            "site-code-failure",
            parse_many(settings.rate_limit_site_code_failures),
            "Code entry is paused for a moment. Try again shortly, or open the link you were given.",
        )
        # Whether a client guessed wrong within the day: while the site budget is spent, only
        # clients with none get their code checked.
        self.recent_code_failure = Rule(
            "recent-code-failure",
            parse_many("1/day"),
            "Code entry is paused for a moment. Try again later, or open the link you were given.",
        )

    @cached_property
    def _limiter(self) -> SlidingWindowCounterRateLimiter:
        storage = storage_from_string(self._url, key_prefix=_PREFIX, socket_timeout=0.5, socket_connect_timeout=0.5)
        return SlidingWindowCounterRateLimiter(storage)

    def hit(self, rule: Rule, *key: str) -> None:
        """Count one request against every limit of `rule` for `key`; RateLimited if any is spent."""
        self._apply(rule, key, count=True)

    def check(self, rule: Rule, *key: str) -> None:
        """RateLimited if a limit of `rule` is already spent for `key`; counts nothing."""
        self._apply(rule, key, count=False)

    def note(self, rule: Rule, *key: str) -> None:
        """Count one request against `rule` for `key`, never refusing it (a later `check` decides)."""
        self._apply(rule, key, count=True, refuse=False)

    def _apply(self, rule: Rule, key: tuple[str, ...], *, count: bool, refuse: bool = True) -> None:
        if not self.enabled:
            return
        try:
            for item in rule.limits:
                ok = self._limiter.hit(item, rule.name, *key) if count else self._limiter.test(item, rule.name, *key)
                if not ok and refuse:
                    reset_at, _ = self._limiter.get_window_stats(item, rule.name, *key)
                    log.warning("ratelimit.exceeded", rule=rule.name, limit=str(item))
                    raise RateLimited(rule.message, retry_after=int(reset_at - time.time()) + 1)
        except RateLimited:
            raise
        except Exception as e:  # Redis unreachable: fail open, loudly
            log.warning("ratelimit.unavailable", rule=rule.name, error=type(e).__name__)
