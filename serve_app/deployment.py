"""The API under Ray Serve: each replica builds its own PlatformState on start."""

from __future__ import annotations

from ray import serve

from serve_app import admin as _admin_routes
from serve_app.app import app, install_platform
from serve_app.state import PlatformState
from showdist.settings import Settings

app.include_router(_admin_routes.router)


@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=256)
@serve.ingress(app)
class ApiIngress:
    def __init__(self, settings: Settings) -> None:
        install_platform(PlatformState(settings))
