"""Per-event face search: exact scan versus an HNSW index with pgvector 0.8 iterative scans.

Builds a synthetic faces table of realistic shape in an embedded Postgres (the real schema, via the
migrations): many ordinary events plus one big one, with clustered unit vectors (people appear
several times per event; same-person distances ~0.35, different people ~0.65, like dlib's
embeddings), then times the search query for each strategy and measures recall@k against the
exact answer of the same query.

    uv run python bench/search_strategy.py [--events 500 --event-faces 2000 --big-event 50000]

Prints one JSON object. The database lives under bench/out/search-strategy/ and is reused when the
scale matches (pass --rebuild to regenerate).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from bench.lib.synthetic_events import (
    DB,
    DIM,
    MODEL,
    conninfo,
    event_uuid,
    generate_events,
    make_embeddings,
    replay_events,
)
from cli.embedded import start_postgres, stop_postgres
from photomatch.migrate import upgrade

OUT = Path(__file__).resolve().parent / "out" / "search-strategy"
INDEX = "ix_faces_embedding_hnsw_bench"


def generate(conn: psycopg.Connection, args: argparse.Namespace, rng: np.random.Generator) -> dict[str, Any]:
    """Fill events, photos and faces; return the per-event identities needed to make queries."""
    return generate_events(conn, [args.event_faces] * args.events + ([args.big_event] if args.big_event else []), rng)


QUERY = f"""
SELECT f.id, f.embedding::halfvec({DIM}) <-> %(q)s::halfvec({DIM}) AS distance
FROM faces f JOIN photos p ON p.id = f.photo_id AND p.event_id = f.event_id
WHERE f.event_id = %(e)s AND f.model = %(m)s AND p.status = 'done'
ORDER BY f.embedding::halfvec({DIM}) <-> %(q)s::halfvec({DIM})
LIMIT %(k)s
"""


# pgvector 0.8's recipe for relaxed_order: over-fetch in a materialized CTE, then sort exactly.
QUERY_CTE = f"""
WITH c AS MATERIALIZED ({QUERY.replace("LIMIT %(k)s", "LIMIT %(k4)s").strip()})
SELECT id, distance FROM c ORDER BY distance LIMIT %(k)s
"""


def scalar(conn: psycopg.Connection, sql: str) -> Any:
    """The single value of a one-row query."""
    row = conn.execute(sql).fetchone()
    assert row is not None
    return row[0]


def vec_text(v: np.ndarray) -> str:
    """pgvector's text form of a vector."""
    return "[" + ",".join(f"{x:.5f}" for x in v) + "]"


def run_queries(
    conn: psycopg.Connection, queries: list[dict[str, Any]], k: int, sql: str = QUERY
) -> tuple[list[float], list[list[int]]]:
    """Per-query latency (ms) and result ids, after one warm-up pass over the same queries."""
    for q in queries:  # warm the caches: steady-state latency, not disk reads after generation
        conn.execute(sql, {**q, "k": k, "k4": 4 * k}).fetchall()
    times, results = [], []
    for q in queries:
        t0 = time.perf_counter()
        rows = conn.execute(sql, {**q, "k": k, "k4": 4 * k}).fetchall()
        times.append((time.perf_counter() - t0) * 1000)
        results.append([r[0] for r in rows])
    return times, results


def summary(times: list[float], results: list[list[int]], exact: list[list[int]] | None, k: int) -> dict[str, Any]:
    """Latency percentiles and recall@k against the exact results."""
    out: dict[str, Any] = {
        "p50_ms": round(statistics.median(times), 2),
        "p95_ms": round(float(np.percentile(times, 95)), 2),
        "mean_results": round(float(np.mean([len(r) for r in results])), 1),
    }
    if exact is not None:
        recalls = [len(set(r) & set(x)) / max(1, min(k, len(x))) for r, x in zip(results, exact, strict=True)]
        out["recall_at_k"] = round(float(np.mean(recalls)), 4)
        out["min_recall"] = round(float(np.min(recalls)), 4)
    return out


def plan(conn: psycopg.Connection, query: dict[str, Any], k: int, sql: str = QUERY) -> str:
    """How the planner reaches the event's faces: the index it scans, or a sequential scan."""
    rows = conn.execute("EXPLAIN " + sql, {**query, "k": k, "k4": 4 * k}).fetchall()
    text = "\n".join(r[0] for r in rows)
    for name in (INDEX, "ix_faces_event_id_model", "ix_faces_photo_id"):
        if name in text:
            return name
    return "seq scan" if "Seq Scan on faces" in text else "other"


def make_queries(data: dict[str, Any], rng: np.random.Generator, n_small: int, n_big: int) -> dict[str, list]:
    """Queries: a new photo of a person present in the event (a selfie)."""
    out: dict[str, list] = {"small": [], "big": []}
    n_events = len(data["sizes"])
    big = n_events - 1 if data["sizes"][-1] != data["sizes"][0] else None
    plan_ = [("small", int(rng.integers(n_events - (big is not None)))) for _ in range(n_small)]
    if big is not None:
        plan_ += [("big", big) for _ in range(n_big)]
    for kind, e in plan_:
        ev = data["events"][e]
        person = int(ev["identity"][rng.integers(len(ev["identity"]))])
        v = make_embeddings(rng, np.array([person]), ev["centroids"], data["mean"])[0]
        out[kind].append({"q": vec_text(v), "e": str(event_uuid(e)), "m": MODEL})
    return out


def main(argv: list[str] | None = None) -> int:
    """Build (or reuse) the data, time every strategy, print JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=500)
    ap.add_argument("--event-faces", type=int, default=2000)
    ap.add_argument("--big-event", type=int, default=50_000)
    ap.add_argument("--queries", type=int, default=100, help="queries on ordinary events")
    ap.add_argument("--big-queries", type=int, default=50)
    ap.add_argument("--k", type=int, default=100, help="LIMIT of the search query")
    ap.add_argument("--ef-search", default="40,100,400")
    ap.add_argument("--max-scan-tuples", default="20000,200000")
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rebuild", action="store_true", help="regenerate the data (and the index)")
    ap.add_argument("--rebuild-index", action="store_true", help="rebuild the HNSW index only")
    ap.add_argument("--stop", action="store_true", help="stop the bench Postgres afterwards")
    args = ap.parse_args(argv)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731 - progress on stderr, JSON on stdout

    OUT.mkdir(parents=True, exist_ok=True)
    url = start_postgres(OUT)
    scale = f"{args.events}x{args.event_faces}+{args.big_event}/seed{args.seed}"
    rng = np.random.default_rng(args.seed)
    admin = psycopg.connect(conninfo(url, "postgres"), autocommit=True)
    marker = OUT / "scale.txt"
    fresh = args.rebuild or not marker.is_file() or marker.read_text() != scale
    report: dict[str, Any] = {"scale": scale, "dim": DIM, "k": args.k}
    if fresh:
        admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DB}")
        upgrade(url.replace("/postgres?", f"/{DB}?", 1))
    conn = psycopg.connect(conninfo(url, DB))
    if fresh:
        log(f"generating {scale} ...")
        data = generate(conn, args, rng)
        marker.write_text(scale)
        (OUT / f"{INDEX}.json").unlink(missing_ok=True)
        report["generate_seconds"] = data["seconds"]
    else:
        # Same seed, same draws: regenerate the in-memory people without touching the database.
        data = _replay(args, rng)
    report["faces"] = scalar(conn, "SELECT count(*) FROM faces")
    report["table_mb"] = round(
        scalar(conn, "SELECT pg_total_relation_size('faces')") / 2**20,
        1,
    )
    conn.commit()
    queries = make_queries(data, np.random.default_rng(args.seed + 1), args.queries, args.big_queries)
    settings = {
        r[0]: r[1]
        for r in conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN "
            "('shared_buffers', 'work_mem', 'max_parallel_workers_per_gather')"
        )
    }
    report["postgres"] = {
        "version": scalar(conn, "SHOW server_version"),
        "pgvector": scalar(conn, "SELECT extversion FROM pg_extension WHERE extname = 'vector'"),
        **settings,
    }
    conn.commit()

    # Measure the plans each strategy gets for this very event, not a generic plan cached after
    # five executions of the prepared statement (see photomatch/search/repository.py).
    conn.execute("SET plan_cache_mode = force_custom_plan")
    conn.commit()
    index_exists = scalar(conn, f"SELECT count(*) FROM pg_indexes WHERE indexname = '{INDEX}'") > 0
    build_marker = OUT / f"{INDEX}.json"
    if index_exists and args.rebuild_index:
        conn.execute(f"DROP INDEX {INDEX}")
        conn.commit()
        index_exists = False

    results: dict[str, Any] = {}
    exact: dict[str, list[list[int]]] = {}
    # DDL is transactional: hide the HNSW index inside a transaction, measure, roll back.
    conn.execute(f"DROP INDEX IF EXISTS {INDEX}")
    for kind, qs in queries.items():
        if not qs:
            continue
        times, res = run_queries(conn, qs, args.k)
        exact[kind] = res
        results[f"exact/{kind}"] = {**summary(times, res, None, args.k), "plan": plan(conn, qs[0], args.k)}
        log(f"exact/{kind}: {results[f'exact/{kind}']}")
    conn.rollback()
    results.update(service_latency(url, queries, hide_index=INDEX))

    if not index_exists:
        log("building the HNSW index ...")
        conn.autocommit = True
        conn.execute("SET maintenance_work_mem = '4GB'")
        t0 = time.perf_counter()
        conn.execute(
            f"CREATE INDEX {INDEX} ON faces USING hnsw ((embedding::halfvec({DIM})) halfvec_l2_ops) "
            f"WITH (m = {args.m}, ef_construction = {args.ef_construction}) WHERE model = '{MODEL}'"
        )
        build = {"seconds": round(time.perf_counter() - t0, 1), "m": args.m, "ef_construction": args.ef_construction}
        build_marker.write_text(json.dumps(build))
        conn.execute("ANALYZE faces")
        conn.autocommit = False
    report["hnsw_build"] = json.loads(build_marker.read_text()) if build_marker.is_file() else None
    report["hnsw_mb"] = round(scalar(conn, f"SELECT pg_relation_size('{INDEX}')") / 2**20, 1)
    # With both indexes present, which one does the planner choose on its own?
    for kind, qs in queries.items():
        if qs:
            report[f"planner_choice/{kind}"] = plan(conn, qs[0], args.k)
    conn.rollback()

    for mode in ("off", "relaxed_order"):
        for ef in [int(x) for x in args.ef_search.split(",")]:
            for max_scan in [int(x) for x in args.max_scan_tuples.split(",")] if mode != "off" else [0]:
                # Inside this transaction only, take away every other way to the event's faces
                # (the btrees, a sequential scan) so the planner must use HNSW; then roll back.
                conn.execute("DROP INDEX ix_faces_event_id_model")
                conn.execute("DROP INDEX ix_faces_photo_id")
                conn.execute("SET LOCAL enable_seqscan = off")
                conn.execute(f"SET LOCAL hnsw.ef_search = {ef}")
                conn.execute(f"SET LOCAL hnsw.iterative_scan = {mode}")
                if max_scan:
                    conn.execute(f"SET LOCAL hnsw.max_scan_tuples = {max_scan}")
                shapes = {"": QUERY, "/cte": QUERY_CTE} if mode == "relaxed_order" else {"": QUERY}
                for kind, qs in queries.items():
                    for shape, sql in shapes.items():
                        if not qs:
                            continue
                        times, res = run_queries(conn, qs, args.k, sql)
                        name = f"hnsw/{mode}/ef{ef}" + (f"/max_scan{max_scan}" if max_scan else "") + shape
                        name += f"/{kind}"
                        results[name] = {
                            **summary(times, res, exact[kind], args.k),
                            "plan": plan(conn, qs[0], args.k, sql),
                        }
                        log(f"{name}: {results[name]}")
                conn.rollback()
    report["results"] = results
    conn.close()
    admin.close()
    if args.stop:
        stop_postgres(OUT)
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def service_latency(url: str, queries: dict[str, list], hide_index: str) -> dict[str, Any]:
    """The whole search after the face engine (the scan, cohort, expansion, tiers), as the service runs it."""

    import sqlalchemy

    from photomatch.config import get_settings
    from photomatch.db import make_engine, make_session_factory
    from photomatch.models import Event
    from photomatch.search.calibration import site_calibrations
    from photomatch.search.event_scan import event_embeddings, event_knn
    from photomatch.search.ranking import rank_photos

    settings = get_settings()
    cals = site_calibrations(settings)
    engine = make_engine(url.replace("/postgres?", f"/{DB}?", 1), pool_size=1)
    out: dict[str, Any] = {}
    with make_session_factory(engine)() as session:
        session.execute(sqlalchemy.text(f"DROP INDEX IF EXISTS {hide_index}"))  # rolled back below
        for kind, qs in queries.items():
            times, candidates = [], []
            for rep in range(2):  # the first pass warms the caches
                for q in qs:
                    event = Event(id=uuid.UUID(q["e"]), embedder=MODEL)
                    vector = np.array(json.loads(q["q"]), dtype=np.float32)
                    t0 = time.perf_counter()
                    ranked = rank_photos(
                        vector, event_knn(session, event, settings, cals), event_embeddings(session, event)
                    )
                    if rep:
                        times.append((time.perf_counter() - t0) * 1000)
                        candidates.append(len(ranked.matches) + len(ranked.possible))
            out[f"service/calibrated/{kind}"] = {
                "p50_ms": round(statistics.median(times), 2),
                "p95_ms": round(float(np.percentile(times, 95)), 2),
                "mean_photos_shown": round(float(np.mean(candidates)), 1),
            }
        session.rollback()
    engine.dispose()
    return out


def _replay(args: argparse.Namespace, rng: np.random.Generator) -> dict[str, Any]:
    """The people of a database made by generate() with the same arguments, without writing anything."""
    return replay_events([args.event_faces] * args.events + ([args.big_event] if args.big_event else []), rng)


if __name__ == "__main__":
    sys.exit(main())
