"""The API's error shape, {"error": {"code": ..., "message": ...}} with a fitting status, and
the one mapping from whatever a route raised to its response (`error_for`), used by FastAPI's
exception handlers and the hot-path dispatcher alike."""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from actors.remote import ActorRole, ActorUnavailable
from domain.errors import Refusal
from serve_app.responses import JSONResponse

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def describe_validation(exc: ValidationError | RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = "".join(
            f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.get("loc", ()) if p != "body"
        ).lstrip(".")
        parts.append(f"{loc or 'body'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


# An actor that could not answer: 503 with the code that names it. Its state on disk is
# consistent (every move is one transaction), so the request may be sent again.
UNAVAILABLE_CODE: dict[ActorRole, str] = {
    ActorRole.ORDER_HOST: "order_host_unavailable",
    ActorRole.SUPPLIER: "supplier_unavailable",
    ActorRole.SETTLEMENT: "settlement_unavailable",
}

# Refusals of the rules, by kind: each maps to its error (see `refusal`).
_REFUSALS: dict[type[Refusal], Callable[[Refusal], ApiError]] = {}


def refusal(kind: type[Refusal], to_error: Callable[[Refusal], ApiError]) -> None:
    """Declare the HTTP error of a kind of refusal (the routes that meet it declare it)."""
    _REFUSALS[kind] = to_error


def _database_unavailable(exc: BaseException) -> bool:
    """The database being unreachable, or a pooled connection it dropped (its first use
    after a restart fails, and the pool replaces them all)."""
    return isinstance(exc, DBAPIError) and (
        exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)
    )


def error_for(method: str, path: str, exc: Exception) -> JSONResponse:
    """The response to an exception a route raised."""
    if isinstance(exc, ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.headers)
    if isinstance(exc, Refusal):
        for kind, to_error in _REFUSALS.items():
            if isinstance(exc, kind):
                return error_for(method, path, to_error(exc))
    if _database_unavailable(exc):  # this process's own database call
        log.warning("database unavailable on %s %s: %s", method, path, exc)
        return error_response(503, "database_unavailable", "please retry shortly")
    if isinstance(exc, ActorUnavailable):  # (its database failing inside it included)
        if exc.cause is not None:
            log.error("%s on %s %s", exc, method, path, exc_info=exc.cause)
        return error_response(503, UNAVAILABLE_CODE[exc.role], "please retry shortly")
    log.error("unhandled error on %s %s", method, path, exc_info=exc)
    return error_response(500, "internal_error", "an unexpected error occurred")


def allowed_methods(request: Request) -> str:
    """The `Allow` header of a 405: every method of every route of the request's path
    (Starlette names only those of the first route that matched the path)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        found, _ = route.matches(request.scope)
        if found is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_req: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_request", describe_validation(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(req: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(req)
        return error_response(exc.status_code, code, str(exc.detail), headers or None)

    @app.exception_handler(Exception)
    async def _any(req: Request, exc: Exception) -> JSONResponse:
        return error_for(req.method, req.url.path, exc)

    # Starlette runs a handler for `Exception` itself in its outermost middleware, which
    # answers and then re-raises to the server; the kinds a route raises on purpose are
    # registered by kind, so they are answered like any HTTP error.
    for kind in (ApiError, Refusal, ActorUnavailable, DBAPIError):
        app.add_exception_handler(kind, _any)
