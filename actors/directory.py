"""How order hosts reach suppliers: a directory from supplier id to the one place that
talks to that supplier (its Ray actor, or in-process service in tests and tools)."""

from __future__ import annotations

import time
from typing import Any, Protocol

from actors.runtime import named_actor
from actors.supplier_actor import (
    SupplierActor,
    SupplierActorConfig,
    SupplierService,
    supplier_actor_name,
)
from domain.ids import stable_shard
from domain.negotiation import PollingPolicy
from persistence.catalog import CatalogRepository, Supplier
from suppliers.gateway import CallResult, IssueInfo, LockInfo, RefundInfo
from suppliers.registry import build_gateway


class SupplierPort(Protocol):
    async def lock(
        self, order_id: str, session_ref: str, tier_ref: str, quantity: int
    ) -> CallResult[LockInfo]: ...
    async def release(self, order_id: str) -> CallResult[None]: ...
    async def issue(self, order_id: str) -> CallResult[IssueInfo]: ...
    async def query_issue(self, order_id: str) -> CallResult[IssueInfo]: ...
    async def refund(self, order_id: str) -> CallResult[RefundInfo]: ...
    async def query_refund(self, order_id: str) -> CallResult[RefundInfo]: ...
    async def policy(self) -> PollingPolicy: ...


class SupplierDirectory(Protocol):
    async def get(self, supplier_id: str, order_id: str = "") -> SupplierPort:
        """The port for an order's calls to a supplier (its replica, by the order's hash)."""
        ...


class UnknownSupplier(LookupError):
    pass


class _ActorPort:
    """A SupplierPort over a SupplierActor handle."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    async def lock(
        self, order_id: str, session_ref: str, tier_ref: str, quantity: int
    ) -> CallResult[LockInfo]:
        result: CallResult[LockInfo] = await self.handle.lock.remote(
            order_id, session_ref, tier_ref, quantity
        )
        return result

    async def release(self, order_id: str) -> CallResult[None]:
        result: CallResult[None] = await self.handle.release.remote(order_id)
        return result

    async def issue(self, order_id: str) -> CallResult[IssueInfo]:
        result: CallResult[IssueInfo] = await self.handle.issue.remote(order_id)
        return result

    async def query_issue(self, order_id: str) -> CallResult[IssueInfo]:
        result: CallResult[IssueInfo] = await self.handle.query_issue.remote(order_id)
        return result

    async def refund(self, order_id: str) -> CallResult[RefundInfo]:
        result: CallResult[RefundInfo] = await self.handle.refund.remote(order_id)
        return result

    async def query_refund(self, order_id: str) -> CallResult[RefundInfo]:
        result: CallResult[RefundInfo] = await self.handle.query_refund.remote(order_id)
        return result

    async def policy(self) -> PollingPolicy:
        result: PollingPolicy = await self.handle.policy.remote()
        return result


def supplier_actor_handle(config: SupplierActorConfig) -> Any:
    """Get the supplier's actor, creating it if this is the first caller anywhere."""
    return named_actor(
        SupplierActor,
        supplier_actor_name(config.instance, config.supplier_id, config.replica),
        config.namespace,
        max_concurrency=1000,
    ).remote(config)


class RaySupplierDirectory:
    def __init__(
        self,
        catalog: CatalogRepository,
        *,
        instance: str,
        namespace: str,
        max_concurrency: int,
        database_url: str,
        hosts: int,
        tick_seconds: float = 1.0,
        breaker: tuple[int, float] = (5, 5.0),
        routing_ttl_s: float = 1.0,
    ) -> None:
        self._breaker = breaker
        self._catalog = catalog
        self._database_url = database_url
        self._hosts = hosts
        self._tick_seconds = tick_seconds
        self._instance = instance
        self._namespace = namespace
        self._max_concurrency = max_concurrency
        self._ports: dict[tuple[str, int], _ActorPort] = {}
        # Replica counts are re-read after this long, so a scale change reaches every router
        # within it (a retiring replica keeps serving at least twice as long).
        self._routing_ttl_s = routing_ttl_s
        self._suppliers: dict[str, tuple[float, Supplier]] = {}

    async def get(self, supplier_id: str, order_id: str = "") -> SupplierPort:
        now = time.monotonic()
        known = self._suppliers.get(supplier_id)
        if known is None or now - known[0] > self._routing_ttl_s:
            supplier = await self._catalog.get_supplier(supplier_id)
            if supplier is None:
                raise UnknownSupplier(supplier_id)
            known = self._suppliers[supplier_id] = (now, supplier)
        supplier = known[1]
        replica = stable_shard(order_id, max(1, supplier.replicas)) if order_id else 0
        port = self._ports.get((supplier_id, replica))
        if port is None:
            handle = supplier_actor_handle(
                SupplierActorConfig(
                    supplier_id=supplier_id,
                    gateway=supplier.gateway,
                    gateway_config=supplier.config,
                    max_concurrency=self._max_concurrency,
                    database_url=self._database_url,
                    instance=self._instance,
                    namespace=self._namespace,
                    hosts=self._hosts,
                    tick_seconds=self._tick_seconds,
                    breaker_threshold=self._breaker[0],
                    breaker_cooldown_s=self._breaker[1],
                    replica=replica,
                )
            )
            port = self._ports[(supplier_id, replica)] = _ActorPort(handle)
        return port

    def forget(self, supplier_id: str) -> None:
        """Drop cached handles and routing (after a scale change or an actor's exit)."""
        self._suppliers.pop(supplier_id, None)
        for key in [k for k in self._ports if k[0] == supplier_id]:
            del self._ports[key]


class LocalSupplierDirectory:
    """In-process supplier services over real gateways: for tools and Ray-less tests."""

    def __init__(self, catalog: CatalogRepository, *, max_concurrency: int = 64) -> None:
        self._catalog = catalog
        self._max_concurrency = max_concurrency
        self._services: dict[str, SupplierService] = {}

    async def get(self, supplier_id: str, order_id: str = "") -> SupplierPort:
        service = self._services.get(supplier_id)
        if service is None:
            supplier = await self._catalog.get_supplier(supplier_id)
            if supplier is None:
                raise UnknownSupplier(supplier_id)
            service = SupplierService(
                supplier_id,
                build_gateway(supplier.gateway, supplier.config),
                max_concurrency=self._max_concurrency,
            )
            self._services[supplier_id] = service
        return service

    async def aclose(self) -> None:
        for service in self._services.values():
            await service.aclose()
        self._services.clear()
