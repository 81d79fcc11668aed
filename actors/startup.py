"""Starting a platform's actors, and changing how many serve a supplier.

Actors are named (`actors.routing`), detached and found by name: starting one that runs
already finds it. Order hosts, the supplier pool's hosts and the settlement actor are started
with the platform, and so are the dedicated hosts of suppliers scaled past one replica (so
work left by an earlier run resumes without waiting for traffic); a pooled supplier's actor
starts in its pool host on first use (`actors.directory`, `actors.supplier_actor`).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime
from typing import Any

from actors.config import PlatformConfig
from actors.directory import pool_host, supplier_actor
from actors.interfaces import OrderHostCalls, SettlementCalls, SupplierActorCalls
from actors.order_actor import OrderHostRemote
from actors.remote import ActorRole, typed
from actors.routing import (
    order_host_name,
    pooled,
    running_supplier_actor,
    settlement_actor_name,
)
from actors.runtime import named_actor
from actors.settlement_actor import SettlementActorRemote
from persistence.catalog import RETIRED, CatalogRepository, Supplier
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
    """Start (or find) the order hosts, the supplier pool's hosts, the dedicated hosts of
    every supplier scaled past one replica and the settlement actor, and wait until each
    answers. Pooled suppliers' actors start on use (their hosts resume any work left)."""
    hosts = start_order_hosts(platform)
    engine = make_engine(platform.database_url, pool_size=1)
    try:
        suppliers = await CatalogRepository(engine).list_suppliers()
    finally:
        await engine.dispose()
    await asyncio.gather(
        *(h.ping() for h in hosts),
        *(pool_host(platform, i).host_pid() for i in range(platform.suppliers.pool_hosts)),
        *(
            supplier_actor(platform, s, r).ping()
            for s in suppliers
            if not pooled(s.replicas) and s.status != RETIRED
            for r in range(s.replicas)
        ),
        settlement_actor(platform).ping(),
    )
    return hosts


def _retire(actor: SupplierActorCalls) -> None:
    task = asyncio.ensure_future(actor.retire(RETIRE_GRACE_S))
    _retiring.add(task)
    task.add_done_callback(_retired)


def _let_go(platform: PlatformConfig, supplier: Supplier, replicas: range) -> list[int]:
    """Retire a supplier's pooled actor (`replicas` empty) or these dedicated replicas;
    returns the replicas retiring."""
    retiring = []
    for r in replicas if not pooled(supplier.replicas) else [None]:
        try:
            actor = running_supplier_actor(platform, supplier.id, r)
        except ValueError:
            continue
        _retire(actor)
        if r is not None:
            retiring.append(r)
    return retiring


async def scale_supplier(
    platform: PlatformConfig, catalog: CatalogRepository, supplier_id: str, replicas: int
) -> dict[str, Any] | None:
    """Change how many actors serve a supplier, while it serves. One replica lives in the
    pool; more are dedicated hosts. The new placement starts first; then the count changes
    (routers pick it up within their routing cache, 1 s); actors of the old placement past the
    new one retire: they keep answering for twice that long, finish the calls in flight and
    go (a pooled actor is passivated, a dedicated host exits). Negotiations live in the
    database and move to their new owner."""
    supplier = await catalog.get_supplier(supplier_id)
    if supplier is None:
        return None
    before = max(1, supplier.replicas)
    after = replace(supplier, replicas=replicas)
    starting = 1 if pooled(replicas) else replicas
    await asyncio.gather(*(supplier_actor(platform, after, r).ping() for r in range(starting)))
    await catalog.set_replicas(supplier_id, replicas)
    leaves_pool = pooled(before) and not pooled(replicas)
    if pooled(before) == pooled(replicas):
        retiring = _let_go(platform, supplier, range(replicas, before))
    else:
        retiring = _let_go(platform, supplier, range(before))
    return {
        "supplier_id": supplier_id,
        "replicas": replicas,
        "before": before,
        "placement": placement(replicas),
        "retiring": retiring,
        "leaves_pool": leaves_pool,
    }


def placement(replicas: int) -> str:
    return "pool" if pooled(replicas) else "dedicated"


async def retire_supplier(
    platform: PlatformConfig, catalog: CatalogRepository, supplier_id: str, now: datetime
) -> Supplier | None:
    """Retire a supplier (`CatalogRepository.retire_supplier`): nothing of it is sold any
    more, and its actors go (a pooled one is passivated, dedicated hosts exit) once their
    calls in flight are done. Its orders, flows and history stay; a later call about one of
    its orders (a refund, a negotiation's poll) activates it in the pool for that call."""
    supplier = await catalog.get_supplier(supplier_id)
    if supplier is None:
        return None
    await catalog.retire_supplier(supplier_id, now)
    _let_go(platform, supplier, range(max(1, supplier.replicas)))
    if not pooled(supplier.replicas):
        await catalog.set_replicas(supplier_id, 1)  # later calls: in the pool
    return await catalog.get_supplier(supplier_id)


def _retired(task: asyncio.Task[Any]) -> None:
    _retiring.discard(task)
    if not task.cancelled():
        task.exception()  # a replica that exits ends its own call: that is the expected end
