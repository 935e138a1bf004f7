"""SQL for photographers and API keys."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from photomatch.models import ApiKey, Photographer


def add_photographer(session: Session, name: str, email: str) -> Photographer:
    """Insert a photographer and flush (the caller's boundary commits)."""
    photographer = Photographer(name=name, email=email)
    session.add(photographer)
    session.flush()
    return photographer


def get_photographer(session: Session, photographer_id: uuid.UUID) -> Photographer | None:
    """The photographer with this id, if any."""
    return session.get(Photographer, photographer_id)


def get_photographer_by_email(session: Session, email: str) -> Photographer | None:
    """The photographer with this (lower-cased) email, if any."""
    return session.scalars(select(Photographer).where(Photographer.email == email)).one_or_none()


def add_api_key(session: Session, photographer_id: uuid.UUID, prefix: str, key_hash: str) -> ApiKey:
    """Insert an API key row and flush."""
    key = ApiKey(photographer_id=photographer_id, prefix=prefix, key_hash=key_hash)
    session.add(key)
    session.flush()
    return key


def get_api_key_by_prefix(session: Session, prefix: str) -> ApiKey | None:
    """The key row with this prefix, revoked or not."""
    return session.scalars(select(ApiKey).where(ApiKey.prefix == prefix)).one_or_none()


def list_api_keys(session: Session, photographer_id: uuid.UUID) -> list[ApiKey]:
    """Every key of the photographer, newest first (revoked ones included)."""
    return list(
        session.scalars(
            select(ApiKey).where(ApiKey.photographer_id == photographer_id).order_by(ApiKey.created_at.desc())
        )
    )
