"""Search at festival scale: events of 10k, 100k and 1M faces in one database, exact scan versus each
event's own HNSW index, and selfie search end to end over HTTP.

Builds the real schema in an embedded Postgres (bench/out/search/) holding background events of
2,000 faces plus one event of each size, with clustered synthetic embeddings (people appear several
times, skewed; same-person distances ~0.35, strangers ~0.65, like dlib's; bench/search_strategy.py
`generate_events`). Events at or above `search_index_min_faces` get their index from the product's
own code (photomatch.ann), timed. Then, per event:

- the database time of one product scan (`repository.scan_event`, the product's radius and limit),
  through the event's index and exactly, p50/p95/p99;
- recall@100 (and at the product's limit) of the indexed scan against the exact one;
- the search after the selfie's embedding (both scans, cohort, expansion, tiers) for a new photo
  of a person in the event;
- HTTP end to end with real dev-lfw selfies through the API app (decode, detection and embedding
  on CPU, scan, ranking, the response with signed links), each selfie's person first planted in
  every measured event (8 photos near the selfie), so that searches find matches and expand.

    uv run python bench/search.py [--sizes 10000,100000,1000000] [--queries 100] [--http-queries 40]
        [--churn N] [--answers 10]

--answers N also sends every HTTP search again with N answers ("this is me" / "not me") on its
results and questions, as the page's "Find more" does, and reports that search's p50/p95/p99.

With a second embedder (Settings.second_embedder, on by default) events fuse it: each face also
holds a second vector (a copy of its first, same size and work), scans read its distances, and the
HTTP selfies are embedded by both models, as in the product.

--churn N first plants and deletes the HTTP run's photos N times, as N earlier runs did, and reports
the dead face rows left: whether deleted faces' index entries slow the scans.

Prints one JSON object with the same keys every run. The data is reused while the sizes and the
second model match (--rebuild regenerates it; other --sizes than the stored ones need --rebuild,
since they would drop a database that takes ~15 min to build).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from bench.lib.datasets import dev_data
from bench.lib.synthetic_events import DB, DIM, MODEL, SAME_D2, conninfo, event_uuid, generate_events, replay_events
from cli.embedded import start_postgres
from photomatch.config import Settings, get_settings
from photomatch.migrate import upgrade

OUT = Path(__file__).resolve().parent / "out" / "search"


def pct(ms: list[float]) -> dict[str, float]:
    """p50/p95/p99 of a list of milliseconds."""
    return {
        "p50_ms": round(statistics.median(ms), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
        "n": len(ms),
    }


def database(sizes: list[int], seed: int, rebuild: bool) -> tuple[str, dict[str, Any]]:
    """The URL of a database holding the events (built on first use for these sizes), and their people."""
    url = start_postgres(OUT)
    marker = OUT / "scale.json"
    db_url = url.replace("/postgres?", f"/{DB}?", 1)
    second = get_settings().second_embedder or None
    state = json.loads(marker.read_text()) if marker.is_file() else {}
    if state and not rebuild and state.get("sizes") != sizes:
        # A 1M-face event and its index take ~15 min to rebuild: never drop them by surprise.
        held = sorted(set(state["sizes"]))
        raise SystemExit(f"the stored database holds events of {held} faces, not {sorted(set(sizes))}; pass --rebuild")
    if rebuild or state.get("sizes") != sizes or state.get("second") != second:
        with psycopg.connect(conninfo(url, "postgres"), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{DB}"')
        upgrade(db_url)
        with psycopg.connect(conninfo(url, DB)) as conn:
            data = generate_events(conn, sizes, np.random.default_rng(seed), second)
        state = {"sizes": sizes, "second": second, "generate_s": data["seconds"], "indexes": {}}
        marker.write_text(json.dumps(state))
        return db_url, data
    return db_url, replay_events(sizes, np.random.default_rng(seed))


def build_indexes(settings: Settings, sizes: list[int], events: list[int]) -> dict[str, Any]:
    """The product's per-event index for each of `events`, built now or earlier: build time and size."""
    import sqlalchemy
    from sqlalchemy.orm import Session

    from photomatch import ann
    from photomatch.db import make_engine

    marker = OUT / "scale.json"
    state = json.loads(marker.read_text())
    engine = make_engine(settings.database_url, pool_size=1)
    out: dict[str, Any] = {}
    for e in events:
        event_id = event_uuid(e)
        name = ann.index_name(event_id, MODEL)
        key, params = str(sizes[e]), {"m": ann.M, "ef_construction": ann.EF_CONSTRUCTION}
        built = state["indexes"].get(key)
        with Session(engine) as session:
            exists = ann.event_index(session, event_id, MODEL) is not None
        if not isinstance(built, dict) or built["params"] != params or not exists:
            print(f"building the index of the {sizes[e]}-face event", file=sys.stderr, flush=True)
            seconds = ann.create_event_index(engine, event_id, MODEL, build_memory=settings.search_index_build_memory)
            state["indexes"][key] = {"params": params, "build_s": round(seconds, 1)}
            marker.write_text(json.dumps(state))
        with engine.connect() as conn:
            size_sql = sqlalchemy.text("SELECT pg_relation_size(CAST(:n AS regclass))")
            size = conn.execute(size_sql, {"n": name}).scalar_one()
        out[key] = {"build_s": state["indexes"][key]["build_s"], "size_mb": round(size / 2**20, 1)}
    engine.dispose()
    return out


def queries_for(data: dict[str, Any], e: int, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """New photos of people present in event `e`: a selfie is sharper than most album faces, so its
    noise is half theirs (distance ~0.28 to the person's faces, ~0.6 to strangers), and the search
    finds matches and runs its second, expanded scan, as it does for a real attendee."""
    ev = data["events"][e]
    people = ev["identity"][rng.integers(len(ev["identity"]), size=n)]
    noise = rng.standard_normal((n, DIM)).astype(np.float32) * np.sqrt(SAME_D2 / 2 / DIM) * 0.5
    v = data["mean"] + ev["centroids"][people] + noise
    return list((v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32))


def recall_ids(approx: Any, exact: Any, k: int) -> float:
    """The share of the exact k nearest faces that the indexed scan returned in its first k."""
    truth = exact.nearest_face[:k].tolist()
    return len(set(approx.nearest_face[:k].tolist()) & set(truth)) / max(1, len(truth))


def recall_distance(approx: Any, exact: Any, k: int, eps: float = 1e-3) -> float:
    """ann-benchmarks' recall: the share of the first k returned that are no farther than the exact k-th.

    Faces at the same distance (to halfvec precision) are interchangeable, so counting ids alone
    would call a tie at the k-th place a miss.
    """
    if not len(exact.nearest):
        return 1.0
    kth = exact.nearest[:k][-1]
    return float(np.sum(approx.nearest[:k] <= kth + eps)) / min(k, len(exact.nearest))


def timed(fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    """Milliseconds that fn(*args) took, and its value."""
    t0 = time.perf_counter()
    value = fn(*args)
    return (time.perf_counter() - t0) * 1000, value


def scans(settings: Settings, data: dict[str, Any], sizes: list[int], args: argparse.Namespace) -> dict[str, Any]:
    """Per event: the database time of one scan (indexed and exact), recall, and the search after embedding."""
    from sqlalchemy import select

    from photomatch import ann
    from photomatch.db import make_engine, make_session_factory
    from photomatch.models import Event
    from photomatch.search import repository
    from photomatch.search.calibration import site_calibrations
    from photomatch.search.event_scan import event_embeddings, event_knn
    from photomatch.search.ranking import Query, rank_photos

    engine = make_engine(settings.database_url, pool_size=1)
    limit = settings.search_max_candidates
    cals = site_calibrations(settings)
    out: dict[str, Any] = {}
    rng = np.random.default_rng(args.seed + 1)
    background = len(sizes) - len(args.sizes)
    with make_session_factory(engine)() as session:
        for e in range(background, len(sizes)):
            event_id, n = event_uuid(e), sizes[e]
            queries = queries_for(data, e, args.queries, rng)
            # The exact scan's cost grows with the event: fewer queries where one takes a second.
            n_exact = args.queries if n <= 100_000 else max(20, args.queries // 5)
            indexed = ann.event_index(session, event_id, MODEL) is not None
            row: dict[str, Any] = {"faces": n, "indexed": indexed}
            event = session.scalars(select(Event).where(Event.id == event_id)).one()
            # As the product scans a fused event: the second model's distances of the faces returned
            # (the synthetic second vectors are copies of the first, and so is the query's).
            fused = event.second_embedder

            def scan(q: np.ndarray, exact: bool, eid: Any = event_id, fused: str | None = fused) -> repository.Scan:
                s = repository.scan_event(
                    session,
                    eid,
                    MODEL,
                    q,
                    radius=cals.search.candidate_radius,
                    limit=limit,
                    exact=exact,
                    indexed_limit=settings.search_index_max_candidates,
                    ef_search=settings.search_index_ef_search,
                    second=(fused, q) if fused else None,
                )
                session.rollback()  # one transaction per scan, as a request has
                return s

            for q in queries[:5]:  # warm Postgres' caches
                scan(q, True)
                scan(q, False)
            exact_ms, exact = zip(*(timed(scan, q, True) for q in queries[:n_exact]), strict=True)
            row["exact_scan"] = pct(list(exact_ms))
            if indexed:
                ann_ms, approx = zip(*(timed(scan, q, False) for q in queries), strict=True)
                row["indexed_scan"] = pct(list(ann_ms))
                for k in (100, settings.search_index_max_candidates):
                    at = str(k) if k == 100 else "limit"
                    pairs = list(zip(approx[:n_exact], exact, strict=True))  # queries with both answers
                    by_id = [recall_ids(a, x, k) for a, x in pairs]
                    by_distance = [recall_distance(a, x, k) for a, x in pairs]
                    row[f"recall_at_{at}"] = round(float(np.mean(by_distance)), 4)
                    row[f"min_recall_at_{at}"] = round(float(np.min(by_distance)), 4)
                    row[f"id_recall_at_{at}"] = round(float(np.mean(by_id)), 4)

            row["scans_fused_with"] = fused
            knn, embeddings = event_knn(session, event, settings, cals), event_embeddings(session, event)
            service_ms, expanded, matched = [], [], []
            for q in queries:
                # Fused events: the synthetic second vectors are copies of the first, so is the query's.
                query = Query(q, q, event.second_embedder) if event.second_embedder else q
                ms, ranked = timed(rank_photos, query, knn, embeddings, None, cals)
                session.rollback()
                service_ms.append(ms)
                expanded.append(ranked.expanded_with > 0)
                matched.append(len(ranked.matches))
            row["search_after_embedding"] = {
                **pct(service_ms),
                "fused_with": event.second_embedder,
                "expanded": round(float(np.mean(expanded)), 2),
                "mean_matches": round(float(np.mean(matched)), 1),
            }
            out[str(n)] = row
            print(f"{n}: {row}", file=sys.stderr, flush=True)
    engine.dispose()
    return out


def lfw_selfies(n: int, rng: np.random.Generator) -> list[bytes] | str:
    """`n` real dev-lfw images to search with, or why there are none."""
    from bench.lib.identity_cache import labelled_images

    lfw = dev_data().lfw_dir
    if not (lfw / "MANIFEST.md").is_file():
        return f"dev-lfw not found at {lfw}"
    images = labelled_images(lfw)
    return [images[i][1].read_bytes() for i in rng.permutation(len(images))[:n]]


def churn(settings: Settings, sizes: list[int], args: argparse.Namespace) -> dict[str, Any]:
    """Plant and delete the HTTP run's photos `args.churn` times first, as that many earlier runs did,
    to see whether the deleted faces' index entries slow the scans; and how many dead rows are left."""
    if not args.churn:
        return {"cycles": 0}
    rng = np.random.default_rng(args.seed)
    selfies = lfw_selfies(args.http_queries or 40, rng)  # as many as an HTTP run plants (40 by default)
    if isinstance(selfies, str):
        return {"skipped": selfies}
    background = len(sizes) - len(args.sizes)
    events = [event_uuid(e) for e in range(background, len(sizes))]
    t0 = time.perf_counter()
    for _ in range(args.churn):
        unplant(settings, plant(settings, selfies, events, rng, PLANTED_PER_SELFIE))
    with psycopg.connect(conninfo(settings.database_url, DB)) as conn:
        row = conn.execute(
            "SELECT n_dead_tup, last_autovacuum IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'faces'"
        ).fetchone()
    assert row is not None
    return {
        "cycles": args.churn,
        "faces_deleted": args.churn * len(events) * len(selfies) * PLANTED_PER_SELFIE,
        "seconds": round(time.perf_counter() - t0, 1),
        "dead_faces_left": int(row[0]),
        "autovacuumed": bool(row[1]),
    }


def http(settings: Settings, sizes: list[int], args: argparse.Namespace) -> dict[str, Any]:
    """POST real dev-lfw selfies to each event's search through the API app; p50/p95/p99 end to end."""
    from fastapi.testclient import TestClient

    from api.main import create_app

    if not args.http_queries:
        return {"skipped": "--http-queries 0"}
    rng = np.random.default_rng(args.seed)
    selfies = lfw_selfies(args.http_queries, rng)
    if isinstance(selfies, str):
        return {"skipped": selfies}
    out: dict[str, Any] = {}
    background = len(sizes) - len(args.sizes)
    events = [event_uuid(e) for e in range(background, len(sizes))]
    # With answers, enough of the person's photos that a search shows as many to answer about.
    planted = plant(settings, selfies, events, rng, max(PLANTED_PER_SELFIE, args.answers))
    with TestClient(create_app(settings)) as client:
        for e in range(background, len(sizes)):
            times: list[float] = []
            statuses: dict[str, int] = {}
            found: list[int] = []
            refined: list[float] = []
            answered: list[int] = []
            for rep in range(2):  # the first pass loads the models and warms the caches
                for data in selfies:
                    t0 = time.perf_counter()
                    r = client.post(
                        f"/events/e{e}/search",
                        data={"code": f"C{e}", "consent": "yes"},
                        files={"selfie": ("s.jpg", data)},
                    )
                    ms = (time.perf_counter() - t0) * 1000
                    if rep:
                        times.append(ms)
                        statuses[str(r.status_code)] = statuses.get(str(r.status_code), 0) + 1
                        if r.status_code == 200:
                            found.append(len(r.json()["matches"]))
                    if args.answers and r.status_code == 200:
                        ms, n = refine(client, e, data, r.json(), args.answers)
                        if rep and n:
                            refined.append(ms)
                            answered.append(n)
            out[str(sizes[e])] = {
                **pct(times),
                "statuses": statuses,
                "selfies_with_matches": round(float(np.mean([f > 0 for f in found])), 2) if found else 0.0,
            }
            if args.answers:
                out[str(sizes[e])]["with_answers"] = {
                    **pct(refined),
                    "searches": len(refined),
                    "answers_per_search": round(float(np.mean(answered)), 1) if answered else 0.0,
                }
            print(f"http {sizes[e]}: {out[str(sizes[e])]}", file=sys.stderr, flush=True)
    unplant(settings, planted)
    return out


def refine(client: Any, e: int, selfie: bytes, body: dict[str, Any], answers: int) -> tuple[float, int]:
    """The same search again with up to `answers` answers on its results and questions ("this is me"
    on every other one, "not me" on the rest), as the page's "Find more" sends them; ms and answers."""
    shown = body["matches"] + body["possible_matches"] + body.get("questions", [])
    faces = [r["face_id"] for r in shown][:answers]
    form: dict[str, Any] = {"code": f"C{e}", "consent": "yes", "feedback_token": body["feedback_token"]}
    form["me"] = [str(f) for f in faces[::2]]
    form["not_me"] = [str(f) for f in faces[1::2]]
    t0 = time.perf_counter()
    r = client.post(f"/events/e{e}/search", data=form, files={"selfie": ("s.jpg", selfie)})
    ms = (time.perf_counter() - t0) * 1000
    if r.status_code != 200:
        raise RuntimeError(f"a search with answers failed: {r.status_code} {r.text}")
    return ms, len(faces)


PLANTED_PER_SELFIE = 8


def plant(
    settings: Settings, selfies: list[bytes], events: list[Any], rng: np.random.Generator, per_selfie: int
) -> list[Any]:
    """Put each selfie's person into every measured event: `per_selfie` photos with one face each,
    at a same-person distance (~0.3) from the selfie's embedding. Real selfies then find matches and
    the search runs its second, expanded scan, as for a real attendee. Returns the photo ids added."""
    import uuid

    import sqlalchemy as sa

    from photomatch.db import make_engine
    from photomatch.faces.engine import get_engine
    from photomatch.imaging import load_image

    engine = get_engine(settings=settings)
    vectors = []
    for data in selfies:
        faces = engine.analyze([load_image(data).rgb])[0]
        best = max(faces, key=lambda f: f.detection.size, default=None)
        if best is not None and best.embedding is not None:
            vectors.append((best.embedding, best.second_embedding))
    photos, faces_rows = [], []
    for event_id in events:
        for v, v2 in vectors:
            for _ in range(per_selfie):
                photo = uuid.uuid4()
                u = v + rng.normal(0, 0.3 / np.sqrt(2 * DIM), DIM)
                # The second model's same-person distances are ~0.9 (SFace on dev-lfw).
                u2 = None if v2 is None else v2 + rng.normal(0, 0.9 / np.sqrt(2 * len(v2)), len(v2))
                second = None if u2 is None else list(u2 / np.linalg.norm(u2))
                photos.append({"id": photo, "event_id": event_id, "storage_key": f"k/{photo}",
                               "original_filename": "p.jpg", "sha256": uuid.uuid4().hex * 2, "size_bytes": 1,
                               "content_type": "image/jpeg", "status": "done", "width": 4000, "height": 3000,
                               "face_count": 1})  # fmt: skip
                faces_rows.append({"photo_id": photo, "event_id": event_id, "box": [0, 0, 100, 100],
                                   "landmarks": [0.0] * 10, "probability": 0.99, "size_px": 100, "sharpness": 50.0,
                                   "model": MODEL, "embedding": list(u / np.linalg.norm(u)),
                                   "second_model": second and settings.second_embedder,
                                   "second_embedding": second})  # fmt: skip
    db = make_engine(settings.database_url, pool_size=1)
    with db.begin() as conn:
        from photomatch.models import Face, Photo

        conn.execute(sa.insert(Photo), photos)
        conn.execute(sa.insert(Face), faces_rows)
    db.dispose()
    return [p["id"] for p in photos]


def unplant(settings: Settings, photo_ids: list[Any]) -> None:
    """Remove what `plant` added (faces go with their photos), so the data stays as generated."""
    import sqlalchemy as sa

    from photomatch.db import make_engine
    from photomatch.models import Photo

    db = make_engine(settings.database_url, pool_size=1)
    with db.begin() as conn:
        conn.execute(sa.delete(Photo).where(Photo.id.in_(photo_ids)))
    db.dispose()


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,1000000", help="faces of each measured event")
    ap.add_argument("--background-events", type=int, default=50, help="other events of 2,000 faces each")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--http-queries", type=int, default=40)
    ap.add_argument("--ef-search", type=int, default=None, help="default: the product's setting")
    ap.add_argument("--m", type=int, default=None, help="HNSW m (default: the product's)")
    ap.add_argument("--ef-construction", type=int, default=None, help="HNSW ef_construction (default: the product's)")
    ap.add_argument("--limit", type=int, default=None, help="faces per indexed scan (default: the product's)")
    ap.add_argument("--iterative-scan", default=None, choices=["strict_order", "relaxed_order"])
    ap.add_argument("--index-all", action="store_true", help="index every measured event, whatever its size")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--churn", type=int, default=0, help="plant and delete the HTTP photos this many times first")
    ap.add_argument(
        "--answers", type=int, default=0, help="also time each HTTP search again with this many answers on its results"
    )
    args = ap.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",")]

    import torch

    torch.set_num_threads(args.threads)
    # As in the API (api/main.py): inference on one thread, also for the selfies planted from here.
    from photomatch.faces import torch_thread

    torch_thread.enabled = True
    from photomatch import ann

    ann.M = args.m or ann.M
    ann.EF_CONSTRUCTION = args.ef_construction or ann.EF_CONSTRUCTION
    ann.ITERATIVE_SCAN = args.iterative_scan or ann.ITERATIVE_SCAN
    import gc

    # As the API does after its first search (api/routes/search.py): full collections over torch's
    # objects otherwise pause a scan now and then, by up to 150 ms.
    gc.freeze()
    sizes = [2000] * args.background_events + args.sizes
    url, data = database(sizes, args.seed, args.rebuild)
    settings = Settings(
        environment="test",
        database_url=url,
        redis_url="redis://127.0.0.1:9/0",  # search sends no tasks
        data_dir=OUT / "data",
        storage_backend="local",
        secret_key="search-bench-secret-key-0123456789abcdef",
        rate_limits_enabled=False,
        **({"search_index_max_candidates": args.limit} if args.limit else {}),
        **({"search_index_ef_search": args.ef_search} if args.ef_search else {}),
    )
    background = args.background_events
    to_index = [
        e for e in range(background, len(sizes)) if args.index_all or sizes[e] >= settings.search_index_min_faces
    ]
    out: dict[str, Any] = {
        "device": "cpu",
        "cpus": os.cpu_count(),
        "database": f"{args.background_events} events of 2,000 faces + events of {args.sizes}; {sum(sizes):,} faces",
        "generate_s": json.loads((OUT / "scale.json").read_text())["generate_s"],
        "index_min_faces": settings.search_index_min_faces,
        "ef_search": settings.search_index_ef_search,
        "limit": {"exact": settings.search_max_candidates, "indexed": settings.search_index_max_candidates},
        "hnsw": {"m": ann.M, "ef_construction": ann.EF_CONSTRUCTION, "iterative_scan": ann.ITERATIVE_SCAN},
        "indexes": build_indexes(settings, sizes, to_index),
    }
    out["churn"] = churn(settings, sizes, args)
    out["scans"] = scans(settings, data, sizes, args)
    out["http"] = http(settings, sizes, args)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
