"""The API under Ray Serve: each replica builds its own platform state, and its app around it
(`serve_app.app.build_app`), when it starts."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI
from ray import serve
from ray.serve import Application

from actors.startup import start_platform_actors
from serve_app.app import build_app
from serve_app.state import PlatformState
from showdist.composition import platform_config
from showdist.settings import Settings


@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=256)
@serve.ingress()
class ApiIngress:
    def __init__(self, settings: Settings) -> None:
        self._state = PlatformState(settings)

    def __serve_build_asgi_app__(self) -> FastAPI:
        return build_app(self._state)


def app_builder(args: dict[str, Any]) -> Application:
    """The Serve application for `serve deploy serve_config.yaml`: settings from the
    environment; the order hosts, supplier actors and settlement actor are started (or found)
    before the API is bound."""
    settings = Settings(**args).with_resolved_secrets()
    asyncio.run(start_platform_actors(platform_config(settings)))
    return api_deployment(settings).bind(settings)  # type: ignore[no-any-return]


def api_deployment(settings: Settings) -> Any:
    """The API's Serve deployment with the settings' replicas and access log."""
    placement: dict[str, Any] = {}
    if settings.serve_max_replicas_per_node is not None:
        placement["max_replicas_per_node"] = settings.serve_max_replicas_per_node
    return ApiIngress.options(  # type: ignore[attr-defined]
        num_replicas=settings.serve_replicas,
        logging_config={"enable_access_log": settings.serve_access_log},
        **placement,
    )
