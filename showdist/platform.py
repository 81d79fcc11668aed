"""Start the platform: migrations, Ray, the order hosts and the API under Serve."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import ray
from ray import serve

from actors.order_actor import HostConfig, start_order_hosts
from persistence.migrate import upgrade
from serve_app.deployment import ApiIngress
from showdist.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class RunningPlatform:
    settings: Settings
    hosts: list[Any]

    @property
    def base_url(self) -> str:
        return f"http://{self.settings.http_host}:{self.settings.http_port}"


def host_config(settings: Settings) -> HostConfig:
    return HostConfig(
        instance=settings.instance,
        namespace=settings.ray_namespace,
        database_url=settings.resolved_database_url(),
        db_pool_size=settings.db_pool_size,
        lock_ttl_seconds=settings.lock_ttl_seconds,
        idle_seconds=settings.order_idle_seconds,
        supplier_max_concurrency=settings.supplier_max_concurrency,
    )


def ensure_ray(settings: Settings, *, num_cpus: int | None = None) -> None:
    if not ray.is_initialized():
        ray.init(
            address=settings.ray_address,
            namespace=settings.ray_namespace,
            num_cpus=num_cpus,
            include_dashboard=False,
            log_to_driver=False,
        )


def start_platform(settings: Settings, *, num_cpus: int | None = None) -> RunningPlatform:
    settings = settings.with_resolved_secrets()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url())
    ensure_ray(settings, num_cpus=num_cpus)
    hosts = start_order_hosts(host_config(settings), settings.order_hosts)
    ray.get([h.ping.remote() for h in hosts])
    serve.start(http_options={"host": settings.http_host, "port": settings.http_port})
    serve.run(
        ApiIngress.options(num_replicas=settings.serve_replicas).bind(settings),  # type: ignore[attr-defined]
        name=settings.instance,
        route_prefix="/",
        blocking=False,
    )
    return RunningPlatform(settings, hosts)


def stop_platform(platform: RunningPlatform) -> None:
    serve.delete(platform.settings.instance)
    for h in platform.hosts:
        ray.kill(h, no_restart=True)
