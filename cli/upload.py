"""`photomatch upload`: send a folder of photos to an event, in parallel, skipping what is already there.

Resumable by content: every local file is hashed first and the API is asked which SHA-256s the
event already holds, so a re-run after an interruption (or on a grown folder) sends only the rest.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from cli.client import ApiClient, ApiError
from cli.errors import CliError

log = logging.getLogger(__name__)

# What the API accepts (photomatch.photos.files sniffs the bytes; this only picks candidates).
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp"})
# A request carries a few files: fewer round trips for small JPEGs, while a failed request resends
# little and the progress bar still moves smoothly.
BATCH_FILES = 8
BATCH_BYTES = 64 * 1024 * 1024
_HASH_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class LocalFile:
    """A candidate file with its size and content hash."""

    path: Path
    size: int
    sha256: str


@dataclass
class Summary:
    """What an upload run did."""

    found: int = 0
    skipped: int = 0
    uploaded: int = 0
    duplicates: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)


def register(sub: Any) -> None:
    """Add `photomatch upload`."""
    p = sub.add_parser("upload", help="upload a folder of photos to an event (parallel, resumable)")
    p.add_argument("paths", nargs="+", type=Path, metavar="DIR", help="folders (searched recursively) or files")
    p.add_argument("--event", required=True, help="the event's slug")
    p.add_argument("--api", default=None, help="API base URL (default: PHOTOMATCH_API_URL, saved, or localhost:8000)")
    p.add_argument("--key", default=None, help="API key (default: PHOTOMATCH_API_KEY or the saved credentials)")
    p.add_argument("--jobs", "-j", type=int, default=4, help="parallel requests (default 4)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(handler=cmd_upload)


def find_images(paths: list[Path]) -> list[Path]:
    """Image files under `paths` (recursively, hidden entries skipped), sorted, each once."""
    found: dict[Path, None] = {}
    for root in paths:
        if root.is_file():
            found[root.resolve()] = None
            continue
        if not root.is_dir():
            raise CliError(f"{root}: no such file or directory")
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                    found[(Path(dirpath) / name).resolve()] = None
    return list(found)


def hash_file(path: Path) -> LocalFile:
    """Size and SHA-256 of one file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return LocalFile(path, size, digest.hexdigest())


def batched(files: list[LocalFile]) -> Iterator[list[LocalFile]]:
    """Consecutive groups of at most BATCH_FILES files and about BATCH_BYTES bytes."""
    batch: list[LocalFile] = []
    size = 0
    for f in files:
        if batch and (len(batch) == BATCH_FILES or size + f.size > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(f)
        size += f.size
    if batch:
        yield batch


def _content_type(path: Path) -> str:
    suffix = path.suffix.lower()
    return {".png": "image/png", ".webp": "image/webp"}.get(suffix, "image/jpeg")


def upload_batch(client: ApiClient, slug: str, batch: list[LocalFile]) -> list[tuple[LocalFile, str, str | None]]:
    """POST one batch as multipart; return (file, outcome, reason) per file, outcome in created/duplicate/failed."""

    def body() -> dict[str, Any]:
        # Reopened on every attempt so a retry resends whole files; httpx streams them from disk.
        stack = ExitStack()
        opened.append(stack)
        files = [("files", (f.path.name, stack.enter_context(f.path.open("rb")), _content_type(f.path))) for f in batch]
        return {"files": files}

    opened: list[ExitStack] = []
    try:
        result = client.request("POST", f"/events/{slug}/photos", body=body)
    except ApiError as e:
        if e.status_code == 404:
            raise CliError(f"no event {slug!r} for this API key") from None
        return [(f, "failed", e.detail) for f in batch]
    finally:
        for stack in opened:
            stack.close()
    return parse_upload_result(batch, result)


def parse_upload_result(batch: list[LocalFile], result: Any) -> list[tuple[LocalFile, str, str | None]]:
    """Pair the API's per-file results (in request order) with the batch."""
    items: list[dict[str, Any]] = result["results"]
    if len(items) != len(batch):
        raise CliError(f"the API answered {len(items)} results for {len(batch)} files; is it a photomatch API?")
    outcomes: list[tuple[LocalFile, str, str | None]] = []
    for f, item in zip(batch, items, strict=True):
        status = item["status"]
        if status == "rejected":
            outcomes.append((f, "failed", item.get("message") or item.get("reason") or "rejected"))
        else:
            outcomes.append((f, "duplicate" if status == "duplicate" else "created", None))
    return outcomes


def run_upload(client: ApiClient, slug: str, paths: list[Path], *, jobs: int = 4, progress: bool = True) -> Summary:
    """Hash, skip known, upload the rest with `jobs` parallel requests; return what happened."""
    summary = Summary()
    candidates = find_images(paths)
    client.get_event(slug)  # a wrong slug or key fails here, before any hashing
    summary.found = len(candidates)
    if not candidates:
        return summary

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        hashed = list(
            tqdm(pool.map(hash_file, candidates), total=len(candidates), desc="hashing", unit="file",
                 disable=not progress, file=sys.stderr)
        )  # fmt: skip
    known = client.known(slug, sorted({f.sha256 for f in hashed}))
    # Identical local copies are sent once; the rest are skipped like files already in the event.
    todo: dict[str, LocalFile] = {}
    for f in hashed:
        if f.sha256 not in known and f.sha256 not in todo:
            todo[f.sha256] = f
    pending = list(todo.values())
    summary.skipped = len(hashed) - len(pending)
    log.info("cli.upload.plan found=%d skipped=%d to_upload=%d", summary.found, summary.skipped, len(pending))
    if not pending:
        return summary

    total = sum(f.size for f in pending)
    with (
        tqdm(total=total, desc="uploading", unit="B", unit_scale=True, unit_divisor=1024, disable=not progress,
             file=sys.stderr) as bar,
        ThreadPoolExecutor(max_workers=jobs) as pool,
    ):  # fmt: skip
        futures = [pool.submit(upload_batch, client, slug, batch) for batch in batched(pending)]
        try:
            for future in as_completed(futures):
                for f, outcome, reason in future.result():
                    bar.update(f.size)
                    if outcome == "created":
                        summary.uploaded += 1
                    elif outcome == "duplicate":
                        summary.duplicates += 1
                    else:
                        summary.failed.append((f.path, reason or "rejected"))
                        log.info("cli.upload.rejected path=%s reason=%s", f.path, reason)
        except BaseException:
            # A fatal error (bad key, event gone, Ctrl-C): do not start the queued batches.
            for future in futures:
                future.cancel()
            raise
    return summary


def cmd_upload(args: argparse.Namespace) -> int:
    """Upload photos to an event; exit 1 if any file was rejected."""
    from cli import credentials
    from photomatch.config import get_settings

    if args.jobs < 1:
        raise CliError("--jobs must be at least 1")
    creds = credentials.resolve(get_settings(), args.api, args.key)
    with ApiClient(creds, max_connections=args.jobs) as client:
        summary = run_upload(client, args.event, args.paths, jobs=args.jobs, progress=not args.no_progress)
    for path, reason in summary.failed:
        print(f"photomatch: {path}: {reason}", file=sys.stderr)
    print(
        f"{summary.found} images found: {summary.uploaded} uploaded, "
        f"{summary.skipped + summary.duplicates} already in event {args.event!r}, {len(summary.failed)} rejected"
    )
    if summary.uploaded:
        print(f"follow the processing with: photomatch status {args.event} --wait")
    return 1 if summary.failed else 0
