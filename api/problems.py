"""What a client of the API can get wrong outside a service: each a UserError with its reason and status."""

from __future__ import annotations

from photomatch.errors import UserError


class MissingApiKey(UserError):
    """No API key was sent to a photographer's route."""

    reason = "missing_api_key"
    status = 401
    headers = {"WWW-Authenticate": "Bearer"}


class InvalidApiKey(MissingApiKey):
    """The API key is unknown or revoked."""

    reason = "invalid_api_key"


class EventNotFound(UserError):
    """The photographer has no event with this slug (another photographer's reads the same)."""

    reason = "event_not_found"
    status = 404


class CodeNotFound(UserError):
    """No event has this access code."""

    reason = "unknown_code"
    status = 404


class NotFound(UserError):
    """No such file or page."""

    reason = "not_found"
    status = 404


class InvalidLink(UserError):
    """A signed file link that is forged or expired."""

    reason = "invalid_link"
    status = 403


class MetricsTokenRequired(UserError):
    """/metrics without the metrics token."""

    reason = "metrics_token_required"
    status = 401


class TooManyFiles(UserError):
    """More files in one upload request than it may carry."""

    reason = "too_many_files"
    status = 400


class NoDirectUploads(UserError):
    """Presigned uploads asked of local storage, which has none."""

    reason = "no_direct_uploads"
    status = 409


class QueueUnavailable(UserError):
    """The task queue could not take the work (the rows are kept)."""

    reason = "queue_unavailable"
    status = 503
