"""Schemathesis: requests generated from the OpenAPI schema, with a photographer's key and a real event's
slug, must never get a 5xx. Bounded (MAX_EXAMPLES per operation) so it fits make test."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from api.main import create_app
from photomatch.config import Settings
from tests.support.accounts import new_photographer

MAX_EXAMPLES = 30


@pytest.fixture(scope="module")
def api_schema(settings: Settings) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(settings))


@pytest.fixture(scope="module")
def owner(settings: Settings) -> dict[str, str]:
    """A photographer's key and one of their events, so generated requests get past authentication."""
    from fastapi.testclient import TestClient

    headers = new_photographer(settings, "Fuzz")
    with TestClient(create_app(settings), headers=headers) as c:
        event = c.post("/events", json={"name": "Fuzzed"}).json()
    return {**headers, "slug": event["slug"], "code": event["access_code"]}


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_server_error(case: Any, owner: dict[str, str]) -> None:
    if "slug" in (case.path_parameters or {}):
        case.path_parameters["slug"] = owner["slug"]
    headers = {"Authorization": owner["Authorization"]}
    case.call_and_validate(headers=headers, checks=[checks.not_a_server_error])
