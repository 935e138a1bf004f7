"""An HNSW index of its own for each big event: search stays fast at a million faces per event.

Small events are searched by an exact scan of their faces (photomatch.search.repository), which is
both exact and fastest there. Its cost grows with the event's faces, so once an event holds
`search_index_min_faces` faces of a model, a partial HNSW index covering only that event's faces
of that model is built:

    CREATE INDEX CONCURRENTLY faces_ann_<event>_<model> ON faces
        USING hnsw ((embedding::halfvec(<dimension>)) halfvec_l2_ops) WHERE event_id = '<event>' AND model = '<model>'

A global HNSW index was measured and rejected (bench/search_strategy.py): pgvector filters by event
*after* the approximate scan, so an event's faces were mostly missed. Inside a partial index every
neighbour belongs to the event, nothing is filtered afterwards, and pgvector's iterative scan can
return as many of them as the search asks for. bench/search.py measures both paths at 10k, 100k
and 1M faces and the size above which the index wins.

Indexes are created by a periodic task (`cpu.search.index_events`), concurrently, so uploads and
searches go on while one builds; a search uses an index only once Postgres marks it valid. They
are dropped with their event.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from photomatch.db import Transaction
from photomatch.logs import get_logger

log = get_logger(__name__)

PREFIX = "faces_ann_"
# HNSW graph parameters, measured in bench/search.py on clustered faces: pgvector's defaults
# (m 16, ef_construction 64) reached recall@100 0.976 at 100k faces even with ef_search 400;
# these reach 1.0 for a 4x longer build.
M = 32
EF_CONSTRUCTION = 128
# pgvector's iterative scan mode for searches through the index.
ITERATIVE_SCAN = "strict_order"


def index_name(event_id: uuid.UUID, model: str) -> str:
    """The index of one event's faces of one model (a model name may hold any characters)."""
    return f"{PREFIX}{event_id.hex}_{hashlib.sha1(model.encode()).hexdigest()[:8]}"


def lock_key(event_id: uuid.UUID, model: str) -> int:
    """The Postgres advisory lock a build of this index holds (a signed 64-bit key)."""
    return int.from_bytes(hashlib.sha1(index_name(event_id, model).encode()).digest()[:8], "big", signed=True)


@dataclass(frozen=True)
class EventIndex:
    """A valid per-event index, and the faces it held when Postgres last counted them."""

    name: str
    faces: int


_VALID_INDEX = text(
    "SELECT c.relname, c.reltuples FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid "
    "WHERE c.relname = :name AND i.indisvalid AND i.indisready"
)


def event_index(session: Session | Connection, event_id: uuid.UUID, model: str) -> EventIndex | None:
    """The event's valid index for `model`, if it has one (one catalogue lookup)."""
    row = session.execute(_VALID_INDEX, {"name": index_name(event_id, model)}).first()
    return None if row is None else EventIndex(row.relname, max(0, int(row.reltuples)))


def events_to_index(session: Session, min_faces: int) -> list[tuple[uuid.UUID, str, int]]:
    """(event, model, faces) of every event at or above `min_faces` faces of a model without a valid index."""
    rows = session.execute(
        text(
            "SELECT event_id, model, count(*) AS faces FROM faces GROUP BY event_id, model "
            "HAVING count(*) >= :min ORDER BY count(*) DESC"
        ),
        {"min": min_faces},
    ).all()
    return [(r.event_id, r.model, int(r.faces)) for r in rows if event_index(session, r.event_id, r.model) is None]


def create_event_index(engine: Engine, event_id: uuid.UUID, model: str, *, build_memory: str) -> float:
    """Build the event's index for `model` concurrently (a leftover invalid one is dropped first); seconds taken.

    Runs outside any transaction, on its own connection: CREATE INDEX CONCURRENTLY must, and it
    lets writes to the faces table go on during the build. The embedding column has no fixed
    dimension (models differ), so the index is on `embedding::halfvec(<the model's dimension>)`,
    the expression a search orders by.
    """
    name = index_name(event_id, model)
    started = time.perf_counter()
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        dims = conn.execute(
            text("SELECT vector_dims(embedding) FROM faces WHERE event_id = :e AND model = :m LIMIT 1"),
            {"e": event_id, "m": model},
        ).scalar_one()
        # The graph is built in memory when it fits: several times faster than spilling.
        conn.execute(text("SELECT set_config('maintenance_work_mem', :m, false)"), {"m": build_memory})
        conn.execute(text(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"'))
        # The identifiers are generated (hex) and the literals bound by Postgres' quote_literal.
        predicate = conn.execute(
            text("SELECT format('event_id = %L::uuid AND model = %L', CAST(:e AS text), CAST(:m AS text))"),
            {"e": str(event_id), "m": model},
        ).scalar_one()
        try:
            conn.execute(
                text(
                    f'CREATE INDEX CONCURRENTLY "{name}" ON faces '
                    f"USING hnsw ((embedding::halfvec({int(dims)})) halfvec_l2_ops) "
                    f"WITH (m = {M}, ef_construction = {EF_CONSTRUCTION}) WHERE {predicate}"
                )
            )
        finally:
            # The connection goes back to the pool: its next user gets the server's setting.
            conn.execute(text("RESET maintenance_work_mem"))
    seconds = time.perf_counter() - started
    log.info("search.index.built", event_id=event_id, model=model, index=name, seconds=round(seconds, 1))
    return seconds


def drop_event_indexes(session: Session, event_id: uuid.UUID) -> list[str]:
    """Drop every index of this event, in the caller's transaction (the one deleting its faces).

    Only events that have one pay for the brief exclusive lock a DROP INDEX takes on the table.
    """
    names = list(
        session.execute(
            text("SELECT relname FROM pg_class WHERE relkind = 'i' AND relname LIKE :p"),
            {"p": f"{PREFIX}{event_id.hex}\\_%"},
        ).scalars()
    )
    for name in names:
        session.execute(text(f'DROP INDEX IF EXISTS "{name}"'))
    if names:
        log.info("search.index.dropped", event_id=event_id, indexes=names)
    return names


@dataclass
class IndexRun:
    """What one run of `index_big_events` did."""

    built: list[tuple[uuid.UUID, str, int]]  # (event, model, faces)
    busy: list[tuple[uuid.UUID, str]]  # being built by another run


def index_big_events(transaction: Transaction, engine: Engine, *, min_faces: int, build_memory: str) -> IndexRun:
    """Build the missing index of every event with at least `min_faces` faces of a model, biggest first.

    The events are listed in a transaction of the caller's (`transaction`), which ends before any
    build starts: a concurrent build waits for every open transaction on the table. A build holds a
    Postgres advisory lock for its (event, model), so two runs (a build can outlast the schedule's
    interval) never build, or drop, the same index at once.
    """
    run = IndexRun(built=[], busy=[])
    with transaction() as session:
        todo = events_to_index(session, min_faces)
    for event_id, model, faces in todo:
        with engine.connect() as lock:
            lock = lock.execution_options(isolation_level="AUTOCOMMIT")
            key = lock_key(event_id, model)
            if not lock.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar_one():
                run.busy.append((event_id, model))
                continue
            try:
                # Another run may have finished it since the list was made.
                if event_index(lock, event_id, model) is None:
                    create_event_index(engine, event_id, model, build_memory=build_memory)
                    run.built.append((event_id, model, faces))
            finally:
                lock.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
    return run
