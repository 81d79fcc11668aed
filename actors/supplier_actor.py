"""The Ray home of one supplier replica: its `SupplierService` (every call to the supplier)
and the background work of `actors.supplier_work` (negotiations, releases, feeds, catalog).

Calls are not retried by Ray after a crash (max_task_retries=0): a lock or an issue whose
outcome is unknown is decided by the order's own logic, never re-sent blindly.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import ray
from sqlalchemy.engine import make_url

from actors.config import SupplierActorConfig
from actors.interfaces import SessionStock, SupplierActorCalls, SupplierStats
from actors.routing import OrderHosts, supplier_replica
from actors.runtime import every
from actors.supplier_service import SupplierService
from actors.supplier_work import SupplierWorker
from domain.circuit import CircuitBreaker
from domain.negotiation import PollingPolicy
from persistence.catalog import CatalogRepository
from persistence.db import make_engine
from persistence.work import WorkRepository
from suppliers.registry import build_gateway


class SupplierActor(SupplierService):
    """One replica of a supplier's actor (`SupplierActorCalls`)."""

    async def __init__(self, config: SupplierActorConfig) -> None:  # type: ignore[misc]
        settings = config.settings
        super().__init__(
            config.supplier_id,
            build_gateway(config.gateway, config.gateway_config),
            max_concurrency=settings.max_concurrency,
            breaker=CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown_seconds),
        )
        self._config = config
        engine = make_engine(config.platform.database_url, pool_size=settings.db_pool_size)
        self._catalog = CatalogRepository(engine)
        self._replicas = 1
        self._worker = SupplierWorker(
            self,
            WorkRepository(engine),
            OrderHosts(config.platform),
            catalog=self._catalog,
            owns=self._owns,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._retiring = False
        self._start_loops()

    def _owns(self, order_id: str) -> bool:
        """With several replicas, each polls and releases for its share of the orders (the
        same stable hash that routes the orders' calls to it)."""
        return supplier_replica(order_id, self._replicas) == self._config.replica

    async def _refresh_replicas(self) -> None:
        supplier = await self._catalog.get_supplier(self._config.supplier_id)
        if supplier is not None:
            self._replicas = max(1, supplier.replicas)

    def _start_loops(self) -> None:
        tick = self._config.settings.tick_seconds
        loop = asyncio.get_running_loop()
        jobs: list[tuple[float, Callable[[], Awaitable[Any]]]] = [
            (tick, self._refresh_replicas),
            (tick, self._worker.poll_negotiations),
            (tick, self._worker.drain_releases),
        ]
        if self._config.replica == 0:  # one reader of the supplier's feeds and catalog
            jobs += [
                (tick, self._worker.read_feeds),
                (self._config.settings.catalog_sync_seconds, self._worker.sync_catalog),
            ]
        self._tasks = [loop.create_task(every(t, job)) for t, job in jobs]

    async def retire(self, grace_s: float) -> str:
        """Leave the supplier's replicas without losing a call: stop the background work,
        keep answering calls while routers still send them (`grace_s`, past their routing
        cache), wait for the calls in flight, then exit unless scaled back up meanwhile."""
        if self._retiring:
            return "retiring"
        self._retiring = True
        for task in self._tasks:
            task.cancel()
        await asyncio.sleep(grace_s)
        while self.current_stats().in_flight:
            await asyncio.sleep(0.05)
        await self._refresh_replicas()
        if self._config.replica < self._replicas:
            self._retiring = False
            self._start_loops()
            return "kept"
        ray.actor.exit_actor()  # type: ignore[no-untyped-call]
        return "exited"  # not reached

    async def policy(self) -> PollingPolicy:
        await self._worker.refresh_overrides()
        return await super().policy()

    async def stats(self) -> SupplierStats:
        await self._worker.refresh_overrides()
        return self.current_stats()

    async def sync_catalog(self) -> int:
        return await self._worker.sync_catalog()

    async def session_stock(self, session_ref: str, max_age_s: float) -> SessionStock | None:
        return await self._worker.session_stock(session_ref, max_age_s)

    async def run_work_now(self) -> dict[str, int]:
        """Run each background job once (ops and tests)."""
        return {
            "decided": await self._worker.poll_negotiations(),
            "released": await self._worker.drain_releases(),
            "feed_events": await self._worker.read_feeds(),
        }

    async def config(self) -> SupplierActorConfig:
        """The configuration this replica was started with (the database password hidden)."""
        url = make_url(self._config.platform.database_url).render_as_string(hide_password=True)
        return replace(self._config, platform=replace(self._config.platform, database_url=url))

    async def ping(self) -> str:
        return self.supplier_id

    async def pid(self) -> int:
        return os.getpid()


if TYPE_CHECKING:
    _implements: type[SupplierActorCalls] = SupplierActor

# The Ray actor class (restarted on failure, never retrying a call).
SupplierActorRemote = ray.remote(max_restarts=-1, max_task_retries=0)(SupplierActor)
