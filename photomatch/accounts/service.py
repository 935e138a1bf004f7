"""Photographer accounts and API keys: creation, hashing and authentication."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from photomatch.accounts import repository
from photomatch.errors import UserError
from photomatch.logs import get_logger
from photomatch.models import ApiKey, Photographer

log = get_logger(__name__)

# Raw keys look like `pm_<prefix>_<secret>`: the prefix finds the row without a hash index scan
# and is safe to show in logs; the secret carries the entropy (32 bytes, base64url).
KEY_SCHEME = "pm"
_PREFIX_BYTES = 6  # 8 base64url characters
_SECRET_BYTES = 32
# last_used_at is informational; refreshing it at most this often keeps every authenticated
# request from being a write.
_LAST_USED_RESOLUTION = timedelta(minutes=1)


class AccountError(UserError, ValueError):
    """A user-fixable problem creating an account (e.g. the email is taken)."""

    reason = "invalid_account"


def hash_key(raw_key: str) -> str:
    """Hex SHA-256 of a raw API key, as stored in api_keys.key_hash."""
    return hashlib.sha256(raw_key.encode()).hexdigest()


def _split_key(raw_key: str) -> str | None:
    """The prefix of a well-formed raw key, else None."""
    parts = raw_key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_SCHEME or not parts[1] or not parts[2]:
        return None
    return parts[1]


def _new_raw_key() -> tuple[str, str]:
    # base64url may contain '_', which would break splitting, and start with '-', which a command
    # line reads as an option (`photomatch photographer revoke-key -uUB...` failed one key in 64):
    # regenerate until the prefix has neither.
    while True:
        prefix = secrets.token_urlsafe(_PREFIX_BYTES)
        if "_" not in prefix and not prefix.startswith("-"):
            return prefix, f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(_SECRET_BYTES)}"


def normalize_email(email: str) -> str:
    """Lower-cased, trimmed email; raises AccountError if it is obviously not an address."""
    email = email.strip().lower()
    local, _, domain = email.partition("@")
    if not local or "." not in domain or " " in email:
        raise AccountError(f"not an email address: {email!r}")
    return email


def create_api_key(session: Session, photographer: Photographer) -> str:
    """Create a new API key for `photographer`; return the raw key (shown once, never stored)."""
    prefix, raw_key = _new_raw_key()
    repository.add_api_key(session, photographer.id, prefix, hash_key(raw_key))
    log.info("accounts.api_key.created", photographer_id=photographer.id, prefix=prefix)
    return raw_key


def create_photographer(session: Session, name: str, email: str) -> tuple[Photographer, str]:
    """Create a photographer with a first API key; return it and the raw key."""
    name = name.strip()
    if not name:
        raise AccountError("a photographer needs a name")
    email = normalize_email(email)
    if repository.get_photographer_by_email(session, email) is not None:
        raise AccountError(f"a photographer with email {email} already exists")
    photographer = repository.add_photographer(session, name, email)
    log.info("accounts.photographer.created", photographer_id=photographer.id)
    return photographer, create_api_key(session, photographer)


def get_photographer_by_email(session: Session, email: str) -> Photographer | None:
    """The photographer with this email (case-insensitive), if any."""
    return repository.get_photographer_by_email(session, email.strip().lower())


def revoke_api_key(session: Session, key: ApiKey) -> None:
    """Refuse `key` from now on."""
    key.revoked_at = datetime.now(UTC)
    session.flush()
    log.info("accounts.api_key.revoked", prefix=key.prefix)


def list_api_keys(session: Session, photographer: Photographer) -> list[ApiKey]:
    """The photographer's keys (prefix, created, last used, revoked), newest first; never the keys themselves."""
    return repository.list_api_keys(session, photographer.id)


def revoke_api_key_by_prefix(session: Session, prefix: str) -> ApiKey:
    """Revoke the key with this public prefix; AccountError if there is none or it is already revoked."""
    key = repository.get_api_key_by_prefix(session, prefix.strip())
    if key is None:
        raise AccountError(f"no API key with prefix {prefix!r}")
    if key.revoked_at is not None:
        raise AccountError(f"the key {prefix} was already revoked on {key.revoked_at:%Y-%m-%d %H:%M}")
    revoke_api_key(session, key)
    return key


def find_api_key(session: Session, raw_key: str) -> ApiKey | None:
    """The row of a raw key, if the key is well-formed and its prefix is known (no hash check)."""
    prefix = _split_key(raw_key)
    return None if prefix is None else repository.get_api_key_by_prefix(session, prefix)


def authenticate(session: Session, raw_key: str) -> Photographer | None:
    """The photographer owning `raw_key`, or None if it is unknown, wrong or revoked."""
    key = find_api_key(session, raw_key)
    # Constant-time compare: the prefix is public, the remainder must not leak byte by byte.
    if key is None or not hmac.compare_digest(key.key_hash, hash_key(raw_key)):
        return None
    if key.revoked_at is not None:
        log.info("accounts.auth.revoked", prefix=key.prefix)
        return None
    now = datetime.now(UTC)
    if key.last_used_at is None or now - key.last_used_at > _LAST_USED_RESOLUTION:
        key.last_used_at = now
        session.flush()
    return repository.get_photographer(session, key.photographer_id)
