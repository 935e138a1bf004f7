"""Errors as HTTP responses: every UserError through one handler, anything else a bare 500."""

from __future__ import annotations

from http import HTTPStatus

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from photomatch.errors import UserError
from photomatch.logs import get_logger

log = get_logger(__name__)


def install_error_handlers(app: FastAPI) -> None:
    """Map errors a user can cause to `{"detail", "reason"}` with their status; never a traceback."""

    @app.exception_handler(UserError)
    async def _user_error(_: Request, exc: UserError) -> JSONResponse:
        return JSONResponse(
            {"detail": exc.public_message, "reason": exc.reason}, status_code=exc.status, headers=exc.headers
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # The framework's own refusals (an unknown path, a wrong method, a body over a limit) get a
        # reason too, so every 4xx a client sees has one: the status's name, e.g. not_found.
        try:
            reason = HTTPStatus(exc.status_code).name.lower()
        except ValueError:
            reason = "http_error"
        return JSONResponse({"detail": exc.detail, "reason": reason}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default echoes each offending value back (`input`): a 1 MB form field came back
        # as 2 MB of JSON. Say where and what, never the value.
        errors = [{k: e[k] for k in ("type", "loc", "msg") if k in e} for e in exc.errors()]
        return JSONResponse(
            {"detail": jsonable_encoder(errors), "reason": "invalid_request"},
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
        log.exception("api.unhandled_error", method=request.method, path=request.url.path)
        return JSONResponse({"detail": "internal server error"}, status_code=status.HTTP_500_INTERNAL_SERVER_ERROR)
