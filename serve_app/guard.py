"""The door of the HTTP API: what every request must be before any route reads it.

- A body larger than the limit is refused with 413 `payload_too_large` without being read:
  at once when its `Content-Length` says so, else as soon as the bytes received pass the limit
  (the route reading it gets the error, never the bytes).
- The path and the query string may not hold control characters (U+0000 above all: they only
  ever mean a mistake or an attack, and PostgreSQL refuses NUL outright): 422.
- A query parameter may be given once: every parameter of the API is single-valued, and a
  repeated one would change meaning under one signature (the signature covers both values,
  a reader would take one): 422.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from actors.metrics import request_refused
from domain.text import control_character
from serve_app.errors import ApiError, error_response


class PayloadTooLarge(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, "payload_too_large", f"the body may hold at most {limit} bytes")


def _target_problem(scope: Scope) -> str | None:
    raw_path = scope.get("raw_path")
    path = unquote(raw_path.decode("latin-1")) if isinstance(raw_path, bytes) else scope["path"]
    bad = control_character(path)
    if bad is not None:
        return f"path: a control character ({bad}) is not allowed"
    query = scope.get("query_string", b"").decode("latin-1")
    if not query:
        return None
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        return "query: not a query string"
    seen: set[str] = set()
    for name, value in pairs:
        bad = control_character(name) or control_character(value)
        if bad is not None:
            return f"{name or 'query'}: a control character ({bad}) is not allowed"
        if name in seen:
            return f"{name}: given more than once (every query parameter is single-valued)"
        seen.add(name)
    return None


class InputGuard:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self._max = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = _refusal(scope, self._max)
        if refusal is not None:
            request_refused(refusal.code)
            response = error_response(refusal.status, refusal.code, refusal.message)
            await response(scope, receive, send)
            return
        await self.app(scope, self._bounded(receive), send)

    def _bounded(self, receive: Receive) -> Receive:
        limit = self._max
        received = 0

        async def bounded() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    request_refused("payload_too_large")
                    raise PayloadTooLarge(limit)
            return message

        return bounded


def _refusal(scope: Scope, max_body_bytes: int) -> ApiError | None:
    """Why the guard refuses the request before reading any of it, if it does."""
    problem = _target_problem(scope)
    if problem is not None:
        return ApiError(422, "invalid_request", problem)
    declared = _content_length(scope)
    if declared == -1:
        return ApiError(400, "invalid_request", "content-length: not a number")
    if declared is not None and declared > max_body_bytes:
        return PayloadTooLarge(max_body_bytes)
    return None


def _content_length(scope: Scope) -> int | None:
    """The declared body length; None when not declared, -1 when not a number."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isascii() and text.isdigit() else -1
    return None
