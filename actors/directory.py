"""How an order's actor reaches its supplier: a directory from supplier id to the supplier's
actor serving the order (in the pool, or the order's replica of a scaled supplier), its host
started on first use with the configuration every process derives from the one
`PlatformConfig`."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Protocol

from actors.config import PlatformConfig, SupplierHostConfig
from actors.interfaces import SupplierActorCalls, SupplierCalls, SupplierHostCalls
from actors.metrics import MeteredGateway
from actors.remote import ActorRole, bound, typed
from actors.routing import (
    pool_index,
    pooled,
    supplier_actor_name,
    supplier_pool_host_name,
    supplier_replica,
)
from actors.runtime import named_actor
from actors.supplier_actor import SupplierHostRemote, secrets_sealer
from actors.supplier_lane import SupplierLane
from persistence.catalog import RETIRED, CatalogRepository, Supplier
from suppliers.registry import build_gateway

log = logging.getLogger(__name__)


class SupplierDirectory(Protocol):
    async def get(self, supplier_id: str, order_id: str = "") -> SupplierCalls:
        """The supplier's calls for an order (its replica, by the order's hash)."""
        ...

    def suspect(self, supplier_id: str) -> None:
        """The supplier's actor saw a lock fail: its lane (if any) routes through it."""
        ...


async def _close_later(lane: SupplierLane, after_s: float) -> None:
    await asyncio.sleep(after_s)
    while lane.calls:  # (an issue waits as long as the supplier takes)
        await asyncio.sleep(0.1)
    await lane.aclose()


class UnknownSupplier(LookupError):
    pass


def pool_host(platform: PlatformConfig, index: int) -> SupplierHostCalls:
    """Pool host `index`, started if this is the first caller anywhere."""
    return typed(_pool_handle(platform, index), SupplierHostCalls, ActorRole.SUPPLIER)


def _pool_handle(platform: PlatformConfig, index: int) -> Any:
    return named_actor(
        SupplierHostRemote,
        supplier_pool_host_name(platform.instance, index),
        platform.namespace,
        max_concurrency=10_000,
        spread_index=index,
    ).remote(SupplierHostConfig(platform.without_signing_key(), pool_index=index))


def supplier_actor(
    platform: PlatformConfig, supplier: Supplier, replica: int = 0
) -> SupplierActorCalls:
    """A supplier's actor, its host started if this is the first caller anywhere: in the
    pool for a supplier with one replica, else replica `replica`'s dedicated host."""
    if pooled(supplier.replicas):
        handle = _pool_handle(platform, pool_index(supplier.id, platform.suppliers.pool_hosts))
    else:
        handle = named_actor(
            SupplierHostRemote,
            supplier_actor_name(platform.instance, supplier.id, replica),
            platform.namespace,
            max_concurrency=1000,
            spread_index=replica,
        ).remote(
            SupplierHostConfig(
                platform.without_signing_key(), supplier_id=supplier.id, replica=replica
            )
        )
    return bound(handle, supplier.id, SupplierActorCalls, ActorRole.SUPPLIER)


class RaySupplierDirectory:
    def __init__(
        self, catalog: CatalogRepository, platform: PlatformConfig, *, routing_ttl_s: float = 1.0
    ) -> None:
        self._catalog = catalog
        self._platform = platform
        # The order hosts sharing each supplier's limit (the assignment's count, once the
        # host has read it: `OrderHost._apply`).
        self.order_hosts = platform.order_hosts
        self._actors: dict[tuple[str, int], SupplierActorCalls] = {}
        self._dedicated: dict[tuple[str, int], tuple[float, SupplierActorCalls]] = {}
        # Replica counts are re-read after this long, so a scale change reaches every router
        # within it (a retiring replica keeps serving at least twice as long).
        self._routing_ttl_s = routing_ttl_s
        # Each supplier as last read, when, and the gateway configuration it names (as a
        # lane records what it was made from).
        self._suppliers: dict[str, tuple[float, Supplier, str]] = {}
        # Pooled suppliers' lanes, with the gateway configuration each was made from.
        self._lanes: dict[str, tuple[str, SupplierLane]] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def suspect(self, supplier_id: str) -> None:
        known = self._lanes.get(supplier_id)
        if known is not None:
            known[1].suspect()

    def _lane(self, supplier: Supplier, made_from: str, actor: SupplierActorCalls) -> SupplierLane:
        known = self._lanes.get(supplier.id)
        if known is not None and known[0] == made_from:
            return known[1]
        self._drop_lane(supplier.id)
        settings = self._platform.suppliers
        gateway = build_gateway(supplier.gateway, supplier.config, sealer=secrets_sealer(settings))
        lane = SupplierLane(
            supplier.id,
            MeteredGateway(supplier.id, gateway),
            actor,
            # The supplier's limit, shared by the order hosts' lanes.
            max_concurrency=settings.max_concurrency // max(1, self.order_hosts),
        )
        self._lanes[supplier.id] = (made_from, lane)
        return lane

    def drop_idle_lanes(self, idle_s: float) -> int:
        """Let go of the lanes unused for `idle_s` (each holds its supplier's connections);
        returns how many. A supplier locked again gets a new one."""
        cutoff = time.monotonic() - idle_s
        idle = [sid for sid, (_, lane) in self._lanes.items() if lane.used_at < cutoff]
        for sid in idle:
            self._drop_lane(sid, after_s=0.0)
        return len(idle)

    def _drop_lane(self, supplier_id: str, *, after_s: float = 30.0) -> None:
        known = self._lanes.pop(supplier_id, None)
        if known is not None:  # its calls in flight finish; then its gateway goes
            task = asyncio.ensure_future(_close_later(known[1], after_s))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def get(self, supplier_id: str, order_id: str = "") -> SupplierCalls:
        now = time.monotonic()
        known = self._suppliers.get(supplier_id)
        if known is None or now - known[0] > self._routing_ttl_s:
            found = await self._catalog.get_supplier(supplier_id)
            if found is None:
                raise UnknownSupplier(supplier_id)
            made_from = json.dumps([found.gateway, found.config], sort_keys=True)
            known = self._suppliers[supplier_id] = (now, found, made_from)
        _, supplier, made_from = known
        replica = supplier_replica(order_id, supplier.replicas)
        if pooled(supplier.replicas):  # a pool host is never let go: its handle stays good
            key = (supplier_id, -1)
            actor = self._actors.get(key)
            if actor is None:
                actor = self._actors[key] = supplier_actor(self._platform, supplier, replica)
            if self._platform.suppliers.lanes and supplier.status != RETIRED:
                try:
                    return self._lane(supplier, made_from, actor)
                except Exception as exc:  # its gateway cannot be built here: use the actor
                    log.warning("no lane for supplier %s: %r", supplier_id, exc)
            self._drop_lane(supplier_id)
            return actor
        self._drop_lane(supplier_id)
        # A dedicated host exits when its replica is let go, and one started later under the
        # same name is another actor: its handle is looked up again past the routing cache.
        handle = self._dedicated.get((supplier_id, replica))
        if handle is None or now - handle[0] > self._routing_ttl_s:
            handle = self._dedicated[(supplier_id, replica)] = (
                now,
                supplier_actor(self._platform, supplier, replica),
            )
        return handle[1]
