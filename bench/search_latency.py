"""Selfie search latency end to end over HTTP: real selfies against events of 2k, 10k (and more) faces.

Builds the real schema in an embedded Postgres (bench/out/search-latency/) with synthetic clustered
faces (bench/search_strategy.py `generate`: 20 events of 2,000 faces plus one big event), then
POSTs real dev-lfw selfies to /events/{slug}/search through the API app in this process: decoding,
detection and embedding on CPU, the exact scan, cohort, expansion and tiers, and the response with
signed links. The engine's share is timed on its own for the same selfies.

    uv run python bench/search_latency.py [--big-event 10000] [--queries 40] [--threads 2]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from bench.identity_cache import labelled_images
from bench.search_strategy import DB, conninfo, generate
from photomatch.config import Settings, get_settings
from photomatch.embedded import start_postgres
from photomatch.migrate import upgrade

OUT = Path(__file__).resolve().parent / "out" / "search-latency"


def database(args: argparse.Namespace) -> str:
    """The URL of a database holding the synthetic events (built on first use for this scale)."""
    url = start_postgres(OUT)
    scale = f"{args.events}x{args.event_faces}+{args.big_event}"
    marker = OUT / "scale.txt"
    db_url = url.replace("/postgres?", f"/{DB}?", 1) if "/postgres?" in url else url.rsplit("/", 1)[0] + f"/{DB}"
    if not marker.is_file() or marker.read_text() != scale:
        with psycopg.connect(conninfo(url, "postgres"), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{DB}"')
        upgrade(db_url)
        with psycopg.connect(conninfo(url, DB)) as conn:
            generate(conn, args, np.random.default_rng(args.seed))
        marker.write_text(scale)
    return db_url


def percentiles(ms: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(ms), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1),
        "max_ms": round(max(ms), 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20)
    ap.add_argument("--event-faces", type=int, default=2000)
    ap.add_argument("--big-event", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import torch
    from fastapi.testclient import TestClient

    from api.main import create_app
    from photomatch.faces.engine import get_engine
    from photomatch.imaging import load_image

    torch.set_num_threads(args.threads)
    url = database(args)
    settings = Settings(
        environment="test",
        database_url=url,
        redis_url="redis://127.0.0.1:9/0",  # search sends no tasks
        data_dir=OUT / "data",
        storage_backend="local",
        secret_key="search-latency-bench-secret-key-0123456789",
    )
    lfw = get_settings().dev_lfw_dir
    if not (lfw / "MANIFEST.md").is_file():
        print(f"dev-lfw not found at {lfw}", file=sys.stderr)
        return 2
    images = labelled_images(lfw)
    rng = np.random.default_rng(args.seed)
    selfies = [images[i][1].read_bytes() for i in rng.permutation(len(images))[: args.queries]]
    engine = get_engine(settings=settings)
    engine.analyze([load_image(selfies[0]).rgb])  # load the models before timing
    engine_ms = []
    for data in selfies:
        t0 = time.perf_counter()
        engine.analyze([load_image(data).rgb])
        engine_ms.append((time.perf_counter() - t0) * 1000)
    out: dict[str, Any] = {
        "device": "cpu",
        "torch_threads": args.threads,
        "scale": f"{args.events} events x {args.event_faces} faces + one of {args.big_event}",
        "engine_only": percentiles(engine_ms),
    }
    big = args.events  # generate() numbers events 0..n-1, then the big one
    with TestClient(create_app(settings)) as client:
        for name, e in (("event_2k", 0), (f"event_{args.big_event // 1000}k", big)):
            times, statuses, shown = [], {}, []
            for rep in range(2):  # the first pass warms Postgres' caches
                for data in selfies:
                    t0 = time.perf_counter()
                    r = client.post(
                        f"/events/e{e}/search",
                        data={"code": f"C{e}", "consent": "yes"},
                        files={"selfie": ("s.jpg", data)},
                    )
                    if rep:
                        times.append((time.perf_counter() - t0) * 1000)
                        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                        if r.status_code == 200:
                            body = r.json()
                            shown.append(len(body["matches"]) + len(body["possible_matches"]))
            out[name] = {
                "http": percentiles(times),
                "statuses": statuses,
                "mean_results": round(float(np.mean(shown)), 1) if shown else 0,
            }
            print(f"{name}: {out[name]}", file=sys.stderr, flush=True)
    out.update(service_with_hits(settings, args, big))
    print(json.dumps(out, indent=1))
    return 0


def service_with_hits(settings: Settings, args: argparse.Namespace, big: int) -> dict[str, Any]:
    """The search after the engine (scans, cohort, expansion, tiers) for queries near an event's people.

    Real selfies match nobody in synthetic events, so the second (expansion) scan never runs over
    HTTP; here the query is a face of the event plus noise at a same-person distance, as a selfie of
    someone in the photos would be.
    """
    import sqlalchemy

    from photomatch.db import make_engine, make_session_factory
    from photomatch.models import Event
    from photomatch.search.ranking import rank_photos
    from photomatch.search.service import event_embeddings, event_knn

    engine = make_engine(settings.database_url, pool_size=1)
    rng = np.random.default_rng(args.seed + 1)
    out: dict[str, Any] = {}
    with make_session_factory(engine)() as session:
        for name, e in (("event_2k", 0), (f"event_{args.big_event // 1000}k", big)):
            event = session.scalars(sqlalchemy.select(Event).where(Event.slug == f"e{e}")).one()
            rows = session.execute(
                sqlalchemy.text("SELECT embedding::text FROM faces WHERE event_id = :e ORDER BY random() LIMIT :n"),
                {"e": event.id, "n": args.queries},
            ).all()
            times, expanded, shown = [], [], []
            for rep in range(2):
                for (emb,) in rows:
                    v = np.array(json.loads(emb), dtype=np.float32) + rng.normal(0, 0.025, 128).astype(np.float32)
                    v /= np.linalg.norm(v)
                    t0 = time.perf_counter()
                    knn = event_knn(session, event, {}, settings.search_max_candidates)
                    ranked = rank_photos(v, knn, event_embeddings(session, event))
                    if rep:
                        times.append((time.perf_counter() - t0) * 1000)
                        expanded.append(ranked.expanded_with > 0)
                        shown.append(len(ranked.matches) + len(ranked.possible))
            out[f"{name}_service_with_hits"] = {
                **percentiles(times),
                "expanded": round(float(np.mean(expanded)), 2),
                "mean_results": round(float(np.mean(shown)), 1),
            }
        session.rollback()
    engine.dispose()
    return out


if __name__ == "__main__":
    sys.exit(main())
