"""A lean dispatcher for the calls distributors make all day.

FastAPI's route matching, dependency solving and middleware stack cost more per request than
the work of a cached show detail or an order move's HTTP side (profiled: about as much as the
signature check, both Redis checks and the rendering together). This ASGI middleware sits in
front of FastAPI and sends the hot paths straight to the *same* endpoint functions FastAPI
declares (so the OpenAPI document, the behaviour and the error shapes are one thing), with
their one dependency called directly. Everything else falls through to FastAPI unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from serve_app import app as routes
from serve_app import catalog
from serve_app.auth import Caller
from serve_app.errors import ApiError, error_response, unexpected_response
from serve_app.responses import JSONResponse

Handler = Callable[[Request, list[str]], Awaitable[Any]]


async def _healthz(_request: Request, _params: list[str]) -> Any:
    return await routes.healthz()


async def _create(request: Request, _params: list[str]) -> Any:
    return await routes.create_order(request, await routes.distributor(request))


def _by_id(endpoint: Callable[[str, Request, Caller], Awaitable[Any]]) -> Handler:
    """A distributor's call on one resource, the id being the path's one parameter."""

    async def handle(request: Request, params: list[str]) -> Any:
        return await endpoint(params[0], request, await routes.distributor(request))

    return handle


_show = _by_id(catalog.get_show)
_get = _by_id(routes.get_order)
_issue = _by_id(routes.issue_order)
_cancel = _by_id(routes.cancel_order)


_SEGMENT = "([^/]+)"
_ROUTES: dict[str, list[tuple[re.Pattern[str], Handler]]] = {
    "GET": [
        (re.compile(r"/healthz"), _healthz),
        (re.compile(rf"/v1/shows/{_SEGMENT}"), _show),
        (re.compile(rf"/v1/orders/{_SEGMENT}"), _get),
    ],
    "POST": [
        (re.compile(r"/v1/orders"), _create),
        (re.compile(rf"/v1/orders/{_SEGMENT}/issue"), _issue),
        (re.compile(rf"/v1/orders/{_SEGMENT}/cancel"), _cancel),
    ],
}


def match(method: str, path: str) -> tuple[Handler, list[str]] | None:
    for pattern, handler in _ROUTES.get(method, ()):
        found = pattern.fullmatch(path)
        if found is not None:
            return handler, list(found.groups())
    return None


class HotPaths:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            found = match(scope["method"], scope["path"])
            if found is not None:
                response = await self._respond(found[0], Request(scope, receive), found[1])
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    @staticmethod
    async def _respond(handler: Handler, request: Request, params: list[str]) -> Response:
        try:
            result = await handler(request, params)
        except ApiError as exc:
            return error_response(exc.status, exc.code, exc.message, exc.headers)
        except Exception as exc:
            return unexpected_response(request.method, request.url.path, exc)
        return result if isinstance(result, Response) else JSONResponse(result)
