"""Imports from a storage prefix, tracked in Postgres: every key's outcome, duplicate deliveries, lost
messages sent again by the reconciler, and what the photographer sees. Real Postgres and storage."""

from __future__ import annotations

import io
import uuid
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image
from sqlalchemy.orm import Session

from photomatch.accounts.service import create_photographer
from photomatch.config import Settings
from photomatch.events.service import create_event
from photomatch.models import Event, ImportItem, ImportStatus, Photo
from photomatch.photos import imports, service
from photomatch.photos.ingest import Outcome
from photomatch.storage import LocalStorage

PREFIX = "imports/card-1/"


def jpeg(seed: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(out, "JPEG")
    return out.getvalue()


@pytest.fixture
def event(db_session: Session, tmp_path: Any) -> Event:
    settings = Settings(environment="test", data_dir=tmp_path / "data")
    photographer, _ = create_photographer(db_session, "Ann", f"ann-{uuid.uuid4().hex[:8]}@example.com")
    return create_event(db_session, photographer, "Card dump", settings=settings)


@pytest.fixture
def card(local_storage: LocalStorage) -> list[str]:
    """A prefix with two photos, a copy of the first, and a text file named like a photo."""
    objects = {"a.jpg": jpeg(1), "b.jpg": jpeg(2), "copy-of-a.jpg": jpeg(1), "notes.jpg": b"not a photo at all"}
    for name, data in objects.items():
        local_storage.put(PREFIX + name, data, "application/octet-stream")
    return sorted(PREFIX + name for name in objects)


def items(session: Session, event: Event) -> dict[str, ImportItem]:
    session.expire_all()
    rows = session.scalars(sa.select(ImportItem).where(ImportItem.event_id == event.id))
    return {r.source_key.removeprefix(PREFIX): r for r in rows}


def test_every_object_is_recorded_before_its_copy_and_each_outcome_after(
    db_session: Session, local_storage: LocalStorage, event: Event, card: list[str]
) -> None:
    assert imports.start_import(db_session, local_storage, event, PREFIX) == (4, 1)
    assert {k: r.status for k, r in items(db_session, event).items()} == {
        k.removeprefix(PREFIX): ImportStatus.PENDING for k in card
    }
    st = service.event_status(db_session, event)
    assert (st.total, st.importing, st.remaining, st.import_rejected) == (0, 4, 4, 0)  # status waits for them

    results = imports.import_batch(db_session, local_storage, event.id, card)
    assert [r.outcome for r in results] == [Outcome.CREATED, Outcome.CREATED, Outcome.DUPLICATE, Outcome.REJECTED]
    rows = items(db_session, event)
    assert {k: r.status for k, r in rows.items()} == {
        "a.jpg": ImportStatus.DONE,
        "b.jpg": ImportStatus.DONE,
        "copy-of-a.jpg": ImportStatus.DONE,
        "notes.jpg": ImportStatus.REJECTED,
    }
    assert rows["copy-of-a.jpg"].photo_id == rows["a.jpg"].photo_id is not None  # the photo it duplicates
    assert rows["notes.jpg"].photo_id is None
    assert (rows["notes.jpg"].reason or "").startswith("unsupported_format: ")

    st = service.event_status(db_session, event)
    assert (st.total, st.importing, st.remaining, st.import_rejected) == (2, 0, 2, 1)  # 2 photos to process
    total, rejected = imports.list_rejected(db_session, event)
    assert total == 1 and [(r.key, r.reason) for r in rejected] == [(PREFIX + "notes.jpg", rows["notes.jpg"].reason)]

    # A duplicate delivery of the same task copies nothing.
    assert imports.import_batch(db_session, local_storage, event.id, card) == []
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Photo)) == 2

    # The photographer fixes the bad object and imports the prefix again: it is retried, the rest
    # are duplicates of what the event holds.
    local_storage.put(PREFIX + "notes.jpg", jpeg(3), "image/jpeg")
    assert imports.start_import(db_session, local_storage, event, PREFIX) == (4, 1)
    again = imports.import_batch(db_session, local_storage, event.id, card)
    assert [r.outcome for r in again] == [Outcome.DUPLICATE, Outcome.DUPLICATE, Outcome.DUPLICATE, Outcome.CREATED]
    st = service.event_status(db_session, event)
    assert (st.total, st.importing, st.import_rejected) == (3, 0, 0)


def test_a_task_sent_before_import_items_existed_is_still_imported_once(
    db_session: Session, local_storage: LocalStorage, event: Event, card: list[str]
) -> None:
    results = imports.import_batch(db_session, local_storage, event.id, card[:1])
    assert [r.outcome for r in results] == [Outcome.CREATED]
    assert items(db_session, event)["a.jpg"].status == ImportStatus.DONE
    assert imports.import_batch(db_session, local_storage, event.id, card[:1]) == []


def test_the_reconciler_sends_lost_keys_again_and_rejects_those_sent_too_often(
    db_session: Session, local_storage: LocalStorage, event: Event, card: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[tuple[uuid.UUID, list[str]]] = []
    monkeypatch.setattr(imports, "enqueue_import", lambda _s, event_id, keys, **_: sent.append((event_id, keys)) or 1)
    imports.start_import(db_session, local_storage, event, PREFIX)
    imports.import_batch(db_session, local_storage, event.id, card[:1])  # a.jpg arrived; Redis lost the rest
    sent.clear()
    lost, hopeless, fresh = card[1], card[2], card[3]
    ago = sa.func.now() - timedelta(seconds=600)
    for key, attempts in ((lost, 0), (hopeless, 5), (card[0], 0)):
        db_session.execute(
            sa.update(ImportItem).where(ImportItem.source_key == key).values(updated_at=ago, attempts=attempts)
        )

    result = imports.requeue_lost(db_session, older_than_seconds=300, max_attempts=5)
    assert (result.requeued, result.rejected) == (1, 1)
    assert sent == [(event.id, [lost])]  # neither the fresh key nor the done one
    rows = items(db_session, event)
    assert rows[lost.removeprefix(PREFIX)].attempts == 1
    assert rows[hopeless.removeprefix(PREFIX)].status == ImportStatus.REJECTED
    assert "did not finish after 6 sends" in (rows[hopeless.removeprefix(PREFIX)].reason or "")
    assert rows[fresh.removeprefix(PREFIX)].status == ImportStatus.PENDING
    # Sent again counts as freshly sent: the next run leaves it alone for another bound.
    assert imports.requeue_lost(db_session, older_than_seconds=300, max_attempts=5).requeued == 0
