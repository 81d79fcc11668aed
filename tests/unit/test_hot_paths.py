"""The lean dispatcher is built from the app's own routes: it must serve exactly the routes
marked hot, take exactly the requests FastAPI would route to them (shadowing no other route),
refuse at build time a hot route it could not serve as FastAPI does, and answer errors through
the app's own handlers."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.types import Receive, Scope, Send

from serve_app.app import build_app
from serve_app.errors import ApiError, install_error_handlers
from serve_app.hot_paths import HotPaths, NotServable, hot

HOT = {
    ("GET", "/healthz"),
    ("GET", "/v1/shows/{show_id}"),
    ("GET", "/v1/orders/{order_id}"),
    ("POST", "/v1/orders"),
    ("POST", "/v1/orders/{order_id}/issue"),
    ("POST", "/v1/orders/{order_id}/cancel"),
}


async def _nowhere(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("fell through")


def dispatcher(app: FastAPI) -> HotPaths:
    return HotPaths(_nowhere, routes=app.router.routes, handlers=app.exception_handlers)


def declared_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) the app's API routes serve, as included (with their prefixes)."""
    return [
        (m, str(r.path_format))
        for r in iter_route_contexts(app.router.routes)
        if isinstance(r.original_route, APIRoute)
        for m in sorted(r.methods or ())
    ]


def scope_of(method: str, path: str) -> Scope:
    return {"type": "http", "method": method, "path": path, "root_path": "", "query_string": b""}


def sample(path_format: str) -> str:
    return re.sub(r"\{[^}]+\}", "abc_123", path_format)


def test_the_hot_routes_are_the_marked_ones() -> None:
    app = build_app()
    hot_routes = {
        (m, str(r.path_format)) for r in dispatcher(app).hot_routes for m in r.methods or ()
    }
    assert hot_routes == HOT
    assert set(declared_routes(app)) >= HOT


def test_hot_paths_take_exactly_the_hot_routes() -> None:
    app = build_app()
    d = dispatcher(app)
    routes = declared_routes(app)
    assert len(routes) > 30
    for method, path_format in routes:
        taken = d.match(scope_of(method, sample(path_format))) is not None
        assert taken == ((method, path_format) in HOT), (method, path_format)


def test_path_parameters_are_passed_and_other_shapes_fall_through() -> None:
    d = dispatcher(build_app())
    found = d.match(scope_of("POST", "/v1/orders/ord_9/issue"))
    assert found is not None
    assert found[1] == {"order_id": "ord_9"}
    assert d.match(scope_of("POST", "/v1/orders/ord_9/refund")) is None
    assert d.match(scope_of("GET", "/v1/orders/")) is None
    assert d.match(scope_of("GET", "/v1/orders/a/b")) is None
    assert d.match(scope_of("DELETE", "/v1/orders/ord_9")) is None


def test_an_earlier_route_is_never_shadowed() -> None:
    app = FastAPI()
    router = APIRouter()

    @router.get("/items/special")
    async def special() -> dict[str, str]:
        return {"which": "special"}

    @router.get("/items/{item_id}")
    @hot
    async def item(item_id: str) -> dict[str, str]:
        return {"which": item_id}

    app.include_router(router)
    d = dispatcher(app)
    assert d.match(scope_of("GET", "/items/special")) is None
    assert d.match(scope_of("GET", "/items/x")) is not None


async def _caller(request: Request) -> str:
    return "c"


async def _needs_more(request: Request, q: str) -> str:
    return q


@pytest.mark.parametrize("shape", ["query", "dependency_with_params", "sync"])
def test_a_hot_route_it_cannot_serve_is_refused_when_built(shape: str) -> None:
    from fastapi import Depends

    app = FastAPI()
    if shape == "query":

        @app.get("/x")
        @hot
        async def with_query(q: str) -> dict[str, str]:
            return {"q": q}

    elif shape == "dependency_with_params":

        @app.get("/x")
        @hot
        async def with_dep(v: str = Depends(_needs_more)) -> dict[str, str]:
            return {"v": v}

    else:

        @app.get("/x")
        @hot
        def sync_endpoint() -> dict[str, str]:
            return {}

    with pytest.raises(NotServable):
        dispatcher(app)


async def test_a_hot_route_answers_errors_through_the_apps_handlers() -> None:
    from fastapi import Depends

    app = FastAPI()
    install_error_handlers(app)

    @app.get("/ok/{x}")
    @hot
    async def ok(x: str, request: Request, who: str = Depends(_caller)) -> dict[str, Any]:
        return {"x": x, "who": who, "path": request.url.path}

    @app.get("/refused")
    @hot
    async def refused() -> dict[str, str]:
        raise ApiError(409, "sold_out", "not enough seats left")

    @app.get("/broken")
    @hot
    async def broken() -> dict[str, str]:
        raise RuntimeError("bug")

    app.add_middleware(HotPaths, routes=app.router.routes, handlers=app.exception_handlers)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await client.get("/ok/7")
        assert (r.status_code, r.json()) == (200, {"x": "7", "who": "c", "path": "/ok/7"})
        r = await client.get("/refused")
        assert r.status_code == 409
        assert r.json() == {"error": {"code": "sold_out", "message": "not enough seats left"}}
        r = await client.get("/broken")
        assert r.status_code == 500
        assert r.json()["error"]["code"] == "internal_error"
