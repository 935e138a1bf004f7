"""`photomatch api` hands uvicorn the proxies whose forwarded client address it may believe."""

from __future__ import annotations

import argparse
from typing import Any

import pytest
import uvicorn

from cli.services import cmd_api
from photomatch.config import get_settings


@pytest.mark.parametrize(("env", "expected"), [(None, "127.0.0.1"), ("10.0.0.0/8", "10.0.0.0/8"), ("*", "*")])
def test_the_api_trusts_forwarded_addresses_only_from_the_configured_proxies(
    monkeypatch: pytest.MonkeyPatch, env: str | None, expected: str
) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append(kw))
    monkeypatch.setattr("photomatch.logs.configure_logging", lambda *a, **kw: None)  # keep the suite's logging
    if env is None:
        monkeypatch.delenv("PHOTOMATCH_FORWARDED_ALLOW_IPS", raising=False)
    else:
        monkeypatch.setenv("PHOTOMATCH_FORWARDED_ALLOW_IPS", env)
    get_settings.cache_clear()
    try:
        assert cmd_api(argparse.Namespace(host=None, port=None, log_level="info")) == 0
    finally:
        get_settings.cache_clear()
    (kw,) = calls
    assert kw["proxy_headers"] is True and kw["forwarded_allow_ips"] == expected
