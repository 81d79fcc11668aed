"""Start the platform: migrations, Ray, the platform's actors and the API under Serve."""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass

import ray
from ray import serve

from actors.config import PlatformConfig
from actors.interfaces import OrderHostCalls
from actors.startup import start_platform_actors
from persistence.migrate import upgrade
from serve_app.deployment import api_deployment
from showdist.composition import platform_config
from showdist.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class RunningPlatform:
    settings: Settings
    config: PlatformConfig
    hosts: list[OrderHostCalls]

    @property
    def base_url(self) -> str:
        return f"http://{self.settings.http_host}:{self.settings.http_port}"


# What a Ray started here runs with (a value in the environment wins):
# - Ray starts its workers at niceness 15 by default; on a machine they share with
#   PostgreSQL, Redis and HAProxy (all at 0) that made the platform's own processes wait
#   behind its database under load.
# - Serve's controller runs its control loop every 0.1 s by default, each pass asking the GCS
#   for the cluster's nodes and resources: 235 ms/s of CPU on an idle two-core machine, 140
#   at 0.5 s (and 0.77 -> 0.46 ms per lifecycle under load). Serve then reacts to a replica's
#   change within 0.5 s rather than 0.1.
RAY_ENVIRONMENT = {"RAY_worker_niceness": "0", "RAY_SERVE_CONTROL_LOOP_INTERVAL_S": "0.5"}


def prepare_ray_environment() -> None:
    """Set `RAY_ENVIRONMENT` (where not set already) before this process starts Ray."""
    for name, value in RAY_ENVIRONMENT.items():
        os.environ.setdefault(name, value)


def ensure_ray(settings: Settings, *, num_cpus: int | None = None) -> None:
    """Connect to Ray, or start it here; a Ray started here exports the platform's metrics
    on `SHOWDIST_METRICS_PORT` (docs/metrics.md). A cluster's nodes are started with their
    port (`ray start --metrics-export-port`): connecting does not change it."""
    if not ray.is_initialized():
        starts_here = settings.ray_address is None
        if starts_here:
            prepare_ray_environment()
        ray.init(
            address=settings.ray_address,
            namespace=settings.ray_namespace,
            num_cpus=num_cpus,
            include_dashboard=False,
            log_to_driver=False,
            _metrics_export_port=settings.metrics_port if starts_here else None,
        )


def start_platform(
    settings: Settings, *, num_cpus: int | None = None, serve_api: bool = True
) -> RunningPlatform:
    """Migrate the database, start Ray (unless connected already), every platform actor and
    (with `serve_api`) the API under Serve."""
    settings = settings.with_resolved_secrets()
    settings.prepare_data_dir()
    upgrade(settings.resolved_database_url())
    ensure_ray(settings, num_cpus=num_cpus)
    config = platform_config(settings)
    hosts = asyncio.run(start_platform_actors(config))
    if serve_api:
        serve.start(
            proxy_location=settings.serve_proxy_location,
            http_options={"host": settings.http_host, "port": settings.http_port},
        )
        serve.run(
            api_deployment(settings).bind(settings),
            name=settings.instance,
            route_prefix="/",
            blocking=False,
        )
    return RunningPlatform(settings, config, hosts)


def stop_platform(platform: RunningPlatform, *, serve_api: bool = True) -> None:
    if serve_api:
        serve.delete(platform.settings.instance)
    prefix = f"{platform.settings.instance}:"
    for entry in ray.util.list_named_actors(all_namespaces=True):
        if entry["namespace"] == platform.settings.ray_namespace and entry["name"].startswith(
            prefix
        ):
            ray.kill(ray.get_actor(entry["name"], namespace=entry["namespace"]), no_restart=True)
