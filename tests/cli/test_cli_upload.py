"""`photomatch upload` against a live API: parallel, resumable by sha256, clear about rejects."""

from __future__ import annotations

import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from api.main import create_app
from bench.lib.datasets import dev_data
from cli import main
from photomatch.accounts.service import create_photographer
from photomatch.config import Settings
from photomatch.models import Event, Photo


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def live_api(fresh_db: str, redis_url: str, tmp_path: Path, secret_key: str) -> Iterator[str]:
    """Base URL of the real API served by uvicorn on a free port (fresh database, local storage)."""
    settings = Settings(
        environment="test",
        database_url=fresh_db,
        redis_url=redis_url,
        data_dir=tmp_path / "data",
        secret_key=secret_key,
    )
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def api_key(fresh_db: str) -> str:
    """A committed photographer's raw API key."""
    engine = create_engine(fresh_db)
    with Session(engine) as session:
        _, key = create_photographer(session, "Ann", "ann@example.com")
        session.commit()
    engine.dispose()
    return key


@pytest.fixture
def album(tmp_path: Path, settings_faces_dir: Path) -> Path:
    """A folder of 8 real photos in subfolders, one identical copy, a hidden file and a text file."""
    root = tmp_path / "album"
    sources = sorted((settings_faces_dir / "groups").glob("*.jpg"))[:8]
    for i, src in enumerate(sources):
        dest = root / ("day1" if i < 4 else "day2") / src.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dest)
    shutil.copy(sources[0], root / "copy-of-first.jpg")
    (root / ".hidden.jpg").write_bytes(sources[1].read_bytes())
    (root / "notes.txt").write_text("not a photo")
    return root


@pytest.fixture
def settings_faces_dir() -> Path:
    """dev-faces, the real test photos."""
    path = dev_data().faces_dir
    assert (path / "groups").is_dir(), f"dev-faces missing at {path}"
    return path


def _photos(fresh_db: str, slug: str) -> list[Photo]:
    engine = create_engine(fresh_db)
    with Session(engine) as session:
        photos = list(session.scalars(select(Photo).join(Event).where(Event.slug == slug)))
        assert session.scalar(select(func.count()).select_from(Photo)) == len(photos)
    engine.dispose()
    return photos


def test_upload_is_resumable_by_content(
    live_api: str, api_key: str, album: Path, fresh_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    auth = {"Authorization": f"Bearer {api_key}"}
    slug = httpx.post(f"{live_api}/events", json={"name": "Album"}, headers=auth).json()["slug"]
    base = ["upload", "--event", slug, "--api", live_api, "--key", api_key, "--jobs", "3", "--no-progress"]

    # An "interrupted" first run: only day1 made it.
    assert main([*base[:1], str(album / "day1"), *base[1:]]) == 0
    assert "4 images found: 4 uploaded, 0 already in event" in capsys.readouterr().out
    assert len(_photos(fresh_db, slug)) == 4

    # The rerun over the whole album sends only the 4 new photos; the identical copy is not sent.
    assert main([*base[:1], str(album), *base[1:]]) == 0
    assert "9 images found: 4 uploaded, 5 already in event" in capsys.readouterr().out
    photos = _photos(fresh_db, slug)
    assert len(photos) == 8
    assert len({p.sha256 for p in photos}) == 8
    assert {p.original_filename for p in photos} == {p.name for p in (album / "day1").iterdir()} | {
        p.name for p in (album / "day2").iterdir()
    }

    # Nothing left to do.
    assert main([*base[:1], str(album), *base[1:]]) == 0
    assert "9 images found: 0 uploaded, 9 already in event" in capsys.readouterr().out
    assert len(_photos(fresh_db, slug)) == 8

    # No worker runs here: status reports all 8 waiting; without --wait that is not an error.
    assert main(["status", slug, "--api", live_api, "--key", api_key]) == 0
    assert f"{slug}: 8 photos (8 uploaded, 0 processing, 0 done, 0 failed); 0 faces" in capsys.readouterr().out
    assert main(["status", slug, "--api", live_api, "--key", api_key, "--wait", "--timeout", "0.5"]) == 1


def test_rejected_files_are_reported_and_the_rest_uploaded(
    live_api: str, api_key: str, album: Path, fresh_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    auth = {"X-API-Key": api_key}
    slug = httpx.post(f"{live_api}/events", json={"name": "Album"}, headers=auth).json()["slug"]
    (album / "day1" / "broken.jpg").write_bytes(b"this is not an image at all")
    code = main(["upload", str(album / "day1"), "--event", slug, "--api", live_api, "--key", api_key, "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1
    assert "5 images found: 4 uploaded, 0 already in event" in captured.out
    assert "1 rejected" in captured.out
    assert "broken.jpg" in captured.err
    assert len(_photos(fresh_db, slug)) == 4


def test_upload_errors_are_one_line(
    live_api: str, api_key: str, album: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["upload", str(album), "--api", live_api, "--no-progress"]
    assert main([*args, "--event", "nope", "--key", api_key]) == 2
    assert "no event 'nope'" in capsys.readouterr().err
    assert main([*args, "--event", "nope", "--key", "pm_bad_key"]) == 2
    assert "refused the key" in capsys.readouterr().err
    assert main(["upload", str(album / "missing"), "--event", "x", "--api", live_api, "--key", api_key]) == 2


def test_event_create_through_the_api(live_api: str, api_key: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["event", "create", "Garden Party", "--api", live_api, "--key", api_key]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "slug garden-party" in out and f"attendee link: {live_api}/e/garden-party?code=" in out
    assert main([*args, "--slug", "garden-party"]) == 2
    assert "not available" in capsys.readouterr().err


def test_the_bad_input_corpus_goes_through_the_cli_without_a_crash(
    live_api: str, api_key: str, tmp_path: Path, fresh_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The 200+ file sweep of tests/support/bad_inputs.py, uploaded by `photomatch upload`: every file is
    accounted for (uploaded, already there, or rejected with its name and reason), and the command ends."""
    from tests.support.bad_inputs import corpus

    folder = tmp_path / "sweep"
    folder.mkdir()
    for item in corpus():
        (folder / item.name).write_bytes(item.data)
    auth = {"X-API-Key": api_key}
    slug = httpx.post(f"{live_api}/events", json={"name": "CLI sweep"}, headers=auth).json()["slug"]
    code = main(["upload", str(folder), "--event", slug, "--api", live_api, "--key", api_key, "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1, captured.err  # some files are rejected, and the exit code says so
    found, uploaded, already = (int(n) for n in re.search(
        r"(\d+) images found: (\d+) uploaded, (\d+) already in event", captured.out).groups())  # type: ignore[union-attr]  # fmt: skip
    rejected = int(re.search(r"(\d+) rejected", captured.out).group(1))  # type: ignore[union-attr]
    assert found >= 150 and uploaded + already + rejected == found, captured.out
    assert len(_photos(fresh_db, slug)) == uploaded
    assert "Traceback" not in captured.err
    assert captured.err.count("\n") >= rejected  # each rejected file is named with its reason


def test_import_starts_an_import_of_a_storage_prefix_and_says_how_to_follow_it(
    live_api: str, api_key: str, album: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No worker runs here: the import is recorded and queued, and status counts it as still to come."""
    auth = {"X-API-Key": api_key}
    slug = httpx.post(f"{live_api}/events", json={"name": "Card"}, headers=auth).json()["slug"]
    # live_api's local storage lives in tmp_path/data/storage: a prefix there is a folder.
    shutil.copytree(album / "day1", tmp_path / "data" / "storage" / "imports" / "card-1")
    base = ["--event", slug, "--api", live_api, "--key", api_key]
    assert main(["import", "imports/card-1/", *base]) == 0
    out = capsys.readouterr().out
    assert f"4 images found under 'imports/card-1/': importing into event '{slug}'" in out
    assert f"photomatch status {slug} --wait" in out
    assert main(["status", slug, "--api", live_api, "--key", api_key]) == 0
    assert "0 photos (0 uploaded, 0 processing, 0 done, 0 failed); 0 faces; 4 objects still importing" in (
        capsys.readouterr().out
    )
    assert main(["import", "imports/card-1/", *base, "--wait", "--timeout", "0.5"]) == 1  # nothing copies them

    assert main(["import", "imports/none/", *base]) == 2
    assert "no JPEG, PNG or WebP objects under 'imports/none/'" in capsys.readouterr().err
    assert main(["import", "events/", *base]) == 2
    assert "outside 'events/'" in capsys.readouterr().err
    assert main(["import", "imports/card-1/", "--event", "nope", "--api", live_api, "--key", api_key]) == 2
    assert "no event 'nope'" in capsys.readouterr().err


def test_the_status_line_counts_imports_in_words() -> None:
    from cli.status import format_status

    st = {"event": "e", "total": 2, "counts": {"done": 2}, "faces": 5, "remaining": 1, "eta_seconds": None,
          "photos_per_second": 0.0, "importing": 1, "import_rejected": 2}  # fmt: skip
    assert format_status(st) == (
        "e: 2 photos (2 done); 5 faces; 1 object still importing; 0.00 photos/s, ETA unknown; 2 objects not imported"
    )
