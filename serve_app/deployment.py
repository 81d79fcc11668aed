"""The API under Ray Serve: each replica builds its own PlatformState on start."""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application

from serve_app import admin as _admin_routes
from serve_app import catalog as _catalog_routes
from serve_app import settlement as _settlement_routes
from serve_app.app import app, install_platform
from serve_app.hot_paths import HotPaths
from serve_app.state import PlatformState
from showdist.settings import Settings

# Routes are matched in the order they are included: the distributors' hot paths first, ops last.
app.include_router(_catalog_routes.router)
app.include_router(_admin_routes.router)
app.include_router(_settlement_routes.router)
app.add_middleware(HotPaths)


@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=256)
@serve.ingress(app)
class ApiIngress:
    def __init__(self, settings: Settings) -> None:
        install_platform(PlatformState(settings))


def app_builder(args: dict[str, Any]) -> Application:
    """The Serve application for `serve deploy serve_config.yaml`: settings from the
    environment; the order hosts, supplier actors and settlement actor are started (or found)
    before the API is bound."""
    from showdist.platform import ensure_platform_actors

    settings = Settings(**args).with_resolved_secrets()
    ensure_platform_actors(settings)
    return ApiIngress.bind(settings)  # type: ignore[attr-defined, no-any-return]
