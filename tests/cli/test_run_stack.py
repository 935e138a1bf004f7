"""`photomatch run`: the whole embedded stack starts, serves, restarts a dead worker, stops cleanly on SIGTERM and
keeps its data."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
from PIL import Image

from photomatch.config import Settings
from photomatch.storage.local import sign_local_url

STARTUP_TIMEOUT = 120.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start(data_dir: Path, api_port: int, flower_port: int, log: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "cli", "run", "--data-dir", str(data_dir)]
    argv += ["--api-port", str(api_port), "--flower-port", str(flower_port)]
    # Only the variables that matter: the stack must not pick up the test session's services.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOMATCH_")}
    with log.open("ab") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)


def _wait_up(proc: subprocess.Popen[bytes], urls: list[str], log: Path, start: int) -> None:
    """Wait for the URLs, then for the `start`-th banner in the (appended) log."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    for url in urls:
        while True:
            assert proc.poll() is None, f"photomatch run exited early:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"{url} did not come up:\n{log.read_text()}"
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
    # The supervisor prints its banner once it has seen both answer.
    while log.read_text().count("photomatch is running") < start:
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes], log: Path) -> None:
    """SIGTERM, as a service manager would; every process the stack started must be gone after."""
    descendants = psutil.Process(proc.pid).children(recursive=True)
    assert len(descendants) >= 4  # api, flower, beat, worker (+ redis-server)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0, log.read_text()
    gone, alive = psutil.wait_procs(descendants, timeout=10)
    assert not alive, f"left running: {[p.cmdline() for p in alive]}"
    assert "photomatch: stopped" in log.read_text()


def _child(proc: subprocess.Popen[bytes], name: str) -> psutil.Process:
    """The supervisor's direct child running `photomatch <name>` (the worker execs celery in place)."""
    for child in psutil.Process(proc.pid).children():
        cmd = " ".join(child.cmdline())
        if f"cli {name}" in cmd or f" {name} " in f" {cmd} " and "celery" in cmd:
            return child
    raise AssertionError(f"no {name} child: {[c.cmdline() for c in psutil.Process(proc.pid).children()]}")


def _tiny_jpeg() -> bytes:
    # A blank picture: no face, so the worker does not load the embedding model during the test.
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (128, 140, 150)).save(buf, "JPEG")
    return buf.getvalue()


def _flower_needs_the_generated_login(flower: str, data_dir: Path, banner: str) -> None:
    """Flower's pages, task table and API answer 401 without the login the stack generated and printed."""
    login = (data_dir / "flower-auth").read_text().strip()
    user, _, password = login.partition(":")
    assert f"login {login}" in banner and len(password) >= 20
    for path in ("/", "/tasks", "/tasks/datatable", "/api/workers", "/api/tasks", "/workers"):
        assert httpx.get(f"{flower}{path}", timeout=10).status_code == 401, path
        assert httpx.get(f"{flower}{path}", auth=(user, "wrong-password"), timeout=10).status_code == 401, path
    assert httpx.get(f"{flower}/api/workers", auth=(user, password), timeout=10).status_code == 200
    # Flower's Prometheus page names every task and worker host: it needs the login too.
    assert httpx.get(f"{flower}/metrics", timeout=10).status_code == 401
    assert httpx.get(f"{flower}/metrics", auth=(user, password), timeout=10).status_code == 200
    assert httpx.get(f"{flower}/healthcheck", timeout=10).status_code == 200  # probes need no login (it says "OK")


def _logs_keep_no_code_or_token(api: str, auth: dict[str, str], logs: Path) -> None:
    """A real attendee-link visit, code entry and search: the API's JSON log shows the requests, never the secrets."""
    link = httpx.get(f"{api}/events/demo/attendee-link", headers=auth).json()
    code, token = link["code"], link["url"].split("t=", 1)[1]
    assert httpx.get(f"{api}{link['url']}").status_code == 200
    assert httpx.get(f"{api}/e/demo", params={"code": code}).status_code == 200
    assert httpx.get(f"{api}/join", params={"code": code}).status_code == 303
    assert httpx.get(f"{api}/api/resolve", params={"code": code}).status_code == 200
    selfie = {"selfie": ("me.jpg", _tiny_jpeg(), "image/jpeg")}
    searched = httpx.post(f"{api}/events/demo/search", data={"code": code, "consent": "yes"}, files=selfie, timeout=120)
    assert searched.status_code == 422, searched.text  # a real search that finds no face in the blank selfie
    searched = httpx.post(
        f"{api}/events/demo/search", data={"token": token, "consent": "yes"}, files=selfie, timeout=120
    )
    assert searched.status_code == 422, searched.text
    time.sleep(0.5)  # the access log is written after the response

    text = (logs / "api.log").read_text()
    assert code not in text and token not in text and token[:16] not in text
    records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    requests = [r for r in records if r.get("event") == "http.request"]
    paths = [r["path"] for r in requests]
    assert "/e/demo?code=[redacted]" in paths and "/join?code=[redacted]" in paths, paths
    assert any(p.startswith("/e/demo?t=[redacted]") for p in paths), paths
    assert sum(r["path"] == "/events/demo/search" and r["status"] == 422 for r in requests) == 2
    assert any(r.get("event") == "search.query.rejected" for r in records)


def _metrics_aggregate_the_worker(api: str, auth: dict[str, str], data_dir: Path) -> None:
    """The API's /metrics serves the worker's samples too (one multiprocess folder for the stack)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while httpx.get(f"{api}/events/demo/status", headers=auth).json()["remaining"]:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    # The stack keeps /metrics behind a token of its own (every event id and its counts are in it).
    assert httpx.get(f"{api}/metrics").status_code == 401
    token = (data_dir / "metrics-token").read_text().strip()
    text = httpx.get(f"{api}/metrics", headers={"Authorization": f"Bearer {token}"}).text
    assert 'photomatch_photos_processed_total{status="done"} 1.0' in text, text
    assert 'photomatch_stage_duration_seconds_count{stage="decode"}' in text
    assert 'photomatch_queue_depth{queue="faces"} 0.0' in text


def _links_are_signed_with_the_stacks_own_key(api: str, data_dir: Path) -> None:
    """A download link forged with the built-in placeholder key is refused; the stack's own key (kept
    owner-only in data_dir) signs the links it serves, and stored files are private to their owner."""
    secret = data_dir / "secret-key"
    assert secret.stat().st_mode & 0o077 == 0
    storage = data_dir / "storage"
    stored = [p for p in storage.rglob("*") if p.is_file()]
    key = next(str(p.relative_to(storage)) for p in stored if "/originals/" in str(p))
    assert all(p.stat().st_mode & 0o077 == 0 for p in stored)
    assert all(d.stat().st_mode & 0o077 == 0 for d in storage.rglob("*") if d.is_dir())
    ten_years = 10 * 365 * 86400
    placeholder = Settings.model_fields["secret_key"].default
    forged = httpx.get(f"{api}{sign_local_url(key, ten_years, secret_key=placeholder)}")
    assert forged.status_code == 403, forged.status_code
    real = httpx.get(f"{api}{sign_local_url(key, 60, secret_key=secret.read_text().strip())}")
    assert real.status_code == 200 and real.content[:2] == b"\xff\xd8"


@pytest.mark.slow
def test_run_starts_everything_and_data_survives_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    api_port, flower_port = _free_port(), _free_port()
    api = f"http://127.0.0.1:{api_port}"
    urls = [f"{api}/health", f"http://127.0.0.1:{flower_port}/healthcheck"]
    log = tmp_path / "run.log"

    proc = _start(data_dir, api_port, flower_port, log)
    try:
        _wait_up(proc, urls, log, start=1)
        banner = log.read_text()
        for line in (f"API       {api}", f"{api}/docs", "Flower", "Postgres", "Redis     redis://", "Storage"):
            assert line in banner, banner
        creds = json.loads((data_dir / "credentials.json").read_text())
        assert creds["api_key"] in banner and creds["api_url"] == api
        auth = {"Authorization": f"Bearer {creds['api_key']}"}

        upload = httpx.post(f"{api}/events/demo/photos", files=[("files", ("blank.jpg", _tiny_jpeg()))], headers=auth)
        assert upload.status_code == 200, upload.text
        assert upload.json()["created"] == 1
        created = httpx.post(f"{api}/events", json={"name": "Persist me"}, headers=auth)
        assert created.status_code == 201

        _flower_needs_the_generated_login(f"http://127.0.0.1:{flower_port}", data_dir, banner)
        _logs_keep_no_code_or_token(api, auth, data_dir / "logs")
        _metrics_aggregate_the_worker(api, auth, data_dir)
        _links_are_signed_with_the_stacks_own_key(api, data_dir)

        # A worker killed outright is restarted; the API (attendees' searches) never goes down.
        worker = _child(proc, "worker")
        worker.kill()
        worker.wait(10)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while "photomatch: worker restarted" not in log.read_text():
            assert proc.poll() is None, f"the stack went down with its worker:\n{log.read_text()}"
            assert httpx.get(f"{api}/health", timeout=2).status_code == 200
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        assert "worker exited with code -9; restarting" in log.read_text()
        assert _child(proc, "worker").pid != worker.pid
    finally:
        if proc.poll() is None:
            _stop(proc, log)

    # Postgres and Redis were stopped with the stack, not left behind.
    assert not (data_dir / "pg" / "postmaster.pid").exists()
    assert not (data_dir / "redis" / "server.json").exists()

    proc = _start(data_dir, api_port, flower_port, log)
    try:
        _wait_up(proc, urls, log, start=2)
        # Same key, same events, same photo.
        assert json.loads((data_dir / "credentials.json").read_text())["api_key"] == creds["api_key"]
        got = httpx.get(f"{api}/events/persist-me", headers=auth)
        assert got.status_code == 200 and got.json()["name"] == "Persist me"
        status = httpx.get(f"{api}/events/demo/status", headers=auth).json()
        assert status["total"] == 1
    finally:
        if proc.poll() is None:
            _stop(proc, log)
