"""A selfie and its embedding are never written to disk, the database, storage or the logs.

One search with a selfie larger than 1 MiB (Starlette would spool such an upload to a temporary
file) is watched from every side:

- disk: every file under the directories this test owns (data dir, storage, and TMPDIR, pointed at
  a test-owned directory) is unchanged and none holds selfie bytes; and a Python audit hook sees
  no file opened for writing in this process during the request. The hook matters because
  TemporaryFile uses O_TMPFILE on Linux, a file no directory listing ever shows; a control
  request through an ordinary UploadFile route proves the hook catches exactly that;
- database: every table's rows are identical before and after, no face is the selfie's vector,
  and neither Postgres' WAL (written during the test) nor its log holds the vector's bytes; a
  control finds a stored face's vector in the WAL, so the scan can see one;
- storage: the same keys before and after;
- logs: DEBUG records and captured stdout/stderr hold neither selfie bytes nor the vector.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
import sqlalchemy as sa
from fastapi import FastAPI, UploadFile
from fastapi.testclient import TestClient
from pgvector import HalfVector
from PIL import Image
from sqlalchemy.pool import NullPool

from api.main import create_app
from bench.lib.datasets import dev_data
from photomatch.accounts.service import create_photographer
from photomatch.config import Settings
from photomatch.db import make_engine, make_session_factory, session_scope
from photomatch.faces.engine import get_engine, get_engine_for
from photomatch.imaging import load_image
from photomatch.photos import processing
from photomatch.storage import get_storage

pytestmark = pytest.mark.slow

# --- a watcher for files opened for writing ----------------------------------------------------

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_TMPFILE", 0)


class WriteWatcher:
    """Records every file this process opens for writing while active (a sys audit hook)."""

    def __init__(self) -> None:
        self.active = False
        self.opened: list[str] = []

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.active or event != "open":
            return
        path, mode, flags = args
        writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & _WRITE_FLAGS)
        if writes:
            self.opened.append(str(path))


_watcher = WriteWatcher()
# Audit hooks cannot be removed; this one does nothing unless a test switches it on.
sys.addaudithook(_watcher)


@pytest.fixture
def watch_writes() -> Iterator[WriteWatcher]:
    _watcher.opened.clear()
    yield _watcher
    _watcher.active = False


# --- the world ---------------------------------------------------------------------------------


@pytest.fixture
def owned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """TMPDIR for this process pointed at a directory the test owns."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return tmp_path


@pytest.fixture
def settings(fresh_db: str, redis_url: str, owned: Path, secret_key: str) -> Settings:
    return Settings(
        environment="test",
        database_url=fresh_db,
        redis_url=redis_url,
        data_dir=owned / "data",
        storage_backend="local",
        secret_key=secret_key,
    )


def large_selfie(faces_dir: Path) -> bytes:
    """Obama, upscaled and saved at quality 100: well over Starlette's 1 MiB spool limit."""
    image = Image.open(faces_dir / "obama" / "4.jpg").convert("RGB")
    image = image.resize((image.width * 3 // 2, image.height * 3 // 2), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=100)
    data = buffer.getvalue()
    assert len(data) > 2 * 1024 * 1024
    return data


def files_under(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def table_contents(url: str) -> dict[str, tuple[int, str]]:
    """Row count and a digest of all rows, per table of the public schema."""
    engine = sa.create_engine(url, poolclass=NullPool)
    out = {}
    with engine.connect() as conn:
        tables = conn.scalars(sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).all()
        for table in tables:
            row = conn.execute(
                sa.text(
                    f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM \"{table}\" t"
                )
            ).one()
            out[table] = (row[0], row[1])
    engine.dispose()
    return out


def halfvec_bytes(vector: np.ndarray, n: int = 32) -> bytes:
    """The first n components as pgvector stores them on disk (float16, native byte order)."""
    return np.asarray(vector, dtype=np.float16)[:n].tobytes()


def files_containing(paths: list[Path], needle: bytes) -> list[str]:
    return [str(p) for p in paths if p.is_file() and needle in p.read_bytes()]


# --- the test ----------------------------------------------------------------------------------


def test_a_search_leaves_no_trace_of_the_selfie(
    settings: Settings,
    owned: Path,
    pg_data_dir: Path,
    watch_writes: WriteWatcher,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    faces_dir = dev_data().faces_dir
    if not (faces_dir / "MANIFEST.md").is_file():
        pytest.skip(f"dev-faces not found at {faces_dir}")
    started = time.time()
    engine = make_engine(settings.database_url, pool_size=1, max_overflow=0)
    with session_scope(make_session_factory(engine)) as session:
        _, key = create_photographer(session, "Pia", "pia@example.com")
    engine.dispose()
    auth = {"Authorization": f"Bearer {key}"}
    selfie = large_selfie(faces_dir)
    face_engine = get_engine(settings.embedder)
    selfie_face = face_engine.analyze([load_image(selfie).rgb])[0][0]
    selfie_vector, selfie_second = selfie_face.embedding, selfie_face.second_embedding
    assert selfie_second is not None  # the event fuses a second model: its vector must not leak either
    stored_vector = face_engine.analyze([load_image(faces_dir / "obama" / "1.jpg").rgb])[0][0].embedding

    with TestClient(create_app(settings)) as client:
        event = client.post("/events", json={"name": "Private"}, headers=auth).json()
        files = [("files", (f"{n}.jpg", (faces_dir / "obama" / f"{n}.jpg").read_bytes(), "image/jpeg")) for n in (1, 2)]
        uploaded = client.post(f"/events/{event['slug']}/photos", files=files, headers=auth).json()
        redis.Redis.from_url(settings.redis_url).flushall()  # processed here, not by a worker
        ids = [uuid.UUID(r["photo_id"]) for r in uploaded["results"]]
        factory = make_session_factory(make_engine(settings.database_url, pool_size=1, max_overflow=0))
        storage = get_storage(settings)
        with session_scope(factory) as session:
            claimed = processing.claim_photos(session, ids, max_attempts=5)
        outcomes = processing.analyze_photos(claimed, storage, get_engine_for)
        with session_scope(factory) as session:
            processing.save_outcomes(session, outcomes)
            processing.make_thumbnails(session, storage, ids)
        form = {"code": event["access_code"], "consent": "yes"}
        # A warm-up search with another selfie: the engine's first use reads its weights.
        warm = client.post(
            f"/events/{event['slug']}/search",
            data=form,
            files={"selfie": ("s.jpg", (faces_dir / "obama" / "3.jpg").read_bytes(), "image/jpeg")},
        )
        assert warm.status_code == 200, warm.text

        disk_before = files_under(owned)
        tables_before = table_contents(settings.database_url)
        keys_before = list(storage.list_keys())
        capfd.readouterr()
        caplog.clear()
        caplog.set_level(logging.DEBUG)
        # SQLAlchemy sets its own loggers to WARNING; turn on the SQL log an operator could enable.
        caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")
        watch_writes.active = True
        response = client.post(
            f"/events/{event['slug']}/search", data=form, files={"selfie": ("me.jpg", selfie, "image/jpeg")}
        )
        watch_writes.active = False
        captured = capfd.readouterr()
        # Taken now: the checks below query the database themselves (with the vector).
        log_text = caplog.text
        logged = log_text + captured.out + captured.err
        caplog.set_level(logging.WARNING, logger="sqlalchemy.engine")

        assert response.status_code == 200, response.text
        assert len(response.json()["matches"]) == 2  # a real search happened

        # Disk: nothing opened for writing, nothing new or changed, no selfie bytes anywhere.
        assert watch_writes.opened == []
        assert files_under(owned) == disk_before
        chunk = selfie[len(selfie) // 2 : len(selfie) // 2 + 256]
        assert files_containing(list(owned.rglob("*")), chunk) == []

        # Database: identical tables; no stored face is the selfie's vector.
        assert table_contents(settings.database_url) == tables_before
        db = sa.create_engine(settings.database_url, poolclass=NullPool)
        with db.connect() as conn:
            same = conn.scalar(
                sa.text(
                    "SELECT count(*) FROM faces WHERE embedding <-> CAST(:v AS halfvec) < 0.01"
                    " OR second_embedding <-> CAST(:w AS halfvec) < 0.01"
                ),
                {"v": HalfVector(selfie_vector).to_text(), "w": HalfVector(selfie_second).to_text()},
            )
        db.dispose()
        assert same == 0
        # Postgres' own files: the WAL since the test began (control: a stored face is found) and its log.
        time.sleep(0.5)  # synchronous_commit is off in the test cluster: let the WAL writer write
        pg = pg_data_dir / "pg"
        recent = [p for p in [*(pg / "pg_wal").glob("0*"), *(pg / "log").rglob("*")] if p.stat().st_mtime >= started]
        assert files_containing(recent, halfvec_bytes(stored_vector)), "control: the WAL scan cannot see a face"
        assert files_containing(recent, halfvec_bytes(selfie_vector)) == []
        assert files_containing(recent, halfvec_bytes(selfie_second)) == []
        assert files_containing(list((pg / "log").rglob("*")), HalfVector(selfie_vector).to_text()[:40].encode()) == []

        # Storage: the same objects.
        assert list(storage.list_keys()) == keys_before

        # Logs: DEBUG records and the process's stdout/stderr during the request.
        assert "search.query.done" in log_text  # DEBUG capture was on
        # SQLAlchemy logged its statements with their parameters, the vector as a placeholder.
        assert "<redacted query vector>" in log_text
        vector_texts = [
            HalfVector(selfie_vector).to_text()[1:30],
            ", ".join(f"{v:.4f}" for v in selfie_vector[:3]),
            ",".join(f"{v:.4f}" for v in selfie_vector[:3]),
            repr(selfie_vector)[:40],
            str(selfie_vector)[:40],
            repr([float(v) for v in selfie_vector[:3]])[1:-1],
            HalfVector(selfie_second).to_text()[1:30],
            ", ".join(f"{v:.4f}" for v in selfie_second[:3]),
        ]
        for text in vector_texts:
            assert text not in logged, text
        assert chunk.decode("latin-1") not in logged
        assert base64.b64encode(chunk[:48]).decode() not in logged


def test_the_write_watcher_catches_starlettes_spooled_upload(owned: Path, watch_writes: WriteWatcher) -> None:
    """Control: the same >1 MiB selfie through an ordinary UploadFile route is spooled to disk."""
    app = FastAPI()

    @app.post("/upload")
    def upload(file: UploadFile) -> dict[str, int]:
        return {"size": len(file.file.read())}

    faces_dir = dev_data().faces_dir
    if not (faces_dir / "MANIFEST.md").is_file():
        pytest.skip(f"dev-faces not found at {faces_dir}")
    selfie = large_selfie(faces_dir)
    with TestClient(app) as client:
        watch_writes.active = True
        response = client.post("/upload", files={"file": ("me.jpg", selfie, "image/jpeg")})
        watch_writes.active = False
    assert response.json() == {"size": len(selfie)}
    # The spooled file lands in TMPDIR, unnamed (O_TMPFILE) or named: the hook sees it either way.
    assert any(path.startswith(str(owned / "tmp")) for path in watch_writes.opened), watch_writes.opened
