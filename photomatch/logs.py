"""Structured logs for every service process: one JSON object per line, through structlog.

Events have stable dotted names (`photos.process.failed`) and carry ids as fields (`photo_id`,
`event_id`). Records from other libraries (uvicorn, Celery, SQLAlchemy) go through the same
renderer. Secrets never reach a log line: attendee codes, link tokens, API keys and signatures are
cut out of every string field, and the access log's query strings with them (`redact`).
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any, Literal

import structlog
from structlog.typing import EventDict, WrappedLogger

# Query parameters and form-ish fields whose values are secrets: the attendee code, the signed
# attendee-link token, signed download URLs, API keys.
SECRET_PARAMS = ("code", "access_code", "t", "token", "sig", "key", "api_key", "X-Amz-Signature", "X-Amz-Credential")
_SECRET_QUERY = re.compile(r"([?&;](?:" + "|".join(map(re.escape, SECRET_PARAMS)) + r")=)[^&;\s\"']*", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)\S+", re.IGNORECASE)
REDACTED = "[redacted]"
# Fields never logged, whatever their value (a caller passing a selfie or an embedding by mistake).
_DROPPED_FIELDS = frozenset({"embedding", "embeddings", "selfie", "image", "data", "password", "secret_key"})


def redact_text(text: str) -> str:
    """`text` with secret query values and bearer tokens replaced by [redacted]."""
    return _BEARER.sub(r"\1" + REDACTED, _SECRET_QUERY.sub(r"\1" + REDACTED, text))


def redact(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: drop forbidden fields and scrub secrets out of every string value."""
    for name in list(event_dict):
        value = event_dict[name]
        if name in _DROPPED_FIELDS or name in SECRET_PARAMS and name != "key":
            event_dict[name] = REDACTED
        elif isinstance(value, str):
            event_dict[name] = redact_text(value)
    return event_dict


def _access_fields(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """uvicorn's access record as fields (`http.request`, method, path, status) instead of one string."""
    record = event_dict.get("_record")
    args = event_dict.pop("positional_args", None)
    if record is not None and record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
        client, method, path, _, status = args
        event_dict.update(event="http.request", client=client, method=method, path=path, status=status)
    event_dict.pop("message", None)  # a copy of the unredacted text, left by another formatter
    return event_dict


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def configure_logging(level: str | int = "INFO", fmt: Literal["json", "console"] = "json") -> None:
    """Route structlog and the standard library's logging through one JSON (or console) renderer on stderr.

    It replaces every handler of the root logger, so a second call replaces the first.
    """
    shared = _shared_processors()
    renderer: Any = structlog.processors.JSONRenderer(default=str) if fmt == "json" else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, _access_fields, structlog.stdlib.ExtraAdder()],
        pass_foreign_args=True,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.set_name("photomatch")
    root = logging.getLogger()
    # Only ours: another handler (the CLI's basicConfig) would print the same records unredacted.
    root.handlers = [handler]
    root.setLevel(level.upper() if isinstance(level, str) else level)
    # uvicorn and Celery attach their own handlers unless told not to; theirs would print twice.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "celery", "celery.task"):
        lg = logging.getLogger(name)
        lg.handlers = []
        lg.propagate = True
        # logging.config.fileConfig (Alembic's env.py runs it) disables every logger that exists by
        # then, and an earlier uvicorn.Config may have raised their levels; start from neutral.
        lg.disabled = False
        lg.setLevel(logging.NOTSET)


def _configure_plain() -> None:
    """Until a service calls configure_logging (tests, the CLI, notebooks): key=value text through the
    standard library's own handlers, so pytest's caplog and basicConfig see every event."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.format_exc_info,
            redact,
            structlog.processors.KeyValueRenderer(key_order=["event"], drop_missing=True),
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


if not structlog.is_configured():
    _configure_plain()


def get_logger(name: str) -> Any:
    """A structlog logger: `log.info("photos.process.failed", photo_id=..., reason=...)`."""
    return structlog.stdlib.get_logger(name)
