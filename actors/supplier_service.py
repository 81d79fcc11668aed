"""Every call to a supplier goes through its supplier's service: one place to bound
concurrency, break the circuit when the supplier fails, and keep the supplier's live
statistics, from which the polling policy of its negotiations follows. A plain class
(testable without Ray); `actors.supplier_actor.SupplierActor` is its Ray home."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from actors.interfaces import LockRecord, SupplierCalls, SupplierStats
from actors.metrics import MeteredGateway
from domain.circuit import CircuitBreaker
from domain.identity import Attendee
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
    breaks_circuit,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

_WINDOW = 2000  # calls kept for the rolling statistics


def busy() -> CallResult[LockInfo]:
    """A lock refused without calling the supplier: its call limit is reached."""
    return CallResult(Outcome.FAILED, error="busy", message="supplier at its call limit")


async def take_slot(slots: asyncio.Semaphore, wait_s: float) -> bool:
    """One of a supplier's call slots, waited for at most `wait_s` (a lock fails fast)."""
    try:
        await asyncio.wait_for(slots.acquire(), wait_s)
    except TimeoutError:
        return False
    return True


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
        self._gateway = MeteredGateway(supplier_id, gateway)  # counted and timed
        self._slots = asyncio.Semaphore(max_concurrency)
        self._slot_wait_s = slot_wait_s
        self._breaker = breaker or CircuitBreaker()
        self._outcomes: deque[Outcome] = deque(maxlen=_WINDOW)
        self._latencies: deque[float] = deque(maxlen=_WINDOW)
        self._in_flight = 0
        # Issues and refunds asked of this service and not answered yet, waiting for a slot
        # or on the wire, by order: a query meanwhile answers PENDING without asking.
        self._pending: Counter[tuple[str, str]] = Counter()
        self._overrides: tuple[int | None, int | None] = (None, None)
        self._last_failure_at = 0.0  # wall clock of the last lock failure the breaker counted

    @property
    def calls_open(self) -> bool:
        """Is a call on the wire, or an issue or refund waiting for a slot? (Such an actor
        is not let go: a query after it would no longer know of the command.)"""
        return self._in_flight > 0 or bool(self._pending)

    def set_overrides(self, interval_ms: int | None, give_up_ms: int | None) -> None:
        self._overrides = (interval_ms, give_up_ms)

    def _record(self, result: CallResult[Any], started: float) -> None:
        self._outcomes.append(result.outcome)
        self._latencies.append((time.perf_counter() - started) * 1000.0)

    def _feed_breaker(self, result: CallResult[Any]) -> None:
        # Only locks feed the breaker: it guards the call that must fail fast, and a
        # supplier whose background calls (releases, feeds) work may still refuse locks.
        if breaks_circuit(result.outcome, result.error):
            self._breaker.record_failure(time.monotonic())
            self._last_failure_at = time.time()
        else:
            self._breaker.record_success()

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
        self,
        order_id: str,
        session_ref: str,
        tier_ref: str,
        quantity: int,
        attendees: tuple[Attendee, ...] = (),
    ) -> CallResult[LockInfo]:
        # Before payment we fail fast: an open circuit or a saturated supplier answers at once
        # without calling it (and without holding anything there).
        if not self._breaker.allow(time.monotonic()):
            return CallResult(Outcome.FAILED, error=ErrorCode.CIRCUIT_OPEN, message="circuit open")
        if not await take_slot(self._slots, self._slot_wait_s):
            self._breaker.probe_in_flight = False
            return busy()
        self._in_flight += 1
        started = time.perf_counter()
        try:
            result = await self._gateway.lock(order_id, session_ref, tier_ref, quantity, attendees)
        finally:
            self._in_flight -= 1
            self._slots.release()
        self._record(result, started)
        self._feed_breaker(result)
        return result

    def absorb_locks(self, records: Sequence[LockRecord]) -> tuple[str, int]:
        """Calls made without this service (by its supplier's lanes, actors/supplier_lane.py):
        counted in the statistics; the locks also fed to the breaker in order (a success older
        than the last failure counted closes nothing). Returns the breaker's state and its
        failures since the last success."""
        for r in records:
            self._outcomes.append(r.outcome)
            self._latencies.append(r.latency_ms)
            if r.op != "lock":
                continue  # (only locks feed the breaker, as in `_feed_breaker`)
            if breaks_circuit(r.outcome, r.error):
                self._breaker.record_failure(time.monotonic())
                self._last_failure_at = max(self._last_failure_at, r.at)
            elif r.at >= self._last_failure_at:
                self._breaker.record_success()
        return self._breaker.state.value, self._breaker.consecutive_failures

    @property
    def lock_failures(self) -> int:
        """Lock failures the breaker counted since the last success."""
        return self._breaker.consecutive_failures

    async def release(self, order_id: str) -> CallResult[None]:
        return await self._call(lambda: self._gateway.release(order_id))

    async def _command(
        self, kind: str, order_id: str, fn: Callable[[], Awaitable[CallResult[T]]]
    ) -> CallResult[T]:
        key = (kind, order_id)
        self._pending[key] += 1
        try:
            return await self._call(fn)
        finally:
            self._pending[key] -= 1
            if not self._pending[key]:
                del self._pending[key]

    async def _query(
        self, kind: str, order_id: str, fn: Callable[[], Awaitable[CallResult[T]]]
    ) -> CallResult[T]:
        # The order host that sent the command may be gone (its node lost) while the command
        # still waits here: the supplier has not heard of it yet and would answer "not
        # issued", and the order would be canceled before it is issued. Not while it waits.
        if self._pending[(kind, order_id)]:
            return CallResult(
                Outcome.UNKNOWN,
                error=ErrorCode.PENDING,
                message=f"a {kind} of this order is still in flight here",
            )
        return await self._call(fn)

    async def issue(
        self, order_id: str, attendees: tuple[Attendee, ...] = ()
    ) -> CallResult[IssueInfo]:
        # Not short-circuited: the buyer has paid, and a refused call is worse than a slow one.
        return await self._command(
            "issue", order_id, lambda: self._gateway.issue(order_id, attendees)
        )

    async def query_issue(self, order_id: str) -> CallResult[IssueInfo]:
        return await self._query("issue", order_id, lambda: self._gateway.query_issue(order_id))

    async def refund(self, order_id: str) -> CallResult[RefundInfo]:
        return await self._command("refund", order_id, lambda: self._gateway.refund(order_id))

    async def query_refund(self, order_id: str) -> CallResult[RefundInfo]:
        return await self._query("refund", order_id, lambda: self._gateway.query_refund(order_id))

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

    def current_stats(self) -> SupplierStats:
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


if TYPE_CHECKING:  # the service answers every call an order's actor makes of its supplier
    _implements: type[SupplierCalls] = SupplierService
