"""A lean dispatcher for the calls distributors make all day, built from FastAPI's own routes.

FastAPI's route matching, dependency solving and middleware stack cost more per request than
the work of a cached show detail or an order move's HTTP side (profiled: about as much as the
signature check, both Redis checks and the rendering together). This ASGI middleware sits in
front of FastAPI. For each request it walks the app's routes in order, with each route's own
matching (so it takes exactly the requests FastAPI would route to them, and shadows nothing);
when the route that matches is marked `@hot` it calls that route's endpoint directly, with the
path parameters the route converted and the dependencies the route declares, and answers
errors through the app's own exception handlers. Everything else falls through to FastAPI.

A route marked `@hot` whose signature the dispatcher cannot serve as FastAPI would (query,
header, cookie or body parameters; dependencies that have parameters or dependencies of their
own; converted path parameters; a response class or model of its own) is refused when the app
is built, never served differently. (`app.dependency_overrides` are not applied on the hot
paths; the platform sets none.)
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.models import Dependant
from fastapi.responses import JSONResponse as FastAPIJSONResponse
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from starlette._utils import get_route_path
from starlette.convertors import StringConvertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from serve_app.responses import JSONResponse

F = TypeVar("F", bound=Callable[..., Any])
# As Starlette keeps them (a handler may answer at once or be awaited).
ExceptionHandler = Callable[[Request, Any], Response | Awaitable[Response]]

_MARK = "__showdist_hot_path__"


def hot(endpoint: F) -> F:
    """Mark a route's endpoint as a hot path (put it under the route's decorator)."""
    setattr(endpoint, _MARK, True)
    return endpoint


class NotServable(TypeError):
    """A route marked hot that the dispatcher cannot serve as FastAPI does."""


@dataclass(frozen=True, slots=True)
class HotRoute:
    route: RouteContext
    request_param: str | None
    dependencies: tuple[tuple[str, Callable[[Request], Awaitable[Any]]], ...]
    status_code: int

    async def __call__(self, request: Request, path_params: Mapping[str, Any]) -> Response:
        kwargs: dict[str, Any] = dict(path_params)
        if self.request_param is not None:
            kwargs[self.request_param] = request
        for name, dependency in self.dependencies:
            kwargs[name] = await dependency(request)
        assert self.route.endpoint is not None
        result = await self.route.endpoint(**kwargs)
        return (
            result
            if isinstance(result, Response)
            else JSONResponse(result, status_code=self.status_code)
        )


def _refuse(route: RouteContext, why: str) -> NotServable:
    return NotServable(f"hot route {sorted(route.methods or ())} {route.path}: {why}")


def _reads_request_data(d: Dependant) -> bool:
    """Whether `d` takes query, header, cookie or body parameters (FastAPI would parse them)."""
    return bool(d.query_params or d.header_params or d.cookie_params or d.body_params)


def _takes_fastapi_objects(d: Dependant) -> bool:
    """Whether `d` takes a parameter only FastAPI can supply (a websocket, a response, ...)."""
    return bool(
        d.websocket_param_name
        or d.http_connection_param_name
        or d.response_param_name
        or d.background_tasks_param_name
        or d.security_scopes_param_name
    )


def _request_only(d: Dependant) -> bool:
    return not (
        d.path_params or d.dependencies or _reads_request_data(d) or _takes_fastapi_objects(d)
    )


def hot_route(route: RouteContext) -> HotRoute:
    """How the dispatcher serves `route` (as included in the app), or NotServable."""
    d: Dependant = route.dependant
    if not inspect.iscoroutinefunction(route.endpoint):
        raise _refuse(route, "the endpoint is not a coroutine function")
    if _reads_request_data(d):
        raise _refuse(route, "it takes query, header, cookie or body parameters")
    if _takes_fastapi_objects(d):
        raise _refuse(route, "it takes a parameter only FastAPI can supply")
    deps: list[tuple[str, Callable[[Request], Awaitable[Any]]]] = []
    for sub in d.dependencies:
        if sub.name is None or sub.call is None or not inspect.iscoroutinefunction(sub.call):
            raise _refuse(route, "a dependency is not a named coroutine function")
        if not _request_only(sub) or sub.request_param_name is None:
            raise _refuse(route, f"dependency {sub.name} needs more than the request")
        deps.append((sub.name, sub.call))
    if any(not isinstance(c, StringConvertor) for c in route.param_convertors.values()):
        raise _refuse(route, "a path parameter is converted (only plain strings are served)")
    declared = route.response_class
    if isinstance(declared, DefaultPlaceholder):
        declared = declared.value
    if not (
        isinstance(declared, type) and issubclass(declared, FastAPIJSONResponse | JSONResponse)
    ):
        raise _refuse(route, "it declares a response class other than JSON")
    model = route.response_model
    if model is not None and model is not dict and getattr(model, "__origin__", None) is not dict:
        raise _refuse(route, "its response model would be validated by FastAPI")
    return HotRoute(route, d.request_param_name, tuple(deps), route.status_code or 200)


def _is_hot(route: RouteContext) -> bool:
    return isinstance(route.original_route, APIRoute) and bool(
        getattr(route.endpoint, _MARK, False)
    )


class HotPaths:
    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Sequence[BaseRoute],
        handlers: Mapping[Any, ExceptionHandler],
    ) -> None:
        self.app = app
        self._handlers = handlers
        # The app's routes as FastAPI matches them, in order, each with its full path.
        walk: list[tuple[RouteContext, HotRoute | None]] = []
        for route in iter_route_contexts(routes):
            if getattr(route, "path_regex", None) is None:
                break  # a kind of route not matched by path (a mount): nothing past it
            walk.append((route, hot_route(route) if _is_hot(route) else None))
        # Past the last hot route nothing can be served here: the walk stops there.
        last = max((i for i, (_, h) in enumerate(walk) if h is not None), default=-1)
        self._walk = walk[: last + 1]

    @property
    def hot_routes(self) -> list[RouteContext]:
        return [h.route for _, h in self._walk if h is not None]

    def match(self, scope: Scope) -> tuple[HotRoute, dict[str, Any]] | None:
        """The hot route FastAPI would send this request to, with its path parameters; None
        when FastAPI would send it elsewhere (or nowhere). Matched as Starlette matches a
        route: the whole path against the route's pattern, then the method."""
        path, method = get_route_path(scope), scope["method"]
        for route, served in self._walk:
            found = route.path_regex.match(path)
            if found is None:
                continue
            methods = route.methods
            if methods and method not in methods:
                continue  # (FastAPI goes on looking too, and answers 405 if nothing else)
            if served is None:
                return None
            convertors = route.param_convertors
            params = {k: convertors[k].convert(v) for k, v in found.groupdict().items()}
            return served, params
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            found = self.match(scope)
            if found is not None:
                request = Request(scope, receive)
                try:
                    response = await found[0](request, found[1])
                except Exception as exc:
                    response = await self._handle(request, exc)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _handle(self, request: Request, exc: Exception) -> Response:
        """The app's own handler for `exc` (the nearest registered base class)."""
        for kind in type(exc).__mro__:
            handler = self._handlers.get(kind)
            if handler is not None:
                answer = handler(request, exc)
                return await answer if inspect.isawaitable(answer) else answer
        raise exc
