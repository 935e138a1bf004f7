"""The saved CLI credentials (API URL and key) that `photomatch run` and `photographer create` write."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from photomatch.config import Settings

CREDENTIALS_FILE = "credentials.json"
FLOWER_AUTH_FILE = "flower-auth"
SECRET_KEY_FILE = "secret-key"
METRICS_TOKEN_FILE = "metrics-token"
DEFAULT_API_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class Credentials:
    """Where the API is and the key to use with it."""

    api_url: str
    api_key: str | None


def credentials_path(settings: Settings) -> Path:
    """data_dir/credentials.json."""
    return settings.data_dir / CREDENTIALS_FILE


def load_saved(settings: Settings) -> dict[str, str]:
    """The saved credentials file as a dict; empty when missing or unreadable."""
    try:
        data = json.loads(credentials_path(settings).read_text())
    except (OSError, ValueError):
        return {}
    return {k: str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def save(settings: Settings, *, api_key: str, email: str, api_url: str | None = None) -> Path:
    """Write the credentials file readable by its owner only; return its path."""
    path = credentials_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"api_key": api_key, "email": email}
    if api_url:
        data["api_url"] = api_url
    # Created 0600 before the key is written, so it is never world-readable even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    return path


def kept_secret(settings: Settings, name: str, make: Callable[[], str], valid: Callable[[str], bool] = bool) -> str:
    """The value kept in data_dir/`name` (owner-only), made by `make` and written there the first time
    (or when what is kept there is not `valid`).

    The one-command stack keeps its own secrets this way, so that they survive restarts (links it
    signed stay valid, logins stay the same) without anyone choosing a password.
    """
    path = settings.data_dir / name
    try:
        value = path.read_text().strip()
    except OSError:
        value = ""
    if not valid(value):
        value = make()
        path.parent.mkdir(parents=True, exist_ok=True)
        # Created 0600 before the secret is written, so it is never readable by others even briefly.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # a file that was already there keeps its mode through O_CREAT
        with os.fdopen(fd, "w") as f:
            f.write(value + "\n")
    return value


def flower_basic_auth(settings: Settings) -> str:
    """`admin:<random>` for the embedded Flower, generated once and kept in data_dir (owner-only)."""
    return kept_secret(
        settings, FLOWER_AUTH_FILE, lambda: f"admin:{secrets.token_urlsafe(18)}", valid=lambda v: ":" in v
    )


def stack_secret_key(settings: Settings) -> str:
    """The key the one-command stack signs download links and attendee tokens with (data_dir/secret-key)."""
    return kept_secret(settings, SECRET_KEY_FILE, lambda: secrets.token_urlsafe(48))


def stack_metrics_token(settings: Settings) -> str:
    """The bearer token of the one-command stack's /metrics (data_dir/metrics-token)."""
    return kept_secret(settings, METRICS_TOKEN_FILE, lambda: secrets.token_urlsafe(24))


def resolve(settings: Settings, api_url: str | None = None, api_key: str | None = None) -> Credentials:
    """Flags first, then PHOTOMATCH_API_URL / PHOTOMATCH_API_KEY, then the saved file, then the local default."""
    saved = load_saved(settings)
    url = api_url or os.environ.get("PHOTOMATCH_API_URL") or saved.get("api_url") or DEFAULT_API_URL
    key = api_key or os.environ.get("PHOTOMATCH_API_KEY") or saved.get("api_key")
    return Credentials(api_url=url.rstrip("/"), api_key=key or None)
