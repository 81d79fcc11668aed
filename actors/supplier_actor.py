"""Every call to a supplier goes through its supplier actor: one place to bound concurrency,
break the circuit when the supplier fails, keep its live statistics, and poll its negotiated
orders.

`SupplierService` is the plain class (testable without Ray); `SupplierActor` hosts it in a Ray
actor named after the supplier, with the background loops of `actors.supplier_work`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import ray

from actors.runtime import every
from domain.circuit import CircuitBreaker
from domain.ids import stable_shard
from domain.negotiation import PollingPolicy, SupplierHealth, polling_policy
from suppliers.gateway import (
    CallResult,
    Catalog,
    DeliveryUpdateEvent,
    ErrorCode,
    IssueInfo,
    LockInfo,
    Outcome,
    RefundInfo,
    SupplierGateway,
    SupplierRefundEvent,
)
from suppliers.registry import build_gateway

log = logging.getLogger(__name__)
T = TypeVar("T")

_WINDOW = 2000  # calls kept for the rolling statistics
# Definite business answers: the supplier is up and said no.
_BUSINESS_ERRORS = frozenset(
    {
        ErrorCode.SOLD_OUT,
        ErrorCode.REFUSED,
        ErrorCode.NOT_FOUND,
        ErrorCode.INVALID_REQUEST,
        ErrorCode.HTTP_4XX,
        ErrorCode.NOT_ISSUED,
        ErrorCode.NOT_REFUNDED,
    }
)


@dataclass(frozen=True, slots=True)
class SupplierStats:
    calls: int
    done: int
    failed: int
    unknown: int
    success_rate: float  # done / calls over the window
    unknown_rate: float
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    in_flight: int
    circuit: str
    poll_interval_s: float
    give_up_after_s: float
    polling_adaptive: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    idx = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[idx]


class SupplierService:
    def __init__(
        self,
        supplier_id: str,
        gateway: SupplierGateway,
        *,
        max_concurrency: int,
        breaker: CircuitBreaker | None = None,
        slot_wait_s: float = 2.0,
    ) -> None:
        self.supplier_id = supplier_id
        self._gateway = gateway
        self._slots = asyncio.Semaphore(max_concurrency)
        self._slot_wait_s = slot_wait_s
        self._breaker = breaker or CircuitBreaker()
        self._outcomes: deque[Outcome] = deque(maxlen=_WINDOW)
        self._latencies: deque[float] = deque(maxlen=_WINDOW)
        self._in_flight = 0
        self._overrides: tuple[int | None, int | None] = (None, None)

    def set_overrides(self, interval_ms: int | None, give_up_ms: int | None) -> None:
        self._overrides = (interval_ms, give_up_ms)

    def _record(self, result: CallResult[Any], started: float) -> None:
        self._outcomes.append(result.outcome)
        self._latencies.append((time.perf_counter() - started) * 1000.0)

    def _feed_breaker(self, result: CallResult[Any]) -> None:
        # Only locks feed the breaker: it guards the call that must fail fast, and a
        # supplier whose background calls (releases, feeds) work may still refuse locks.
        if result.outcome is Outcome.DONE or result.error in _BUSINESS_ERRORS:
            self._breaker.record_success()
        else:
            self._breaker.record_failure(time.monotonic())

    async def _call(self, fn: Callable[[], Awaitable[CallResult[T]]]) -> CallResult[T]:
        async with self._slots:
            self._in_flight += 1
            started = time.perf_counter()
            try:
                result = await fn()
            finally:
                self._in_flight -= 1
        self._record(result, started)
        return result

    async def lock(
        self, order_id: str, session_ref: str, tier_ref: str, quantity: int
    ) -> CallResult[LockInfo]:
        # Before payment we fail fast: an open circuit or a saturated supplier answers at once
        # without calling it (and without holding anything there).
        if not self._breaker.allow(time.monotonic()):
            return CallResult(Outcome.FAILED, error=ErrorCode.CIRCUIT_OPEN, message="circuit open")
        try:
            await asyncio.wait_for(self._slots.acquire(), self._slot_wait_s)
        except TimeoutError:
            self._breaker.probe_in_flight = False
            return CallResult(Outcome.FAILED, error="busy", message="supplier at its call limit")
        self._in_flight += 1
        started = time.perf_counter()
        try:
            result = await self._gateway.lock(order_id, session_ref, tier_ref, quantity)
        finally:
            self._in_flight -= 1
            self._slots.release()
        self._record(result, started)
        self._feed_breaker(result)
        return result

    async def release(self, order_id: str) -> CallResult[None]:
        return await self._call(lambda: self._gateway.release(order_id))

    async def issue(self, order_id: str) -> CallResult[IssueInfo]:
        # Not short-circuited: the buyer has paid, and a refused call is worse than a slow one.
        return await self._call(lambda: self._gateway.issue(order_id))

    async def query_issue(self, order_id: str) -> CallResult[IssueInfo]:
        return await self._call(lambda: self._gateway.query_issue(order_id))

    async def refund(self, order_id: str) -> CallResult[RefundInfo]:
        return await self._call(lambda: self._gateway.refund(order_id))

    async def query_refund(self, order_id: str) -> CallResult[RefundInfo]:
        return await self._call(lambda: self._gateway.query_refund(order_id))

    async def catalog(self) -> CallResult[Catalog]:
        return await self._call(self._gateway.catalog)

    async def supplier_refunds(self, since_seq: int) -> CallResult[list[SupplierRefundEvent]]:
        return await self._call(lambda: self._gateway.supplier_refunds(since_seq))

    async def delivery_updates(self, since_seq: int) -> CallResult[list[DeliveryUpdateEvent]]:
        return await self._call(lambda: self._gateway.delivery_updates(since_seq))

    def _health(self) -> tuple[int, int, int, list[float]]:
        outcomes = list(self._outcomes)
        done = sum(1 for o in outcomes if o is Outcome.DONE)
        unknown = sum(1 for o in outcomes if o is Outcome.UNKNOWN)
        return len(outcomes), done, unknown, sorted(self._latencies)

    def polling_policy(self) -> PollingPolicy:
        return self._policy(*self._health())

    def _policy(self, n: int, done: int, unknown: int, lat: list[float]) -> PollingPolicy:
        health = SupplierHealth(
            success_rate=done / n if n else 1.0,
            unknown_rate=unknown / n if n else 0.0,
            latency_p95_ms=_percentile(lat, 0.95),
        )
        return polling_policy(
            health, interval_override_ms=self._overrides[0], give_up_override_ms=self._overrides[1]
        )

    async def policy(self) -> PollingPolicy:
        return self.polling_policy()

    def stats(self) -> SupplierStats:
        n, done, unknown, lat = self._health()
        policy = self._policy(n, done, unknown, lat)
        return SupplierStats(
            calls=n,
            done=done,
            failed=n - done - unknown,
            unknown=unknown,
            success_rate=done / n if n else 1.0,
            unknown_rate=unknown / n if n else 0.0,
            latency_p50_ms=_percentile(lat, 0.50),
            latency_p95_ms=_percentile(lat, 0.95),
            latency_p99_ms=_percentile(lat, 0.99),
            in_flight=self._in_flight,
            circuit=self._breaker.state.value,
            poll_interval_s=policy.interval.total_seconds(),
            give_up_after_s=policy.give_up_after.total_seconds(),
            polling_adaptive=policy.adaptive,
        )

    async def aclose(self) -> None:
        await self._gateway.aclose()


@dataclass(frozen=True, slots=True)
class SupplierActorConfig:
    supplier_id: str
    gateway: str
    gateway_config: dict[str, Any]
    max_concurrency: int
    database_url: str
    instance: str
    namespace: str
    hosts: int
    tick_seconds: float = 1.0
    breaker_threshold: int = 5
    breaker_cooldown_s: float = 5.0
    catalog_sync_seconds: float = 60.0
    replica: int = 0  # this actor's index among the supplier's replicas


@ray.remote(max_restarts=-1, max_task_retries=0)
class SupplierActor:
    """The Ray home of one supplier's `SupplierService` and its background work.

    Calls are not retried by Ray after a crash (max_task_retries=0): a lock or an issue whose
    outcome is unknown is decided by the order's own logic, never re-sent blindly.
    """

    async def __init__(self, config: SupplierActorConfig) -> None:  # type: ignore[misc]
        from actors.supplier_work import RayOrderRouter, SupplierWorker
        from persistence.catalog import CatalogRepository
        from persistence.db import make_engine
        from persistence.work import WorkRepository

        self._config = config
        self._service = SupplierService(
            config.supplier_id,
            build_gateway(config.gateway, config.gateway_config),
            max_concurrency=config.max_concurrency,
            breaker=CircuitBreaker(config.breaker_threshold, config.breaker_cooldown_s),
        )
        engine = make_engine(config.database_url, pool_size=4)
        self._catalog = CatalogRepository(engine)
        self._replicas = 1
        self._worker = SupplierWorker(
            self._service,
            WorkRepository(engine),
            RayOrderRouter(config.instance, config.namespace, config.hosts),
            catalog=self._catalog,
            owns=self._owns,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._retiring = False
        self._start_loops()

    def _owns(self, order_id: str) -> bool:
        """With several replicas, each polls and releases for its share of the orders (the
        same stable hash that routes the orders' calls to it)."""
        return stable_shard(order_id, self._replicas) == self._config.replica

    async def _refresh_replicas(self) -> None:
        supplier = await self._catalog.get_supplier(self._config.supplier_id)
        if supplier is not None:
            self._replicas = max(1, supplier.replicas)

    def _start_loops(self) -> None:
        config = self._config
        loop = asyncio.get_running_loop()
        jobs: list[tuple[float, Callable[[], Awaitable[Any]]]] = [
            (config.tick_seconds, self._refresh_replicas),
            (config.tick_seconds, self._worker.poll_negotiations),
            (config.tick_seconds, self._worker.drain_releases),
        ]
        if config.replica == 0:  # one reader of the supplier's feeds and catalog
            jobs += [
                (config.tick_seconds, self._worker.read_feeds),
                (config.catalog_sync_seconds, self._worker.sync_catalog),
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
        while self._service.stats().in_flight:
            await asyncio.sleep(0.05)
        await self._refresh_replicas()
        if self._config.replica < self._replicas:
            self._retiring = False
            self._start_loops()
            return "kept"
        ray.actor.exit_actor()  # type: ignore[no-untyped-call]
        return "exited"  # not reached

    async def lock(
        self, order_id: str, session_ref: str, tier_ref: str, quantity: int
    ) -> CallResult[LockInfo]:
        return await self._service.lock(order_id, session_ref, tier_ref, quantity)

    async def release(self, order_id: str) -> CallResult[None]:
        return await self._service.release(order_id)

    async def issue(self, order_id: str) -> CallResult[IssueInfo]:
        return await self._service.issue(order_id)

    async def query_issue(self, order_id: str) -> CallResult[IssueInfo]:
        return await self._service.query_issue(order_id)

    async def refund(self, order_id: str) -> CallResult[RefundInfo]:
        return await self._service.refund(order_id)

    async def query_refund(self, order_id: str) -> CallResult[RefundInfo]:
        return await self._service.query_refund(order_id)

    async def catalog(self) -> CallResult[Catalog]:
        return await self._service.catalog()

    async def supplier_refunds(self, since_seq: int) -> CallResult[list[SupplierRefundEvent]]:
        return await self._service.supplier_refunds(since_seq)

    async def delivery_updates(self, since_seq: int) -> CallResult[list[DeliveryUpdateEvent]]:
        return await self._service.delivery_updates(since_seq)

    async def policy(self) -> PollingPolicy:
        await self._worker.refresh_overrides()
        return await self._service.policy()

    async def stats(self) -> SupplierStats:
        await self._worker.refresh_overrides()
        return self._service.stats()

    async def sync_catalog(self) -> int:
        return await self._worker.sync_catalog()

    async def session_stock(self, session_ref: str, max_age_s: float) -> Any:
        return await self._worker.session_stock(session_ref, max_age_s)

    async def run_work_now(self) -> dict[str, int]:
        """Run each background job once (ops and tests)."""
        return {
            "decided": await self._worker.poll_negotiations(),
            "released": await self._worker.drain_releases(),
            "feed_events": await self._worker.read_feeds(),
        }

    async def ping(self) -> str:
        return self._service.supplier_id

    async def pid(self) -> int:
        import os

        return os.getpid()


def supplier_actor_name(instance: str, supplier_id: str, replica: int = 0) -> str:
    return f"{instance}:supplier:{supplier_id}:{replica}"
