"""Starting a platform's actors, and changing how many serve a supplier.

Actors are named (`actors.routing`), detached and found by name: starting one that runs
already finds it. Order hosts, the supplier pool's hosts and the settlement actor are started
with the platform, and so are the dedicated hosts of suppliers scaled past one replica (so
work left by an earlier run resumes without waiting for traffic); a pooled supplier's actor
starts in its pool host on first use (`actors.directory`, `actors.supplier_actor`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol, TypeVar

import ray

from actors.config import PlatformConfig
from actors.directory import pool_host, supplier_actor
from actors.interfaces import OrderHostCalls, SettlementCalls, SupplierActorCalls
from actors.order_actor import OrderHostRemote
from actors.remote import ActorRole, ActorUnavailable, typed
from actors.routing import (
    find_actor,
    order_host_name,
    pooled,
    running_supplier_actor,
    settlement_actor_name,
    supplier_pool_host_name,
)
from actors.runtime import named_actor, target_node
from actors.settlement_actor import SettlementActorRemote
from domain.partitions import Assignment
from persistence.catalog import RETIRED, CatalogRepository, Supplier
from persistence.db import make_engine
from persistence.partitions import PartitionRepository

# How long a retiring supplier replica keeps answering: twice the routers' 1 s routing cache.
RETIRE_GRACE_S = 2.5

A = TypeVar("A", bound="_Placeable")

_retiring: set[asyncio.Task[Any]] = set()  # retire calls in flight (kept from the collector)


def start_order_hosts(platform: PlatformConfig, indices: Iterable[int]) -> list[OrderHostCalls]:
    """Start (or find) order hosts `indices`."""
    return [
        typed(
            named_actor(
                OrderHostRemote,
                order_host_name(platform.instance, i),
                platform.namespace,
                max_concurrency=10_000,
                spread_index=i,
            ).remote(platform, i),
            OrderHostCalls,
            ActorRole.ORDER_HOST,
        )
        for i in indices
    ]


class _Placeable(Protocol):
    async def node_id(self) -> str: ...


_PLACEMENT_TRIES = 3


async def _on_its_node(
    platform: PlatformConfig, name: str, index: int, start: Callable[[], A]
) -> A:
    """Start (or find) the actor `name`, the `index`-th of its kind, and see that it sits on
    its node (`runtime.target_node`): Ray's soft node affinity is best effort, so one that
    landed elsewhere while its node is alive is stopped and started again (at most
    `_PLACEMENT_TRIES` times; every platform actor may be restarted at any time, as a crash
    would). One node: nothing to see to."""
    actor = start()
    for _ in range(_PLACEMENT_TRIES):
        target = target_node(index)
        if target is None or await actor.node_id() == target:
            break
        ray.kill(find_actor(platform, name), no_restart=True)
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:  # its name is free once it is gone
            try:
                find_actor(platform, name)
            except ValueError:
                break
            await asyncio.sleep(0.1)
        actor = start()
    return actor


async def place_platform_actors(platform: PlatformConfig, order_hosts: Iterable[int]) -> None:
    """See that the order hosts, the supplier pool's hosts and the settlement actor sit
    each on its node (`_on_its_node`)."""
    await asyncio.gather(
        *(
            _on_its_node(
                platform,
                order_host_name(platform.instance, i),
                i,
                lambda i=i: start_order_hosts(platform, [i])[0],  # type: ignore[misc]
            )
            for i in order_hosts
        ),
        *(
            _on_its_node(
                platform,
                supplier_pool_host_name(platform.instance, i),
                i,
                lambda i=i: pool_host(platform, i),  # type: ignore[misc]
            )
            for i in range(platform.suppliers.pool_hosts)
        ),
        _on_its_node(
            platform,
            settlement_actor_name(platform.instance),
            1,
            lambda: settlement_actor(platform),
        ),
    )


def _hosts_needed(assignment: Assignment) -> list[int]:
    return sorted(assignment.hosts_in_use() | set(range(assignment.hosts)))


async def _let_go_surplus_hosts(platform: PlatformConfig, repo: PartitionRepository) -> list[int]:
    """Stop the order hosts past the number asked for that own no partition and are given
    none, as the assignment says now (once a scale-down's handovers are done, or left over
    from a change that did not finish); returns them."""
    assignment = await repo.read()
    if assignment is None or not assignment.settled:
        return []  # (another change is under way: its own end lets go of what it must)
    needed = set(_hosts_needed(assignment))
    gone = []
    prefix = order_host_name(platform.instance, 0)[:-1]
    for entry in ray.util.list_named_actors(all_namespaces=True):
        name = entry["name"]
        if entry["namespace"] != platform.namespace or not name.startswith(prefix):
            continue
        suffix = name[len(prefix) :]
        if not suffix.isdigit():
            continue
        index = int(suffix)
        if index not in needed:
            ray.kill(find_actor(platform, name), no_restart=True)
            gone.append(index)
    return sorted(gone)


async def scale_order_hosts(
    platform: PlatformConfig, hosts: int, *, timeout_s: float = 20.0
) -> tuple[Assignment, list[int]]:
    """Change the number of order hosts while orders flow: start the new hosts, plan the
    partitions' moves (ScalingInProgress while an earlier change is not carried out), tell
    every host (each hands over what it must, by itself: `OrderHost._hand_over`), wait up to
    `timeout_s` for the handovers, then stop the hosts no longer needed. Returns the
    assignment (settled, unless the wait ran out: the handovers go on, and a later call
    stops what is no longer needed) and the hosts stopped. A call asking for the count
    already in force only stops what is left over."""
    engine = make_engine(platform.database_url, pool_size=1)
    try:
        repo = PartitionRepository(engine)
        await repo.ensure(platform.order_hosts)
        started = start_order_hosts(platform, range(hosts))
        await asyncio.gather(*(h.ping() for h in started))
        await asyncio.gather(
            *(
                _on_its_node(
                    platform,
                    order_host_name(platform.instance, i),
                    i,
                    lambda i=i: start_order_hosts(platform, [i])[0],  # type: ignore[misc]
                )
                for i in range(hosts)
            )
        )
        planned = await repo.plan(hosts)
        every_host = start_order_hosts(platform, _hosts_needed(planned))
        await asyncio.gather(*(h.refresh_partitions() for h in every_host))
        deadline = time.monotonic() + timeout_s
        current = planned
        while not current.settled and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            found = await repo.read()
            assert found is not None
            current = found
        if not current.settled:
            return current, []
        # Every host has read the settled assignment before any is stopped (a router that
        # has not yet is routed again by the host it asks).
        await asyncio.gather(
            *(h.refresh_partitions() for h in start_order_hosts(platform, range(hosts)))
        )
        return current, await _let_go_surplus_hosts(platform, repo)
    finally:
        await engine.dispose()


async def order_host_report(platform: PlatformConfig) -> tuple[Assignment, dict[int, Any]]:
    """The assignment, and what each running host it uses says it holds (`stats`)."""
    engine = make_engine(platform.database_url, pool_size=1)
    try:
        assignment = await PartitionRepository(engine).ensure(platform.order_hosts)
    finally:
        await engine.dispose()
    stats: dict[int, Any] = {}
    for i in _hosts_needed(assignment):
        try:
            host = typed(
                find_actor(platform, order_host_name(platform.instance, i)),
                OrderHostCalls,
                ActorRole.ORDER_HOST,
            )
            stats[i] = await host.stats()
        except (ValueError, ActorUnavailable):
            stats[i] = None
    return assignment, stats


def settlement_actor(platform: PlatformConfig) -> SettlementCalls:
    """The platform's settlement actor, started if this is the first caller."""
    handle = named_actor(
        SettlementActorRemote,
        settlement_actor_name(platform.instance),
        platform.namespace,
        max_concurrency=1000,
        spread_index=1,  # (away from order host 0, where there are two nodes)
    ).remote(platform.without_signing_key())
    return typed(handle, SettlementCalls, ActorRole.SETTLEMENT)


async def start_platform_actors(platform: PlatformConfig) -> list[OrderHostCalls]:
    """Start (or find) the order hosts, the supplier pool's hosts, the dedicated hosts of
    every supplier scaled past one replica and the settlement actor, and wait until each
    answers. Pooled suppliers' actors start on use (their hosts resume any work left)."""
    engine = make_engine(platform.database_url, pool_size=1)
    try:
        # The order hosts the database's assignment uses (made over `order_hosts` hosts
        # on the first start; ops change it: `scale_order_hosts`).
        assignment = await PartitionRepository(engine).ensure(platform.order_hosts)
        suppliers = await CatalogRepository(engine).list_suppliers()
    finally:
        await engine.dispose()
    hosts = start_order_hosts(platform, _hosts_needed(assignment))
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
    await place_platform_actors(platform, _hosts_needed(assignment))
    return start_order_hosts(platform, _hosts_needed(assignment))


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
