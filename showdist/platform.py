"""Start the platform: migrations, Ray, the order hosts and the API under Serve."""

from __future__ import annotations

import asyncio
import base64
import logging
from dataclasses import dataclass
from typing import Any

import ray
from ray import serve

from actors.directory import supplier_actor_handle
from actors.order_actor import HostConfig, start_order_hosts
from actors.settlement_actor import settlement_actor_handle
from actors.supplier_actor import SupplierActorConfig, supplier_actor_name
from persistence.catalog import CatalogRepository, Supplier
from persistence.db import make_engine
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
        hosts=settings.order_hosts,
        sweep_seconds=settings.sweep_seconds,
        supplier_tick_seconds=settings.supplier_tick_seconds,
        abandoned_lock_seconds=settings.abandoned_lock_seconds,
        platform_seed_b64=base64.b64encode(settings.resolved_platform_seed()).decode(),
        breaker_failures=settings.breaker_failures,
        breaker_cooldown_seconds=settings.breaker_cooldown_seconds,
        timezone=settings.timezone,
    )


def supplier_config(
    settings: Settings, supplier: Supplier, replica: int = 0
) -> SupplierActorConfig:
    return SupplierActorConfig(
        supplier_id=supplier.id,
        gateway=supplier.gateway,
        gateway_config=supplier.config,
        max_concurrency=settings.supplier_max_concurrency,
        database_url=settings.resolved_database_url(),
        instance=settings.instance,
        namespace=settings.ray_namespace,
        hosts=settings.order_hosts,
        tick_seconds=settings.supplier_tick_seconds,
        breaker_threshold=settings.breaker_failures,
        breaker_cooldown_s=settings.breaker_cooldown_seconds,
        catalog_sync_seconds=settings.catalog_sync_seconds,
        replica=replica,
    )


def ensure_supplier_actors(settings: Settings) -> list[Any]:
    """Start every supplier's actor, so work left by a previous run (negotiations, releases,
    feeds) resumes without waiting for traffic."""

    async def load() -> list[Supplier]:
        engine = make_engine(settings.resolved_database_url(), pool_size=1)
        try:
            return await CatalogRepository(engine).list_suppliers()
        finally:
            await engine.dispose()

    handles = [
        supplier_actor_handle(supplier_config(settings, s, r))
        for s in asyncio.run(load())
        for r in range(max(1, s.replicas))
    ]
    ray.get([h.ping.remote() for h in handles])
    return handles


async def scale_supplier(
    settings: Settings, catalog: CatalogRepository, supplier_id: str, replicas: int
) -> dict[str, Any] | None:
    """Change how many actors serve a supplier, while it serves. New replicas start first;
    then the count changes (routers pick it up within their routing cache, 1 s); replicas
    past the new count retire: they keep answering for twice that long, finish the calls in
    flight and exit. Negotiations live in the database and move to their new owner."""
    supplier = await catalog.get_supplier(supplier_id)
    if supplier is None:
        return None
    before = max(1, supplier.replicas)
    for r in range(replicas):
        handle = supplier_actor_handle(supplier_config(settings, supplier, r))
        await handle.ping.remote()
    await catalog.set_replicas(supplier_id, replicas)
    retiring = []
    for r in range(replicas, before):
        name = supplier_actor_name(settings.instance, supplier_id, r)
        try:
            retiring_handle: Any = ray.get_actor(name, namespace=settings.ray_namespace)
        except ValueError:
            continue
        retiring_handle.retire.remote(2.5)
        retiring.append(r)
    return {
        "supplier_id": supplier_id,
        "replicas": replicas,
        "before": before,
        "retiring": retiring,
    }


def ensure_ray(settings: Settings, *, num_cpus: int | None = None) -> None:
    if not ray.is_initialized():
        ray.init(
            address=settings.ray_address,
            namespace=settings.ray_namespace,
            num_cpus=num_cpus,
            include_dashboard=False,
            log_to_driver=False,
        )


def ensure_platform_actors(settings: Settings) -> list[Any]:
    """Start (or find) the order hosts, every supplier's actor and the settlement actor."""
    hosts = start_order_hosts(host_config(settings), settings.order_hosts)
    ray.get([h.ping.remote() for h in hosts])
    ensure_supplier_actors(settings)
    ray.get(settlement_actor_handle(settings).ping.remote())
    return hosts


def start_platform(settings: Settings, *, num_cpus: int | None = None) -> RunningPlatform:
    settings = settings.with_resolved_secrets()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url())
    ensure_ray(settings, num_cpus=num_cpus)
    hosts = ensure_platform_actors(settings)
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
    prefix = f"{platform.settings.instance}:"
    for entry in ray.util.list_named_actors(all_namespaces=True):
        if entry["namespace"] == platform.settings.ray_namespace and entry["name"].startswith(
            prefix
        ):
            ray.kill(ray.get_actor(entry["name"], namespace=entry["namespace"]), no_restart=True)
