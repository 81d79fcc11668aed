"""Starting a platform's actors, and changing how many serve a supplier.

Actors are named (`actors.routing`), detached and found by name: starting one that runs
already finds it. Order hosts and the settlement actor are started with the platform; each
supplier's actor when the platform starts (so work left by an earlier run resumes without
waiting for traffic) or on its first use (`actors.directory`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from actors.config import PlatformConfig
from actors.directory import supplier_actor
from actors.interfaces import OrderHostCalls, SettlementCalls
from actors.order_actor import OrderHostRemote
from actors.remote import ActorRole, typed
from actors.routing import (
    order_host_name,
    running_supplier_actor,
    settlement_actor_name,
)
from actors.runtime import named_actor
from actors.settlement_actor import SettlementActorRemote
from persistence.catalog import CatalogRepository
from persistence.db import make_engine

# How long a retiring supplier replica keeps answering: twice the routers' 1 s routing cache.
RETIRE_GRACE_S = 2.5

_retiring: set[asyncio.Task[Any]] = set()  # retire calls in flight (kept from the collector)


def start_order_hosts(platform: PlatformConfig) -> list[OrderHostCalls]:
    return [
        typed(
            named_actor(
                OrderHostRemote,
                order_host_name(platform.instance, i),
                platform.namespace,
                max_concurrency=10_000,
            ).remote(platform, i),
            OrderHostCalls,
            ActorRole.ORDER_HOST,
        )
        for i in range(platform.order_hosts)
    ]


def settlement_actor(platform: PlatformConfig) -> SettlementCalls:
    """The platform's settlement actor, started if this is the first caller."""
    handle = named_actor(
        SettlementActorRemote,
        settlement_actor_name(platform.instance),
        platform.namespace,
        max_concurrency=1000,
    ).remote(platform.without_signing_key())
    return typed(handle, SettlementCalls, ActorRole.SETTLEMENT)


async def start_platform_actors(platform: PlatformConfig) -> list[OrderHostCalls]:
    """Start (or find) the order hosts, every supplier's actors and the settlement actor,
    and wait until each answers."""
    hosts = start_order_hosts(platform)
    engine = make_engine(platform.database_url, pool_size=1)
    try:
        suppliers = await CatalogRepository(engine).list_suppliers()
    finally:
        await engine.dispose()
    await asyncio.gather(
        *(h.ping() for h in hosts),
        *(
            supplier_actor(platform, s, r).ping()
            for s in suppliers
            for r in range(max(1, s.replicas))
        ),
        settlement_actor(platform).ping(),
    )
    return hosts


async def scale_supplier(
    platform: PlatformConfig, catalog: CatalogRepository, supplier_id: str, replicas: int
) -> dict[str, Any] | None:
    """Change how many actors serve a supplier, while it serves. New replicas start first;
    then the count changes (routers pick it up within their routing cache, 1 s); replicas
    past the new count retire: they keep answering for twice that long, finish the calls in
    flight and exit. Negotiations live in the database and move to their new owner."""
    supplier = await catalog.get_supplier(supplier_id)
    if supplier is None:
        return None
    before = max(1, supplier.replicas)
    await asyncio.gather(*(supplier_actor(platform, supplier, r).ping() for r in range(replicas)))
    await catalog.set_replicas(supplier_id, replicas)
    retiring = []
    for r in range(replicas, before):
        try:
            actor = running_supplier_actor(platform, supplier_id, r)
        except ValueError:
            continue
        task = asyncio.ensure_future(actor.retire(RETIRE_GRACE_S))
        _retiring.add(task)
        task.add_done_callback(_retired)
        retiring.append(r)
    return {
        "supplier_id": supplier_id,
        "replicas": replicas,
        "before": before,
        "retiring": retiring,
    }


def _retired(task: asyncio.Task[Any]) -> None:
    _retiring.discard(task)
    if not task.cancelled():
        task.exception()  # a replica that exits ends its own call: that is the expected end
