"""A test's session as a transaction boundary, for library code that takes one (photomatch.db.Transaction)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from photomatch.db import Transaction, commit, rollback


def boundary(session: Session) -> Transaction:
    """Each unit of work runs on `session` and commits (sending its after-commit work) or rolls back."""

    @contextmanager
    def transaction() -> Iterator[Session]:
        try:
            yield session
        except BaseException:
            rollback(session)
            raise
        commit(session)

    return transaction
