"""Where each actor of a platform lives: its name, and which one an order's calls go to.

- Order hosts: `order_hosts` of them; an order belongs to host `stable_shard(order_id, n)`.
  The order id is derived from the distributor and its own order id, so a create is routed
  before the order exists.
- Supplier actors live in supplier hosts. A supplier with one replica (every supplier, until
  ops scale it) is hosted by pool host `stable_shard(supplier_id, pool_hosts)`, one of a few
  processes that host every such supplier, activated on use. A supplier scaled to n > 1
  replicas has n dedicated hosts, one replica each; an order's calls go to replica
  `stable_shard(order_id, replicas)`, and each replica polls and releases for the same share
  of the orders.
- The settlement actor: one per platform.

Everything here finds actors by name; starting them is `actors.startup`'s (and, for a
supplier's actor, `actors.directory`'s) work.
"""

from __future__ import annotations

from typing import Any

import ray

from actors.config import PlatformConfig
from actors.interfaces import OrderHostCalls, SupplierActorCalls, SupplierHostCalls
from actors.remote import ActorRole, bound, typed
from domain.ids import stable_shard


def order_host_name(instance: str, index: int) -> str:
    return f"{instance}:order-host:{index}"


def supplier_actor_name(instance: str, supplier_id: str, replica: int = 0) -> str:
    """The dedicated host of one replica of a supplier scaled past one."""
    return f"{instance}:supplier:{supplier_id}:{replica}"


def supplier_pool_host_name(instance: str, index: int) -> str:
    return f"{instance}:supplier-host:{index}"


def pooled(replicas: int) -> bool:
    """Whether a supplier with this many replicas lives in the pool (else: dedicated hosts)."""
    return replicas <= 1


def pool_index(supplier_id: str, pool_hosts: int) -> int:
    return stable_shard(supplier_id, max(1, pool_hosts))


def settlement_actor_name(instance: str) -> str:
    return f"{instance}:settlement"


def host_index(order_id: str, hosts: int) -> int:
    return stable_shard(order_id, hosts)


def supplier_replica(order_id: str, replicas: int) -> int:
    """The replica of a supplier's actor that serves an order (0 for calls of no order)."""
    return stable_shard(order_id, max(1, replicas)) if order_id else 0


def find_actor(platform: PlatformConfig, name: str) -> Any:
    """A running actor's handle by name (ValueError if there is none)."""
    return ray.get_actor(name, namespace=platform.namespace)


class OrderHosts:
    """Typed handles to a platform's order hosts, looked up once."""

    def __init__(self, platform: PlatformConfig) -> None:
        self._platform = platform
        self._hosts: list[OrderHostCalls] | None = None

    def all(self) -> list[OrderHostCalls]:
        if self._hosts is None:
            p = self._platform
            self._hosts = [
                typed(
                    find_actor(p, order_host_name(p.instance, i)),
                    OrderHostCalls,
                    ActorRole.ORDER_HOST,
                )
                for i in range(p.order_hosts)
            ]
        return self._hosts

    def for_order(self, order_id: str) -> OrderHostCalls:
        hosts = self.all()
        return hosts[host_index(order_id, len(hosts))]


def running_supplier_actor(
    platform: PlatformConfig, supplier_id: str, replica: int | None = None
) -> SupplierActorCalls:
    """A supplier's actor in its running host (ValueError if the host is not running):
    `replica` None for a pooled supplier, else its dedicated replica's."""
    if replica is None:
        name = supplier_pool_host_name(
            platform.instance, pool_index(supplier_id, platform.suppliers.pool_hosts)
        )
    else:
        name = supplier_actor_name(platform.instance, supplier_id, replica)
    return bound(find_actor(platform, name), supplier_id, SupplierActorCalls, ActorRole.SUPPLIER)


def running_supplier_host(platform: PlatformConfig, name: str) -> SupplierHostCalls:
    """A running supplier host by name (ValueError if it is not running)."""
    return typed(find_actor(platform, name), SupplierHostCalls, ActorRole.SUPPLIER)
