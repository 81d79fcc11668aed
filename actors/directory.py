"""How an order's actor reaches its supplier: a directory from supplier id to the replica of
that supplier's actor serving the order, started on first use with the configuration every
process derives from the one `PlatformConfig`."""

from __future__ import annotations

import time
from typing import Any, Protocol

from actors.config import PlatformConfig, SupplierActorConfig
from actors.interfaces import SupplierActorCalls, SupplierCalls
from actors.remote import ActorRole, typed
from actors.routing import supplier_actor_name, supplier_replica
from actors.runtime import named_actor
from actors.supplier_actor import SupplierActorRemote
from persistence.catalog import CatalogRepository, Supplier


class SupplierDirectory(Protocol):
    async def get(self, supplier_id: str, order_id: str = "") -> SupplierCalls:
        """The supplier's calls for an order (its replica, by the order's hash)."""
        ...


class UnknownSupplier(LookupError):
    pass


def supplier_actor(
    platform: PlatformConfig, supplier: Supplier, replica: int = 0
) -> SupplierActorCalls:
    """A supplier replica's actor, started if this is the first caller anywhere."""
    config = SupplierActorConfig(
        platform.without_signing_key(),
        supplier.id,
        supplier.gateway,
        dict(supplier.config),
        replica,
    )
    handle: Any = named_actor(
        SupplierActorRemote,
        supplier_actor_name(platform.instance, supplier.id, replica),
        platform.namespace,
        max_concurrency=1000,
    ).remote(config)
    return typed(handle, SupplierActorCalls, ActorRole.SUPPLIER)


class RaySupplierDirectory:
    def __init__(
        self, catalog: CatalogRepository, platform: PlatformConfig, *, routing_ttl_s: float = 1.0
    ) -> None:
        self._catalog = catalog
        self._platform = platform
        self._actors: dict[tuple[str, int], SupplierActorCalls] = {}
        # Replica counts are re-read after this long, so a scale change reaches every router
        # within it (a retiring replica keeps serving at least twice as long).
        self._routing_ttl_s = routing_ttl_s
        self._suppliers: dict[str, tuple[float, Supplier]] = {}

    async def get(self, supplier_id: str, order_id: str = "") -> SupplierCalls:
        now = time.monotonic()
        known = self._suppliers.get(supplier_id)
        if known is None or now - known[0] > self._routing_ttl_s:
            found = await self._catalog.get_supplier(supplier_id)
            if found is None:
                raise UnknownSupplier(supplier_id)
            known = self._suppliers[supplier_id] = (now, found)
        supplier = known[1]
        replica = supplier_replica(order_id, supplier.replicas)
        actor = self._actors.get((supplier_id, replica))
        if actor is None:
            actor = self._actors[(supplier_id, replica)] = supplier_actor(
                self._platform, supplier, replica
            )
        return actor
