"""The HTTP API: one FastAPI app per API process, built around that process's platform state.

`build_app` is the one place the app is put together: its error handlers, its routers (in
the order they are matched: the distributors' hot paths first, ops last), and the hot-path
dispatcher built from the routes marked `@hot`. Routes reach the state through the request
(`serve_app.deps.state_of`), never through a module global.
"""

from __future__ import annotations

from fastapi import FastAPI

from serve_app import admin, catalog, orders, settlement
from serve_app.errors import install_error_handlers
from serve_app.hot_paths import HotPaths
from serve_app.responses import JSONResponse
from serve_app.state import PlatformState


def build_app(state: PlatformState | None = None) -> FastAPI:
    """The app serving `state` (None: the routes and their OpenAPI document alone, as for
    documentation; every route then answers 503 `starting`)."""
    app = FastAPI(
        title="showdist",
        version="1",
        description="Distribution of live-show tickets: signed catalog and order API.",
        default_response_class=JSONResponse,
    )
    app.state.platform = state
    install_error_handlers(app)
    for router in (orders.public, orders.v1, catalog.router, admin.router, settlement.router):
        app.include_router(router)
    app.add_middleware(HotPaths, routes=app.router.routes, handlers=app.exception_handlers)
    return app
