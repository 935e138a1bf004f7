"""Schemathesis: requests generated from the OpenAPI schema, with a photographer's key and a real event's
slug, must never get a 5xx. Bounded (MAX_EXAMPLES per operation) so it fits make test."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from api.main import create_app
from photomatch.config import Settings
from tests.support.accounts import new_photographer

MAX_EXAMPLES = 50


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


def test_no_request_gets_a_server_error(api_schema: Any, owner: dict[str, str]) -> None:
    """Each operation in turn, MAX_EXAMPLES generated cases each (schemathesis's strategies under hypothesis).

    The pytest plugin of schemathesis 4 does not load under this pytest, so the operations are walked
    here; the strategies and the check are schemathesis's own.
    """
    headers = {"Authorization": owner["Authorization"]}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 20
    calls = 0

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case: Any) -> None:
            nonlocal calls
            if "slug" in (case.path_parameters or {}):
                case.path_parameters["slug"] = owner["slug"]
            case.call_and_validate(headers=headers, checks=[checks.not_a_server_error])
            calls += 1

        run()
    print(f"schemathesis: {calls} requests over {len(operations)} operations, no 5xx")
    assert calls >= len(operations) * 5
