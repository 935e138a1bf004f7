"""Synthetic events of realistic shape in Postgres: clustered unit vectors through the real schema.

People appear several times per event; same-person distances ~0.35, different people ~0.65, like
dlib's embeddings. bench/search_strategy.py and bench/search.py time searches over them.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any

import numpy as np
import psycopg

MODEL = "dlib-resnet-v1"


DIM = 128


DB = "bench_search"


FACES_PER_PHOTO = 6


# Same-person and different-person squared distances of the synthetic embeddings: E|a-b|^2 is
# 2*d*var for the parts a and b do not share (see make_embeddings).
SAME_D2 = 0.35**2


OTHER_D2 = 0.65**2


def conninfo(url: str, database: str) -> str:
    """A libpq conninfo for `database` on the embedded server."""
    base = url.replace("postgresql+psycopg://", "postgresql://", 1)
    return base.replace("/postgres?", f"/{database}?", 1)


def make_embeddings(
    rng: np.random.Generator, identity: np.ndarray, centroids: np.ndarray, mean: np.ndarray
) -> np.ndarray:
    """Unit vectors: a shared mean direction + a per-person offset + per-photo noise."""
    noise = rng.standard_normal((len(identity), DIM)).astype(np.float32) * np.sqrt(SAME_D2 / 2 / DIM)
    v = mean + centroids[identity] + noise
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def people(rng: np.random.Generator, n: int) -> np.ndarray:
    """Per-person offsets."""
    return rng.standard_normal((n, DIM)).astype(np.float32) * np.sqrt((OTHER_D2 - SAME_D2) / 2 / DIM)


def copy_payload(rows: np.ndarray, event_no: np.ndarray, photo_no: np.ndarray, emb: np.ndarray) -> bytes:
    """COPY BINARY data for (row_no int4, event_no int4, photo_no int4, embedding halfvec), built in numpy."""
    dtype = np.dtype(
        [
            ("nf", ">i2"),
            ("l1", ">i4"),
            ("row", ">i4"),
            ("l2", ">i4"),
            ("ev", ">i4"),
            ("l3", ">i4"),
            ("ph", ">i4"),
            ("l4", ">i4"),
            ("dim", ">i2"),
            ("unused", ">i2"),
            ("x", ">f2", (DIM,)),
        ]
    )
    a = np.zeros(len(rows), dtype=dtype)
    a["nf"], a["l1"], a["l2"], a["l3"], a["l4"] = 4, 4, 4, 4, 4 + 2 * DIM
    a["row"], a["ev"], a["ph"], a["dim"] = rows, event_no, photo_no, DIM
    a["x"] = emb.astype(np.float16)
    return a.tobytes()


def generate_events(
    conn: psycopg.Connection, sizes: list[int], rng: np.random.Generator, second_model: str | None = None
) -> dict[str, Any]:
    """Events e0, e1, ... (codes C0, C1, ...) of these many faces; the identities needed to make queries.

    With `second_model`, events fuse that model too, and every face's second vector is a copy of its
    first: the same row layout and work per search as real fused faces (bench/search.py times it).
    """
    mean = rng.standard_normal(DIM).astype(np.float32)
    mean *= np.sqrt(1 - OTHER_D2 / 2) / np.linalg.norm(mean)
    conn.execute("CREATE UNLOGGED TABLE stage (row_no int, event_no int, photo_no int, embedding halfvec)")
    t0 = time.perf_counter()
    chunks: list[tuple[int, int, int, np.ndarray]] = []  # (event, first photo, n faces, embeddings)
    events: dict[int, dict[str, Any]] = {}
    photo = 0
    for e, n in enumerate(sizes):
        # ~8 appearances per person on average, but skewed: a few people are in many photos.
        n_people = max(1, n // 8)
        weights = rng.pareto(1.5, n_people) + 1
        identity = rng.choice(n_people, size=n, p=weights / weights.sum())
        centroids = people(rng, n_people)
        emb = make_embeddings(rng, identity, centroids, mean)
        events[e] = {"centroids": centroids, "identity": identity}
        # Photos are processed in batches of 16, so an event's faces arrive in runs of ~100 rows
        # interleaved with other events' runs: the heap is not sorted by event.
        for start in range(0, n, 16 * FACES_PER_PHOTO):
            m = min(16 * FACES_PER_PHOTO, n - start)
            chunks.append((e, photo + start // FACES_PER_PHOTO, m, emb[start : start + m]))
        photo += (n + FACES_PER_PHOTO - 1) // FACES_PER_PHOTO
    order = rng.permutation(len(chunks))
    row = 0
    with conn.cursor().copy("COPY stage FROM STDIN WITH (FORMAT BINARY)") as cp:
        cp.write(b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") * 2)
        for c in order:
            e, first_photo, m, emb = chunks[c]
            photos = first_photo + np.arange(m) // FACES_PER_PHOTO
            cp.write(copy_payload(np.arange(row, row + m), np.full(m, e), photos, emb))
            row += m
        cp.write((-1).to_bytes(2, "big", signed=True))
    conn.execute(
        "INSERT INTO photographers (id, name, email) VALUES ('00000000-0000-0000-0000-000000000001', 'b', 'b@x')"
    )
    conn.execute(
        """INSERT INTO events (id, photographer_id, name, slug, access_code, retention_until, embedder,
                               second_embedder)
           SELECT md5('e' || e)::uuid, '00000000-0000-0000-0000-000000000001', 'e' || e, 'e' || e,
                  'C' || e, current_date + 90, %s, %s
           FROM generate_series(0, %s) e""",
        (MODEL, second_model, len(sizes) - 1),
    )
    conn.execute(
        """INSERT INTO photos (id, event_id, storage_key, original_filename, sha256, size_bytes, content_type,
                               status, width, height, face_count)
           SELECT DISTINCT ON (photo_no) md5('p' || photo_no)::uuid, md5('e' || event_no)::uuid,
                  'k/' || photo_no, photo_no || '.jpg', md5('s' || photo_no) || md5('t' || photo_no), 1,
                  'image/jpeg', 'done', 4000, 3000, 6
           FROM stage ORDER BY photo_no"""
    )
    conn.execute(
        """INSERT INTO faces (photo_id, event_id, box, landmarks, probability, size_px, sharpness, model, embedding,
                              second_model, second_embedding)
           SELECT md5('p' || photo_no)::uuid, md5('e' || event_no)::uuid, '{0,0,100,100}',
                  '{0,0,0,0,0,0,0,0,0,0}', 0.99, 100, 50, %s, embedding,
                  %s, CASE WHEN %s::text IS NULL THEN NULL ELSE embedding END
           FROM stage ORDER BY row_no""",
        (MODEL, second_model, second_model),
    )
    conn.execute("DROP TABLE stage")
    conn.commit()
    conn.autocommit = True
    conn.execute("VACUUM ANALYZE")
    conn.autocommit = False
    return {"events": events, "mean": mean, "sizes": sizes, "seconds": round(time.perf_counter() - t0, 1)}


def event_uuid(e: int) -> uuid.UUID:
    """The id generate_events gives event number `e` (md5('e' || e)::uuid in its SQL)."""
    return uuid.UUID(hashlib.md5(f"e{e}".encode()).hexdigest())


def replay_events(sizes: list[int], rng: np.random.Generator) -> dict[str, Any]:
    """The people of a database made by generate_events(sizes) from the same seed, without writing anything."""
    mean = rng.standard_normal(DIM).astype(np.float32)
    mean *= np.sqrt(1 - OTHER_D2 / 2) / np.linalg.norm(mean)
    events = {}
    for e, n in enumerate(sizes):
        n_people = max(1, n // 8)
        weights = rng.pareto(1.5, n_people) + 1
        identity = rng.choice(n_people, size=n, p=weights / weights.sum())
        centroids = people(rng, n_people)
        make_embeddings(rng, identity, centroids, mean)  # consume the same draws as generate()
        events[e] = {"centroids": centroids, "identity": identity}
    return {"events": events, "mean": mean, "sizes": sizes}
