"""Every refusal the API answers carries a stable reason beside its message, whoever raised it."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

API = Path(__file__).resolve().parents[2] / "api"


def test_no_route_or_dependency_raises_a_bare_http_exception() -> None:
    """Errors a user can cause share the UserError base (reason, message, status): api/problems.py."""
    raised = []
    for path in sorted(API.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                name = getattr(node.exc.func, "id", getattr(node.exc.func, "attr", ""))
                if name == "HTTPException":
                    raised.append(f"{path.relative_to(API.parent)}:{node.lineno}")
    assert raised == []


def test_refusals_of_the_doors_and_of_the_framework_have_reasons(
    api_client: TestClient, make_photographer: Callable[[str], dict]
) -> None:
    ann = make_photographer("Ann")
    cases = [
        (api_client.get("/events"), 401, "missing_api_key"),
        (api_client.get("/events", headers={"X-API-Key": "pm_not_a_key_at_all"}), 401, "invalid_api_key"),
        (api_client.get("/events/nope", headers=ann), 404, "event_not_found"),
        (api_client.get("/api/resolve", params={"code": "ZZZZZZ"}), 404, "unknown_code"),
        (api_client.get("/files/events/x/originals/a.jpg", params={"exp": "1", "sig": "x"}), 403, "invalid_link"),
        (api_client.get("/no/such/path"), 404, "not_found"),
        (api_client.put("/events", headers=ann), 405, "method_not_allowed"),
    ]
    for response, status, reason in cases:
        assert (response.status_code, response.json()["reason"]) == (status, reason), response.url
        assert response.json()["detail"]
