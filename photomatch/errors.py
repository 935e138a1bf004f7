"""The one kind of error a user can cause: a stable reason code, a message for people, an HTTP status.

Services raise subclasses of `UserError`; the API maps every one of them in a single exception
handler (api/errors.py), and the workers store `reason: message` as a photo's failure reason.
Anything that is not a UserError is a bug or an outage, and is answered with a bare 500.
"""

from __future__ import annotations

from typing import ClassVar


class UserError(Exception):
    """A request the caller can fix; `reason` is a stable code, str(e) a message to show as it is."""

    reason: str = "invalid_request"
    status: ClassVar[int] = 422
    # Extra response headers (WWW-Authenticate, Retry-After); a subclass or an instance may set them.
    headers: dict[str, str] | None = None

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason

    @property
    def public_message(self) -> str:
        """What the client is told (some errors know more than they may say)."""
        return str(self)
