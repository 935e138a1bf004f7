"""Both web pages end to end in headless Chromium, against the real stack.

uvicorn serves the app on a free port (fresh database, test Redis, local storage in a tmp dir) and a
real Celery worker subprocess processes the photos. In the browser a photographer signs in, creates
an event, uploads a small generated album and waits until every photo is done; then an attendee on a
phone-sized screen opens the shared link, sends an identity's held-back selfie and must see that
identity's photos. Screenshots of each step go to artifacts/screenshots/.

Needs /usr/bin/chromium (Debian packages `chromium` and `chromium-driver`; never `playwright install`)
and the dev faces. Takes about a minute on 2 cores.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI
from PIL import Image

from bench.lib.albums import generate_album
from bench.lib.datasets import dev_data
from photomatch.accounts.service import create_photographer
from photomatch.config import REPO_ROOT, Settings
from photomatch.db import make_engine, make_session_factory, session_scope
from photomatch.models import Photo
from tests.support.celery_worker import CeleryWorker

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
# No sandbox (containers, root), no GPU, and nothing that phones home: the tests run offline.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = REPO_ROOT / "artifacts" / "screenshots"
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
    "user_agent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Mobile Safari/537.36",
}
ALBUM_PHOTOS = 6
PROCESS_TIMEOUT_MS = 240_000


# --- the stack -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} not found: install the Debian packages chromium and chromium-driver")
    return CHROMIUM


@pytest.fixture(scope="module")
def album(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated album: 6 photos of 1200x900 with 3-5 faces each, big enough to detect."""
    faces = dev_data().faces_dir
    if not (faces / "MANIFEST.md").is_file():
        pytest.skip(f"dev-faces not found at {faces}; set PHOTOMATCH_DEV_FACES_DIR")
    out = tmp_path_factory.mktemp("album")
    # face_width is given for a 4000 px wide photo: 250-400 becomes 75-120 px here.
    generate_album(
        faces, out, photos=ALBUM_PHOTOS, seed=6, size=(1200, 900), faces_per_photo=(3, 5), face_width=(250, 400)
    )
    return out


@pytest.fixture(scope="module")
def truth(album: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((album / "truth.json").read_text())
    return data


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def base_url(settings: Settings, make_web_app: Callable[[Settings], FastAPI]) -> Iterator[str]:
    """The app served by uvicorn in a thread of this process, on a free port."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(make_web_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(30)


@pytest.fixture(scope="module")
def db(settings: Settings) -> Iterator[sa.Engine]:
    engine = make_engine(settings.database_url, pool_size=2)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def api_key(db: sa.Engine) -> str:
    with session_scope(make_session_factory(db)) as session:
        _, key = create_photographer(session, "Pia", "pia@example.com")
    return key


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        yield b
        b.close()


def shoot(page: Any, name: str, *, full_page: bool = True) -> Path:
    """Save a screenshot as a test artefact and say where."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    print(f"screenshot: {path}")
    return path


def wait_js(page: Any, expression: str, arg: Any = None, timeout: float = 30) -> None:
    """Poll a JS predicate from here: page.wait_for_function evaluates strings, which the pages' CSP forbids."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression, arg):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {expression}")
        time.sleep(0.1)


def search_ready() -> bool:
    return (REPO_ROOT / "api" / "routes" / "search.py").is_file()


# --- the photographer's run ----------------------------------------------------------------------


@dataclass
class PhotographerRun:
    slug: str
    code: str
    share_url: str
    upload_states: list[str]
    status_text: str
    qr_shown: bool
    drop_states: list[str] = field(default_factory=list)


def wait_thumbnails(db: sa.Engine, count: int, timeout: float, worker: CeleryWorker) -> None:
    """Processing is done before the thumbnail tasks may be: wait for those too."""
    deadline = time.monotonic() + timeout
    while True:
        with db.connect() as conn:
            missing = conn.scalar(sa.select(sa.func.count()).where(Photo.thumb_small_key.is_(None)))
            total = conn.scalar(sa.select(sa.func.count()).select_from(Photo))
        if total == count and missing == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"thumbnails not ready after {timeout:.0f}s; worker log:\n{worker.tail()}")
        time.sleep(0.3)


@contextmanager
def desktop_page(browser: Any) -> Iterator[tuple[Any, list[str]]]:
    """A fresh desktop browser context's page, and the page errors it raises (closed afterwards)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page, errors
    finally:
        context.close()


def sign_in(page: Any, api_key: str) -> None:
    page.fill("#api-key", api_key)
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#workspace:not([hidden])")


def create_event_on(page: Any, name: str) -> None:
    page.fill("#event-name", name)
    page.click("#create-form button[type=submit]")
    page.wait_for_selector("#event:not([hidden])")


@pytest.fixture(scope="module")
def photographer_run(
    browser: Any, base_url: str, api_key: str, album: Path, worker: CeleryWorker, db: sa.Engine
) -> Iterator[PhotographerRun]:
    """Sign in, create an event, upload the album with the file input, wait until it is processed."""
    with desktop_page(browser) as (page, errors):
        yield from _photographer_run(page, errors, base_url, api_key, album, worker, db)


def _photographer_run(
    page: Any, errors: list[str], base_url: str, api_key: str, album: Path, worker: CeleryWorker, db: sa.Engine
) -> Iterator[PhotographerRun]:
    try:
        page.goto(f"{base_url}/app")
        page.wait_for_selector("#signin:not([hidden])")
        shoot(page, "01-photographer-sign-in")
        page.fill("#api-key", "not-a-key")
        page.click("#signin-form button[type=submit]")
        page.wait_for_selector("#signin-error:not([hidden])")
        sign_in(page, api_key)

        create_event_on(page, "Browser test wedding")
        assert page.inner_text("#event-title") == "Browser test wedding"
        slug = page.evaluate("decodeURIComponent(location.hash.slice(1))")
        code = page.inner_text("#event-code")

        files = sorted((album / "album").glob("*.jpg"))
        page.set_input_files("#pick-files", [str(p) for p in files])
        wait_js(page, "n => document.querySelectorAll('#upload-list li.created').length === n", len(files), 60)
        upload_states = page.eval_on_selector_all("#upload-list li", "rows => rows.map(r => r.className)")
        page.wait_for_selector(
            f'#processing[data-total="{len(files)}"][data-remaining="0"]', timeout=PROCESS_TIMEOUT_MS
        )
        status_text = page.inner_text("#proc-state")
        share_url = page.input_value("#share-url")
        if search_ready():
            page.wait_for_selector("#qr:not([hidden])", timeout=10_000)
        qr_shown = page.is_visible("#qr")
        shoot(page, "02-photographer-album-processed")

        # Dropping files already uploaded: the drop zone takes them and the server skips them.
        # (A synthetic drop carries files but no directory entries; a real folder drop is walked.)
        payload = [{"name": p.name, "b64": base64.b64encode(p.read_bytes()).decode()} for p in files[:2]]
        page.evaluate(
            """files => {
                const dt = new DataTransfer();
                for (const f of files) {
                    const bytes = Uint8Array.from(atob(f.b64), c => c.charCodeAt(0));
                    dt.items.add(new File([bytes], f.name, {type: "image/jpeg"}));
                }
                const zone = document.getElementById("dropzone");
                zone.dispatchEvent(new DragEvent("dragover", {dataTransfer: dt, bubbles: true, cancelable: true}));
                zone.dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
            }""",
            payload,
        )
        wait_js(page, "() => document.querySelectorAll('#upload-list li.duplicate').length === 2")
        # And the whole folder again through the folder picker: every file is a duplicate.
        page.set_input_files("#pick-folder", str(album / "album"))
        wait_js(page, "n => document.querySelectorAll('#upload-list li.duplicate').length === n", 2 + len(files))
        drop_states = page.eval_on_selector_all("#upload-list li", "rows => rows.map(r => r.className)")
        folder_paths = page.eval_on_selector_all("#upload-list li.duplicate .name", "ns => ns.map(n => n.textContent)")
        assert folder_paths[2:] == [f"album/{p.name}" for p in files]
        wait_thumbnails(db, len(files), 60, worker)
        assert not errors, errors
        yield PhotographerRun(slug, code, share_url, upload_states, status_text, qr_shown, drop_states)
    except Exception:
        shoot(page, "photographer-failure")
        print(f"worker log:\n{worker.tail()}")
        raise


def test_photographer_uploads_an_album_and_watches_it_process(photographer_run: PhotographerRun, album: Path) -> None:
    run = photographer_run
    n = ALBUM_PHOTOS
    assert run.upload_states == ["created"] * n
    assert run.status_text.startswith(f"All {n} photos processed: {n} done, 0 failed")
    assert run.drop_states == ["created"] * n + ["duplicate"] * (2 + n)
    if search_ready():
        assert f"/e/{run.slug}?t=" in run.share_url and run.qr_shown
    else:
        assert run.share_url.endswith(f"/e/{run.slug}?code={run.code}")


# --- the attendee --------------------------------------------------------------------------------


@pytest.fixture
def phone(browser: Any) -> Iterator[Any]:
    context = browser.new_context(**PHONE, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, errors


def needs_search() -> None:
    if not search_ready():
        pytest.skip("POST /events/{slug}/search (api/routes/search.py) does not exist yet")


def pick_identity(truth: dict[str, Any]) -> tuple[str, list[str]]:
    """The identity with a held-back selfie that appears in the most album photos."""
    candidates = [(len(set(truth["identities"][i])), i) for i in truth["selfies"] if truth["identities"].get(i)]
    _, identity = max(candidates)
    return identity, sorted(set(truth["identities"][identity]))


def tiles(page: Any, grid: str) -> list[str]:
    names: list[str] = page.eval_on_selector_all(f"#{grid} .tile", "ts => ts.map(t => t.dataset.filename)")
    return names


def open_share_link(page: Any, url: str) -> None:
    """The event's shared link, up to the selfie step."""
    page.goto(url)
    page.wait_for_selector("#step-selfie:not([hidden])")


def send_selfie(page: Any, selfie: Path) -> None:
    """Consent (it comes before the first selfie), the selfie, and the results step."""
    page.check("#consent-box")
    page.set_input_files("#selfie-camera", str(selfie))
    page.wait_for_selector("#step-results:not([hidden])", timeout=60_000)


def test_attendee_finds_their_photos_from_the_shared_link(
    photographer_run: PhotographerRun, phone: Any, truth: dict[str, Any], album: Path
) -> None:
    needs_search()
    identity, expected = pick_identity(truth)
    page = phone
    open_share_link(page, photographer_run.share_url)
    shoot(page, "03-attendee-selfie-step")
    send_selfie(page, album / truth["selfies"][identity])
    matches, possible = tiles(page, "matches"), tiles(page, "possible")
    print(f"{identity}: in {expected}; matches {matches}; possible {possible}")
    assert set(expected) <= set(matches) | set(possible), (identity, expected, matches, possible)
    assert set(expected) & set(matches)
    # Every thumbnail actually loaded.
    wait_js(page, "() => [...document.querySelectorAll('.tile img')].every(i => i.complete && i.naturalWidth > 0)")
    shoot(page, "04-attendee-results")

    page.click("#matches .tile >> nth=0")
    page.wait_for_selector("#viewer[open]")
    wait_js(page, "() => document.getElementById('viewer-img').naturalWidth > 0")
    assert page.get_attribute("#viewer-download", "href")
    shoot(page, "05-attendee-photo-viewer", full_page=False)
    with page.expect_download() as one:
        page.click("#viewer-download")
    assert one.value.suggested_filename == matches[0]
    page.click("#viewer-close")

    with page.expect_download() as download:
        page.click("#download-matches")
    with zipfile.ZipFile(download.value.path()) as zf:
        names = [Path(n).name for n in zf.namelist()]
    assert len(names) == len(matches)
    assert all(any(name.endswith(Path(m).stem) or name.endswith(m) for name in names) for m in matches), names


def test_attendee_confirms_one_photo_rejects_another_and_finds_more(
    photographer_run: PhotographerRun, phone: Any, truth: dict[str, Any], album: Path
) -> None:
    needs_search()
    identity, _ = pick_identity(truth)
    page = phone
    open_share_link(page, photographer_run.share_url)
    send_selfie(page, album / truth["selfies"][identity])
    shown = tiles(page, "matches") + tiles(page, "possible")
    assert len(shown) >= 2, shown
    assert page.is_hidden("#find-more")  # nothing to send yet
    # Each tile marks the face its answers are about, inside the tile (the thumbnail is centred on it).
    marks = page.eval_on_selector_all(
        "#matches .tile, #possible .tile",
        """tiles => tiles.map(t => {
            const r = t.getBoundingClientRect(), m = t.querySelector('.face-mark');
            if (!m) return null;
            const f = m.getBoundingClientRect();
            return [(f.left + f.right) / 2 - r.left, (f.top + f.bottom) / 2 - r.top, r.width, r.height, f.width];
        })""",
    )
    assert all(m is not None and 0 < m[0] < m[2] and 0 < m[1] < m[3] and 0 < m[4] < m[2] for m in marks), marks
    keep, drop = shown[-1], shown[0]  # confirm the result it was least sure of, reject the surest
    page.click(f'li:has(.tile[data-filename="{keep}"]) .answer.me')
    page.click(f'li:has(.tile[data-filename="{drop}"]) .answer.not-me')
    page.wait_for_selector("#find-more:not([hidden])")
    shoot(page, "06-attendee-answers")
    page.click("#find-more")
    # The page sends the same selfie again with the answers: the rejected photo is gone, the
    # confirmed one leads the matches, marked as the attendee's.
    wait_js(
        page, f"() => ![...document.querySelectorAll('.tile')].some(t => t.dataset.filename === {drop!r})", timeout=90
    )
    page.wait_for_selector("#step-results:not([hidden])")
    assert drop not in tiles(page, "matches") + tiles(page, "possible")
    assert tiles(page, "matches")[0] == keep
    assert page.get_attribute(f'#matches li:has(.tile[data-filename="{keep}"])', "data-answer") == "me"
    shoot(page, "07-attendee-found-more")


def no_face_image(path: Path) -> Path:
    """A plain image with no face in it: a smooth gradient."""
    x = np.linspace(0, 255, 640, dtype=np.float32)
    rgb = np.stack([np.tile(x, (480, 1)), np.full((480, 640), 120.0), np.tile(x[::-1], (480, 1))], axis=-1)
    Image.fromarray(rgb.astype(np.uint8)).save(path, "JPEG", quality=90)
    return path


def test_attendee_gets_clear_messages_for_a_wrong_code_and_a_selfie_without_a_face(
    photographer_run: PhotographerRun, phone: Any, base_url: str, tmp_path: Path
) -> None:
    page = phone
    # This phone prefers a dark theme: the screenshots show the dark styles.
    page.emulate_media(color_scheme="dark")
    # From the landing page: a wrong code, then the right one (typed in lower case).
    page.goto(base_url + "/")
    page.fill("#code", "WRONG9")
    page.click("form button[type=submit]")
    page.wait_for_selector("#code-error")
    assert "No event has the code WRONG9" in page.inner_text("#code-error")
    shoot(page, "06-landing-wrong-code")
    page.fill("#code", photographer_run.code.lower())
    page.click("form button[type=submit]")
    page.wait_for_selector("#step-selfie:not([hidden])")
    assert f"/e/{photographer_run.slug}?code=" in page.url

    # On the event page: a wrong code typed into its form (the tab remembers the right one: forget it).
    page.evaluate("() => sessionStorage.clear()")
    page.goto(f"{base_url}/e/{photographer_run.slug}")
    page.wait_for_selector("#step-code:not([hidden])")
    page.fill("#code", "ZZZZZZ")
    page.click("#code-form button[type=submit]")
    page.wait_for_selector("#message:not([hidden])")
    assert "does not open this event" in page.inner_text("#message")
    shoot(page, "07-attendee-wrong-code")

    needs_search()
    # A link whose token is not valid: the search answers 403 and the page asks for the code.
    page.goto(f"{base_url}/e/{photographer_run.slug}?t=forged-token")
    page.check("#consent-box")  # consent comes before the first selfie
    page.set_input_files("#selfie-file", str(no_face_image(tmp_path / "plain.jpg")))
    page.wait_for_selector("#step-code:not([hidden])", timeout=30_000)
    assert "link has expired or is not valid" in page.inner_text("#message")

    page.fill("#code", photographer_run.code)
    page.click("#code-form button[type=submit]")
    page.wait_for_selector("#step-selfie:not([hidden])")
    page.check("#consent-box")  # consent comes before the first selfie
    page.set_input_files("#selfie-camera", str(tmp_path / "plain.jpg"))
    wait_js(page, "() => !document.getElementById('message').hidden && !document.getElementById('step-selfie').hidden")
    assert "No face found" in page.inner_text("#message")
    shoot(page, "08-attendee-no-face")


def test_attendee_is_told_when_no_photo_matches(
    photographer_run: PhotographerRun, phone: Any, base_url: str, api_key: str, album: Path, truth: dict[str, Any]
) -> None:
    needs_search()
    # An event without photos: nothing can match.
    response = httpx.post(
        f"{base_url}/events", json={"name": "Empty event"}, headers={"Authorization": f"Bearer {api_key}"}
    )
    assert response.status_code == 201, response.text
    empty = response.json()
    page = phone
    page.goto(f"{base_url}/e/{empty['slug']}?code={empty['access_code']}")
    identity, _ = pick_identity(truth)
    page.check("#consent-box")  # consent comes before the first selfie
    page.set_input_files("#selfie-camera", str(album / truth["selfies"][identity]))
    page.wait_for_selector("#no-matches:not([hidden]), #message:not([hidden])", timeout=30_000)
    assert page.is_visible("#no-matches"), page.inner_text("#message")
    assert page.is_hidden("#matches-section") and page.is_hidden("#possible-section")
    shoot(page, "09-attendee-no-matches")


def test_attendee_consents_before_the_selfie_and_can_remove_their_face(
    photographer_run: PhotographerRun, phone: Any, base_url: str, album: Path, truth: dict[str, Any]
) -> None:
    """Last in the module: it removes one identity's faces from the shared event."""
    needs_search()
    page = phone  # a fresh browser context: no consent remembered
    page.goto(f"{base_url}/e/{photographer_run.slug}?code={photographer_run.code}")
    page.wait_for_selector("#step-selfie:not([hidden])")
    # The consent text names the event's retention date (rendered for the code in the link).
    assert re.search(r"deleted on \w+ \d+, \d{4}|deleted on \d+ \w+ \d{4}", page.inner_text("#consent")), (
        page.inner_text("#consent")
    )
    assert page.is_disabled("#selfie-camera") and page.is_disabled("#selfie-file")
    page.check("#consent-box")
    assert page.is_enabled("#selfie-camera")

    identity, _ = pick_identity(truth)
    page.click("#optout-mode")
    assert "Remove your face" in page.inner_text("#selfie-title")
    page.set_input_files("#selfie-camera", str(album / truth["selfies"][identity]))
    page.wait_for_selector("#message:not([hidden])", timeout=60_000)
    assert "your face was removed from" in page.inner_text("#message"), page.inner_text("#message")
    shoot(page, "10-attendee-opted-out")

    # Back to searching with the same selfie: the matches are gone.
    page.click("#optout-mode")
    page.set_input_files("#selfie-camera", str(album / truth["selfies"][identity]))
    page.wait_for_selector("#step-results:not([hidden]), #message:not([hidden])", timeout=60_000)
    assert page.is_hidden("#matches-section"), page.inner_text("#matches-count")


# --- the photographer imports from the bucket (last: it adds photos to the module's database) ---


def test_photographer_imports_a_prefix_and_sees_what_was_not_imported(
    browser: Any, base_url: str, api_key: str, album: Path, settings: Settings, worker: CeleryWorker
) -> None:
    assert settings.storage_dir is not None
    folder = settings.storage_dir / "imports" / "browser-card"
    folder.mkdir(parents=True)
    photos = sorted((album / "album").glob("*.jpg"))[:2]
    for p in photos:
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "notes.jpg").write_text("not a photo")
    with desktop_page(browser) as (page, errors):
        try:
            page.goto(f"{base_url}/app")
            sign_in(page, api_key)
            create_event_on(page, "Imported from the bucket")

            page.fill("#import-prefix", "events/")
            page.click("#import-form button[type=submit]")
            page.wait_for_selector("#import-msg.error:not([hidden])")
            assert "outside 'events/'" in page.inner_text("#import-msg")

            page.fill("#import-prefix", "imports/browser-card/")
            page.click("#import-form button[type=submit]")
            page.wait_for_selector("#import-msg.info:not([hidden])")  # "Importing 3 files…", then:
            page.wait_for_selector('#processing[data-total="2"][data-remaining="0"]', timeout=PROCESS_TIMEOUT_MS)
            wait_js(page, "t => document.getElementById('import-msg').textContent === t",
                    "Import from imports/browser-card/ finished (3 files).")  # fmt: skip
            page.wait_for_selector("#rejected:not([hidden])", timeout=10_000)
            rows = page.eval_on_selector_all("#rejected-rows tr", "rs => rs.map(r => r.innerText)")
            assert len(rows) == 1 and "imports/browser-card/notes.jpg" in rows[0] and "unsupported_format" in rows[0]
            assert page.inner_text("#proc-state").endswith("1 file in storage could not be imported.")
            shoot(page, "11-photographer-import")
            assert not errors, errors
        except Exception:
            shoot(page, "photographer-import-failure")
            print(f"worker log:\n{worker.tail()}")
            raise
