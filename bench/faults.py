"""Faults while an album is processing, each on its own event, with real worker and beat processes:

- `worker_kill`: SIGKILL the face worker in the middle of a batch, 10 times (--kills); it is
  restarted after 1 s under the same name, as `photomatch run` (or Kubernetes) would. The reconciler
  keeps its defaults here: the worker's lease, not a time window, decides when its batch comes back.
- `redis_flush`: Redis loses every queued message mid-ingest (FLUSHALL); the reconciler recovers.
- `postgres_restart`: Postgres stops for 5 s mid-ingest and comes back; workers retry.
- `storage_outage`: the S3 endpoint (moto behind a TCP proxy) refuses connections for longer than
  the tasks' retry backoff; the batches fail with `storage_unavailable`; once storage is back, a retry
  call (the photographer's "retry failed") brings every photo to done.

Each reports photos lost (stuck or missing), duplicate faces, photos whose face rows do not match
their count, failures by reason, and wall time. Prints JSON. CPU; about 10 minutes.

    uv run python bench/faults.py [--scenarios worker_kill redis_flush ...] [--photos 60] [--kills 10]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from bench.lib.fleet import album, counts, integrity, services, start_beat, start_worker, upload_album, wait_settled
from cli.embedded import start_postgres, stop_postgres
from photomatch.config import Settings
from photomatch.db import make_session_factory, session_scope
from photomatch.photos.service import retry_failed

OUT = Path(__file__).resolve().parent / "out" / "faults"
# The reconciler as an operator would tighten it for a test: every 3 s, for work idle 20 s.
FAST_RECONCILE = {"PHOTOMATCH_RECONCILE_INTERVAL_SECONDS": "3", "PHOTOMATCH_RECONCILE_AFTER_SECONDS": "20"}


class Proxy:
    """A TCP forwarder that can refuse connections for a while: storage 'going away' without losing data."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.down = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self.listener.accept()
            if self.down:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


def run_scenario(
    name: str,
    settings: Settings,
    factory: sessionmaker[Session],
    photos: list[Path],
    fault: Callable[..., dict[str, Any]],
    reconcile: dict[str, str],
) -> dict[str, Any]:
    logs = OUT / "logs" / name
    logs.mkdir(parents=True, exist_ok=True)
    # The reconcile task runs in the worker, with the worker's settings: both get the same window.
    node = f"{name}-{uuid.uuid4().hex[:4]}@bench"
    worker: dict[str, Any] = {
        "proc": start_worker(settings, logs / "worker.log", queues="faces,cpu", name=node, **reconcile),
        "env": reconcile,
        "name": node,
    }
    beat = start_beat(settings, logs / "beat.log", **reconcile)
    started = time.monotonic()
    try:
        event_id = upload_album(settings, factory, photos, name)
        details = fault(settings=settings, factory=factory, event_id=event_id, worker=worker, logs=logs)
        wait_settled(factory, event_id, timeout=900)
        details.update(details.pop("after", lambda: {})())
    finally:
        for proc in (worker["proc"], beat):
            proc.terminate()
            try:
                proc.wait(30)
            except Exception:
                proc.kill()
    with_retry = details.pop("then_retry", False)
    if with_retry:
        before = integrity(factory, event_id)
        details["before_retry"] = {k: before[k] for k in ("status", "failed_by_reason", "stuck")}
        with session_scope(factory) as session:
            from photomatch.models import Event

            event = session.get(Event, event_id)
            assert event is not None
            details["retried"] = len(retry_failed(session, event, settings=settings))
        worker["proc"] = start_worker(settings, logs / "worker.log", queues="faces,cpu")
        try:
            wait_settled(factory, event_id, timeout=600)
        finally:
            worker["proc"].terminate()
            worker["proc"].wait(30)
    return {"scenario": name, "wall_s": round(time.monotonic() - started, 1), **details, **integrity(factory, event_id)}


def wait_for(predicate: Callable[[], bool], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out waiting for the scenario's moment")
        time.sleep(0.05)


def done_at_least(factory: sessionmaker[Session], event_id: uuid.UUID, n: int) -> Callable[[], bool]:
    return lambda: counts(factory, event_id).get("done", 0) + counts(factory, event_id).get("failed", 0) >= n


def kill_worker(
    times: int,
) -> Callable[..., dict[str, Any]]:
    def fault(**kw: Any) -> dict[str, Any]:
        return _kill_worker(times=times, **kw)

    return fault


def _kill_worker(
    *,
    times: int,
    settings: Settings,
    factory: sessionmaker[Session],
    event_id: uuid.UUID,
    worker: dict[str, Any],
    logs: Path,
) -> dict[str, Any]:
    """SIGKILL the worker while it holds a batch (photos in processing), `times` times, restarting it
    under the same name after 1 s; how long each killed batch waited until it was claimed again."""
    kills, waits = 0, []
    while kills < times:
        c = counts(factory, event_id)
        if not c.get("uploaded") and not c.get("processing"):
            break
        wait_for(
            lambda: bool(counts(factory, event_id).get("processing")) or not counts(factory, event_id).get("uploaded")
        )
        if not counts(factory, event_id).get("processing"):
            continue
        held = _processing(factory, event_id)
        os.kill(worker["proc"].pid, signal.SIGKILL)
        killed_at = time.monotonic()
        worker["proc"].wait()
        kills += 1
        time.sleep(1.0)
        worker["proc"] = start_worker(
            settings, logs / "worker.log", queues="faces,cpu", name=worker["name"], **worker["env"]
        )
        # The killed batch is back once none of its photos is still processing under the dead claim.
        wait_for(_batch_back(factory, event_id, held, killed_at), timeout=900)
        waits.append(round(time.monotonic() - killed_at, 1))
    return {"worker_kills": kills, "killed_batch_waited_s": waits}


def _batch_back(
    factory: sessionmaker[Session], event_id: uuid.UUID, held: set[uuid.UUID], killed_at: float
) -> Callable[[], bool]:
    """Whether none of `held` is still processing under a claim made before the kill."""
    return lambda: not (held & _processing(factory, event_id, claimed_before=killed_at))


def _processing(
    factory: sessionmaker[Session], event_id: uuid.UUID, claimed_before: float | None = None
) -> set[uuid.UUID]:
    """Ids of the event's photos in processing (claimed before the monotonic time `claimed_before`)."""
    from photomatch.models import Photo, PhotoStatus

    with factory() as session:
        query = sa.select(Photo.id).where(Photo.event_id == event_id, Photo.status == PhotoStatus.PROCESSING)
        if claimed_before is not None:
            ago = time.monotonic() - claimed_before
            query = query.where(Photo.processing_started_at <= sa.func.now() - sa.text(f"interval '{ago:.3f} seconds'"))
        return set(session.scalars(query))


def flush_redis(*, settings: Settings, factory: sessionmaker[Session], event_id: uuid.UUID, **_: Any) -> dict[str, Any]:
    wait_for(done_at_least(factory, event_id, 6))
    client = redis.Redis.from_url(settings.redis_url)
    lost = sum(int(client.llen(q)) for q in ("faces", "cpu"))
    client.flushall()
    return {"queued_messages_lost": lost}


def restart_postgres(
    *, settings: Settings, factory: sessionmaker[Session], event_id: uuid.UUID, **_: Any
) -> dict[str, Any]:
    wait_for(done_at_least(factory, event_id, 6))
    stop_postgres(OUT)
    time.sleep(5)
    url = start_postgres(OUT)
    return {"postgres_down_s": 5, "url_unchanged": url == settings.database_url}


def storage_outage(proxy: Proxy, seconds: float) -> Callable[..., dict[str, Any]]:
    def fault(*, factory: sessionmaker[Session], event_id: uuid.UUID, **_: Any) -> dict[str, Any]:
        wait_for(done_at_least(factory, event_id, 4))
        proxy.down = True
        time.sleep(seconds)
        return {"storage_down_s": seconds, "then_retry": True, "after": lambda: _restore(proxy, factory, event_id)}

    return fault


def _restore(proxy: Proxy, factory: sessionmaker[Session], event_id: uuid.UUID) -> dict[str, Any]:
    during = counts(factory, event_id)
    proxy.down = False
    return {"status_when_storage_returned": during}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    names = ["worker_kill", "redis_flush", "postgres_restart", "storage_outage"]
    parser.add_argument("--scenarios", nargs="+", default=names, choices=names)
    parser.add_argument("--photos", type=int, default=60)
    parser.add_argument("--kills", type=int, default=10, help="worker_kill: times the worker is killed")
    parser.add_argument("--outage", type=float, default=120.0, help="seconds storage stays away (> the ~75 s backoff)")
    args = parser.parse_args()

    base = services(OUT, process_batch_size=2)
    engine = sa.create_engine(base.database_url, pool_pre_ping=True)  # survives the Postgres restart scenario
    factory = make_session_factory(engine)
    photos = album(base, args.photos)
    results = []
    for name in args.scenarios:
        settings, reconcile = base, FAST_RECONCILE
        faults: dict[str, Callable[..., dict[str, Any]]] = {
            "worker_kill": kill_worker(args.kills), "redis_flush": flush_redis, "postgres_restart": restart_postgres,
        }  # fmt: skip
        if name == "worker_kill":
            reconcile = {}  # the lease decides; the reconciler runs on its defaults (every 60 s, 300 s window)
        if name == "storage_outage":
            # The default reconciler (5 min): the tasks' own retries are what is being measured.
            reconcile = {}
            from moto.server import ThreadedMotoServer

            moto_port = socket.create_server(("127.0.0.1", 0)).getsockname()[1]
            ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False).start()
            proxy = Proxy(moto_port)
            s3 = {
                "storage_backend": "s3", "s3_endpoint_url": f"http://127.0.0.1:{proxy.port}", "s3_bucket": "faults",
                "s3_access_key": "testing", "s3_secret_key": "testing",
            }  # fmt: skip
            settings = base.model_copy(update=s3)
            from photomatch.storage.s3 import S3Storage

            S3Storage.from_settings(settings).ensure_bucket()
            faults[name] = storage_outage(proxy, args.outage)
        results.append(run_scenario(name, settings, factory, photos, faults[name], reconcile))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    summary = {
        "bench": "faults",
        "device": "cpu",
        "photos_per_scenario": len(photos),
        "scenarios": results,
        "photos_lost": sum(r["stuck"] + max(0, len(photos) - r["photos"]) for r in results),
        "photos_not_done": sum(r["photos"] - r["status"].get("done", 0) for r in results),
        "duplicate_faces": sum(r["duplicate_faces"] for r in results),
        "command": "uv run python bench/faults.py " + " ".join(sys.argv[1:]),
    }
    print(json.dumps(summary, indent=2))
    engine.dispose()


if __name__ == "__main__":
    main()
