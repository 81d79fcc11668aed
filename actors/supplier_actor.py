"""Every call to a supplier goes through its supplier actor: one place to bound concurrency,
keep the supplier's live statistics and (later) poll its negotiated orders.

`SupplierService` is the plain class (testable without Ray); `SupplierActor` hosts it in a Ray
actor named after the supplier.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import ray

from suppliers.gateway import (
    CallResult,
    Catalog,
    IssueInfo,
    LockInfo,
    Outcome,
    RefundInfo,
    SupplierGateway,
    SupplierRefundEvent,
)
from suppliers.registry import build_gateway

T = TypeVar("T")

_WINDOW = 2000  # calls kept for the rolling statistics


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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    idx = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[idx]


class SupplierService:
    def __init__(self, supplier_id: str, gateway: SupplierGateway, *, max_concurrency: int) -> None:
        self.supplier_id = supplier_id
        self._gateway = gateway
        self._slots = asyncio.Semaphore(max_concurrency)
        self._outcomes: deque[Outcome] = deque(maxlen=_WINDOW)
        self._latencies: deque[float] = deque(maxlen=_WINDOW)
        self._in_flight = 0

    async def _call(self, fn: Callable[[], Awaitable[CallResult[T]]]) -> CallResult[T]:
        async with self._slots:
            self._in_flight += 1
            started = time.perf_counter()
            try:
                result = await fn()
            finally:
                self._in_flight -= 1
        self._outcomes.append(result.outcome)
        self._latencies.append((time.perf_counter() - started) * 1000.0)
        return result

    async def lock(
        self, order_id: str, session_ref: str, tier_ref: str, quantity: int
    ) -> CallResult[LockInfo]:
        return await self._call(
            lambda: self._gateway.lock(order_id, session_ref, tier_ref, quantity)
        )

    async def release(self, order_id: str) -> CallResult[None]:
        return await self._call(lambda: self._gateway.release(order_id))

    async def issue(self, order_id: str) -> CallResult[IssueInfo]:
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

    def stats(self) -> SupplierStats:
        outcomes = list(self._outcomes)
        n = len(outcomes)
        done = sum(1 for o in outcomes if o is Outcome.DONE)
        unknown = sum(1 for o in outcomes if o is Outcome.UNKNOWN)
        lat = sorted(self._latencies)
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
        )

    async def aclose(self) -> None:
        await self._gateway.aclose()


@ray.remote(max_restarts=-1, max_task_retries=0)
class SupplierActor:
    """The Ray home of one supplier's `SupplierService`.

    Calls are not retried by Ray after a crash (max_task_retries=0): a lock or an issue whose
    outcome is unknown must be decided by the order's own logic, never re-sent blindly.
    """

    def __init__(
        self, supplier_id: str, gateway_kind: str, config: dict[str, Any], max_concurrency: int
    ) -> None:
        self._service = SupplierService(
            supplier_id, build_gateway(gateway_kind, config), max_concurrency=max_concurrency
        )

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

    async def stats(self) -> SupplierStats:
        return self._service.stats()

    async def ping(self) -> str:
        return self._service.supplier_id


def supplier_actor_name(instance: str, supplier_id: str) -> str:
    return f"{instance}:supplier:{supplier_id}"
