"""Health for orchestrators: liveness (the process answers) and readiness (its dependencies answer)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import resources
from photomatch.health import readiness

router = APIRouter(tags=["ops"])


@router.get("/health")
@router.get("/health/live")
def live() -> dict[str, str]:
    """Liveness: the process answers (no dependency is checked, so a database outage restarts nothing)."""
    return {"status": "ok"}


@router.get("/health/ready", responses={503: {"description": "a dependency is unreachable; `checks` names it"}})
def ready(request: Request) -> JSONResponse:
    """Readiness: the database, Redis and storage each answer; 503 with the failing one named otherwise."""
    res = resources(request)
    checks = readiness(res.session_factory, res.settings, res.storage)
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ready" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503)
