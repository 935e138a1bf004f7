"""What an attendee can get wrong in a search: each a UserError with its own reason and status."""

from __future__ import annotations

from photomatch.errors import UserError


class SearchError(UserError):
    """A problem the attendee can fix; str(e) is the message to show."""

    reason = "search_error"


class MissingCredentials(SearchError):
    """Neither an access code nor a link token was sent."""

    reason = "missing_credentials"
    status = 401


class InvalidCredentials(SearchError):
    """The access code or the link token does not open this event."""

    reason = "invalid_credentials"
    status = 403


class InvalidThresholds(SearchError):
    """Requested thresholds outside the configured bounds."""

    reason = "invalid_thresholds"


class ConsentRequired(SearchError):
    """The attendee has not agreed to have their selfie compared with the event's faces."""

    reason = "consent_required"
    status = 422


class UnusableSelfie(SearchError):
    """The selfie cannot be searched with: not an image, no face, too small or too blurred."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message, reason=reason)


class NoPhotos(SearchError):
    """A zip was asked for with no photo of this event."""

    reason = "no_photos"
    status = 404


class TooManyPhotos(SearchError):
    """A zip asked for more photos than one download may hold."""

    reason = "too_many_photos"
