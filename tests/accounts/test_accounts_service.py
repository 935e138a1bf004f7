"""Photographer accounts and API keys against the real database."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from photomatch.accounts.service import (
    AccountError,
    authenticate,
    create_api_key,
    create_photographer,
    find_api_key,
    hash_key,
    revoke_api_key,
)
from photomatch.models import ApiKey


def test_key_is_stored_only_as_its_hash(db_session: Session) -> None:
    photographer, raw = create_photographer(db_session, "Ann", "Ann@Example.com")
    assert photographer.email == "ann@example.com"
    row = db_session.scalars(select(ApiKey).where(ApiKey.photographer_id == photographer.id)).one()
    assert row.key_hash == hashlib.sha256(raw.encode()).hexdigest() == hash_key(raw)
    assert raw.startswith(f"pm_{row.prefix}_")
    assert raw not in (row.key_hash, row.prefix)
    assert len(raw) > 40


def test_authenticate_accepts_the_key_and_records_use(db_session: Session) -> None:
    photographer, raw = create_photographer(db_session, "Ann", "ann@example.com")
    assert authenticate(db_session, raw) is photographer
    key = find_api_key(db_session, raw)
    assert key is not None and key.last_used_at is not None
    assert datetime.now(UTC) - key.last_used_at < timedelta(minutes=1)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda k: k[:-1] + ("A" if k[-1] != "A" else "B"),  # right prefix, wrong secret
        lambda k: "pm_unknown1_" + k.split("_", 2)[2],  # unknown prefix
        lambda k: k.replace("pm_", "xx_", 1),
        lambda k: "",
        lambda k: "pm__",
        lambda k: "not-a-key",
    ],
)
def test_authenticate_refuses_wrong_keys(db_session: Session, mangle) -> None:  # type: ignore[no-untyped-def]
    _, raw = create_photographer(db_session, "Ann", "ann@example.com")
    assert authenticate(db_session, mangle(raw)) is None


def test_revoked_key_is_refused_and_others_still_work(db_session: Session) -> None:
    photographer, first = create_photographer(db_session, "Ann", "ann@example.com")
    second = create_api_key(db_session, photographer)
    key = find_api_key(db_session, first)
    assert key is not None
    revoke_api_key(db_session, key)
    assert authenticate(db_session, first) is None
    assert authenticate(db_session, second) is photographer


def test_keys_do_not_cross_photographers(db_session: Session) -> None:
    ann, ann_key = create_photographer(db_session, "Ann", "ann@example.com")
    bob, bob_key = create_photographer(db_session, "Bob", "bob@example.com")
    assert authenticate(db_session, ann_key) is ann
    assert authenticate(db_session, bob_key) is bob


def test_duplicate_or_bad_email_is_a_clear_error(db_session: Session) -> None:
    create_photographer(db_session, "Ann", "ann@example.com")
    with pytest.raises(AccountError, match="already exists"):
        create_photographer(db_session, "Ann again", "ANN@example.com")
    with pytest.raises(AccountError, match="not an email"):
        create_photographer(db_session, "Bob", "bob")


def test_new_key_prefixes_have_no_underscore_and_never_start_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    """'_' would break splitting `pm_<prefix>_<secret>`; a leading '-' made `photomatch photographer
    revoke-key <prefix>` read the prefix as an option (a CLI test failed on one key in 64)."""
    import secrets

    from photomatch.accounts import service

    drawn = iter(["-uUBIvsY", "ab_cdefg", "Zq-3xY9k", "s" * 43])
    monkeypatch.setattr(secrets, "token_urlsafe", lambda n: next(drawn))
    prefix, raw = service._new_raw_key()
    assert prefix == "Zq-3xY9k" and raw == f"pm_Zq-3xY9k_{'s' * 43}"
