"""The platform's metrics for ops dashboards (docs/metrics.md), through Ray's metrics system.

Every metric is declared here, once, with its labels (`METRICS`): the order hosts, the supplier
hosts and the API replicas record into it, and each node's Ray metrics agent exports what the
processes of its node recorded in Prometheus' text format on the node's metrics export port
(`SHOWDIST_METRICS_PORT`, or `ray start --metrics-export-port`). Ray names a metric
`ray_<name>` when it exports it, and a counter `ray_<name>_total`; `exported_names` says every
name a scrape shows, which the dashboard (deploy/grafana/showdist.json) may use and no other.

Recording is on the hot paths (an order's moves, every supplier call), so each label set's tag
dictionary is built once and reused; a Ray metric object is made in a process when it first
records. One record costs a few microseconds of CPU (measured by bench/metrics_cost.py, figures
in docs/metrics.md).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

from ray.util import metrics as ray_metrics

from domain.order import Order
from domain.status import OrderStatus
from persistence.work import WorkRepository
from suppliers.gateway import (
    CallResult,
    Catalog,
    DeliveryUpdateEvent,
    IssueInfo,
    LockInfo,
    RefundInfo,
    SupplierGateway,
    SupplierRefundEvent,
)

if TYPE_CHECKING:
    from domain.identity import Attendee

T = TypeVar("T")

EXPORT_PREFIX = "ray_"  # what Ray's exporter puts before every application metric's name
# Supplier call latency, in seconds: 1 ms to 30 s (a supplier call's own deadline is 5 s by
# default; a catalog pull may take longer).
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
NO_STATUS = "none"  # the `from` of an order's first entry (NEW: the order was created)
# A supplier call's `outcome` when the gateway raised instead of answering (or the call was
# cancelled): the others are suppliers.gateway.Outcome's values (done, failed, unknown).
ERROR_OUTCOME = "error"


class Kind(StrEnum):
    COUNTER = "counter"
    HISTOGRAM = "histogram"
    GAUGE = "gauge"


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str  # as recorded; exported with EXPORT_PREFIX (and `_total` for a counter)
    kind: Kind
    labels: tuple[str, ...]
    description: str

    @property
    def exported(self) -> tuple[str, ...]:
        """The names under which a scrape shows it."""
        base = EXPORT_PREFIX + self.name
        if self.kind is Kind.COUNTER:
            return (f"{base}_total",)
        if self.kind is Kind.HISTOGRAM:
            return (f"{base}_bucket", f"{base}_sum", f"{base}_count")
        return (base,)


ORDER_MOVES = MetricSpec(
    "showdist_order_moves",
    Kind.COUNTER,
    ("from", "to"),
    "Order status moves committed (from 'none' for a created order), by order host.",
)
SUPPLIER_CALLS = MetricSpec(
    "showdist_supplier_calls",
    Kind.COUNTER,
    ("supplier", "operation", "outcome"),
    "Calls made to suppliers, by supplier, operation and outcome (done, failed, unknown, error).",
)
SUPPLIER_CALL_SECONDS = MetricSpec(
    "showdist_supplier_call_seconds",
    Kind.HISTOGRAM,
    ("supplier", "operation"),
    "Latency of calls made to suppliers, in seconds.",
)
NEGOTIATIONS = MetricSpec(
    "showdist_negotiations",
    Kind.GAUGE,
    ("kind", "status"),
    "Negotiations not resolved (status active: polling; flagged: a person must decide).",
)
CALLBACK_BACKLOG = MetricSpec(
    "showdist_callback_backlog",
    Kind.GAUGE,
    ("shard",),
    "Callback messages waiting to be delivered, by courier shard (order host).",
)
CALLBACK_DEAD = MetricSpec(
    "showdist_callback_dead",
    Kind.GAUGE,
    ("shard",),
    "Callback messages given up on (dead letters), by courier shard (order host).",
)
API_REFUSALS = MetricSpec(
    "showdist_api_refusals",
    Kind.COUNTER,
    ("code",),
    "Requests the API refused at its door (input guard, signature, rate limit, key kind).",
)

METRICS: tuple[MetricSpec, ...] = (
    ORDER_MOVES,
    SUPPLIER_CALLS,
    SUPPLIER_CALL_SECONDS,
    NEGOTIATIONS,
    CALLBACK_BACKLOG,
    CALLBACK_DEAD,
    API_REFUSALS,
)


def exported_names() -> frozenset[str]:
    return frozenset(n for spec in METRICS for n in spec.exported)


class _Family:
    """One metric of this process: its Ray metric (made on first use) and one tag dictionary
    per label values seen, built once (most of a record's cost is Ray's own: docs/metrics.md)."""

    __slots__ = ("_metric", "_spec", "_tags")

    def __init__(self, spec: MetricSpec) -> None:
        self._spec = spec
        self._metric: Any = None
        self._tags: dict[tuple[str, ...], dict[str, str]] = {}

    def _made(self) -> Any:
        spec = self._spec
        if spec.kind is Kind.COUNTER:
            self._metric = ray_metrics.Counter(spec.name, spec.description, spec.labels)
        elif spec.kind is Kind.HISTOGRAM:
            self._metric = ray_metrics.Histogram(
                spec.name, spec.description, list(LATENCY_BUCKETS_S), spec.labels
            )
        else:
            self._metric = ray_metrics.Gauge(spec.name, spec.description, spec.labels)
        return self._metric

    def _tagged(self, values: tuple[str, ...]) -> dict[str, str]:
        tags = self._tags.get(values)
        if tags is None:
            tags = self._tags[values] = dict(zip(self._spec.labels, values, strict=True))
        return tags

    def inc(self, *values: str) -> None:
        (self._metric or self._made()).inc(1, self._tagged(values))

    def observe(self, value: float, *values: str) -> None:
        (self._metric or self._made()).observe(value, self._tagged(values))

    def set(self, value: float, *values: str) -> None:
        (self._metric or self._made()).set(value, self._tagged(values))


_moves = _Family(ORDER_MOVES)
_calls = _Family(SUPPLIER_CALLS)
_call_seconds = _Family(SUPPLIER_CALL_SECONDS)
_negotiations = _Family(NEGOTIATIONS)
_backlog = _Family(CALLBACK_BACKLOG)
_dead = _Family(CALLBACK_DEAD)
_refusals = _Family(API_REFUSALS)


# -- order moves (the order hosts) ---------------------------------------------------------
def unsaved_moves(order: Order) -> list[tuple[str, str]]:
    """The (from, to) status pairs of the moves `order` made since it was last saved."""
    history = order.history
    first = len(history) - len(order.unsaved_history)
    return [
        (history[i - 1].status.value if i else NO_STATUS, history[i].status.value)
        for i in range(first, len(history))
    ]


def moves_committed(moves: Sequence[tuple[str, str]]) -> None:
    for from_status, to_status in moves:
        _moves.inc(from_status, to_status)


def order_created() -> None:
    _moves.inc(NO_STATUS, OrderStatus.NEW.value)


# -- supplier calls (the supplier service) ---------------------------------------------------
class MeteredGateway:
    """A supplier's gateway whose every call is counted by operation and outcome and timed
    (`SupplierService` calls its supplier through one)."""

    def __init__(self, supplier_id: str, gateway: SupplierGateway) -> None:
        self.supplier_id = supplier_id
        self.inner = gateway

    async def _timed(self, operation: str, call: Awaitable[CallResult[T]]) -> CallResult[T]:
        started = time.perf_counter()
        outcome = ERROR_OUTCOME  # unless the gateway answers: it raised (or was cancelled)
        try:
            result = await call
            outcome = result.outcome.value
            return result
        finally:
            # Every counted call is timed, a raised one too: the histogram's count is the
            # calls' count, outcome `error` included.
            _call_seconds.observe(time.perf_counter() - started, self.supplier_id, operation)
            _calls.inc(self.supplier_id, operation, outcome)

    async def lock(
        self,
        order_id: str,
        session_ref: str,
        tier_ref: str,
        quantity: int,
        attendees: Sequence[Attendee] = (),
    ) -> CallResult[LockInfo]:
        call = self.inner.lock(order_id, session_ref, tier_ref, quantity, attendees)
        return await self._timed("lock", call)

    async def release(self, order_id: str) -> CallResult[None]:
        return await self._timed("release", self.inner.release(order_id))

    async def issue(
        self, order_id: str, attendees: Sequence[Attendee] = ()
    ) -> CallResult[IssueInfo]:
        return await self._timed("issue", self.inner.issue(order_id, attendees))

    async def query_issue(self, order_id: str) -> CallResult[IssueInfo]:
        return await self._timed("query_issue", self.inner.query_issue(order_id))

    async def refund(self, order_id: str) -> CallResult[RefundInfo]:
        return await self._timed("refund", self.inner.refund(order_id))

    async def query_refund(self, order_id: str) -> CallResult[RefundInfo]:
        return await self._timed("query_refund", self.inner.query_refund(order_id))

    async def catalog(self) -> CallResult[Catalog]:
        return await self._timed("catalog", self.inner.catalog())

    async def supplier_refunds(self, since_seq: int) -> CallResult[list[SupplierRefundEvent]]:
        return await self._timed("supplier_refunds", self.inner.supplier_refunds(since_seq))

    async def delivery_updates(self, since_seq: int) -> CallResult[list[DeliveryUpdateEvent]]:
        return await self._timed("delivery_updates", self.inner.delivery_updates(since_seq))

    async def aclose(self) -> None:
        await self.inner.aclose()


# -- periodic counts (order hosts) -------------------------------------------------------------
class Gauges:
    """The counts behind the gauges, made by order host `index` every `metrics_count_seconds`
    rather than per request: the callbacks waiting and dead in the courier shards it serves
    (`shards`, asked each time: its partitions), and (host 0 alone) the negotiations not
    resolved. One grouped query each."""

    def __init__(
        self, work: WorkRepository, *, shards: Callable[[], Collection[int] | None], index: int
    ) -> None:
        self._work = work
        self._shards = shards
        self._index = index
        self._label = str(index)

    async def count(self) -> None:
        waiting, dead = await self._work.count_callbacks(shards=self._shards())
        _backlog.set(waiting, self._label)
        _dead.set(dead, self._label)
        if self._index == 0:
            for (kind, status), n in (await self._work.count_unresolved_negotiations()).items():
                _negotiations.set(n, kind, status)


# -- the API's door ------------------------------------------------------------------------------
def request_refused(code: str) -> None:
    _refusals.inc(code)


if TYPE_CHECKING:
    _implements: type[SupplierGateway] = MeteredGateway
