"""The HTTP API: one FastAPI app per API process, built around that process's platform state.

`build_app` is the one place the app is put together: its error handlers, its routers (in
the order they are matched: the distributors' hot paths first, ops last), and the hot-path
dispatcher built from the routes marked `@hot`. Routes reach the state through the request
(`serve_app.deps.state_of`), never through a module global.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from serve_app import admin, callbacks_admin, catalog, console, orders, settlement
from serve_app.contract import complete
from serve_app.deps import AdminCaller
from serve_app.errors import install_error_handlers
from serve_app.guard import InputGuard
from serve_app.hot_paths import HotPaths
from serve_app.responses import JSONResponse
from serve_app.state import PlatformState
from showdist.settings import DEFAULT_MAX_BODY_BYTES


def build_app(state: PlatformState | None = None) -> FastAPI:
    """The app serving `state` (None: the routes and their OpenAPI document alone, as for
    documentation; every route then answers 503 `starting`)."""
    app = FastAPI(
        title="showdist",
        version="1",
        description="Distribution of live-show tickets: signed catalog and order API.",
        default_response_class=JSONResponse,
        # No pages that load their scripts from a CDN, and no unsigned copy of the admin API's
        # schema: the schema is served by the routes below, the admin part to admins only.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        # No OpenTelemetry spans, metrics or logs from FastAPI (the platform's metrics are
        # Ray's: docs/metrics.md). Left on, FastAPI asks OpenTelemetry on every request
        # whether a provider was set up, reading the environment: 1.7 % of the replica.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.platform = state
    install_error_handlers(app)
    for router in (
        orders.public,
        orders.v1,
        catalog.router,
        admin.router,
        callbacks_admin.router,
        settlement.router,
        console.router,
    ):
        app.include_router(router)
    _serve_schema(app)
    app.add_middleware(HotPaths, routes=app.router.routes, handlers=app.exception_handlers)
    # Outermost (added last): nothing reads a body, a path or a query before the guard has.
    limit = state.settings.max_body_bytes if state is not None else DEFAULT_MAX_BODY_BYTES
    app.add_middleware(InputGuard, max_body_bytes=limit)
    return app


def _serve_schema(app: FastAPI) -> None:
    """`GET /openapi.json` (unsigned): the schema of the distributors' API, the admin
    operations left out; `GET /admin/v1/openapi.json` (admin key): the whole schema. Both
    are made once, from the routes and their declarations (`serve_app.contract`)."""

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]

    def distributors_part() -> dict[str, Any]:
        schema = dict(app.openapi())
        schema["paths"] = {
            path: ops for path, ops in schema["paths"].items() if not path.startswith("/admin/")
        }
        return schema

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi() -> JSONResponse:
        return JSONResponse(distributors_part())

    @app.get("/admin/v1/openapi.json", include_in_schema=False)
    async def openapi_admin(_caller: AdminCaller) -> JSONResponse:
        return JSONResponse(app.openapi())
