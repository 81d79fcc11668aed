"""The calls of every platform actor, declared once: each protocol here is implemented by the
actor's class and held by its callers through `actors.remote.typed`, so mypy checks both
sides of every call. The messages and values that cross them are plain frozen dataclasses
(they are pickled between processes)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from actors.channel import ChannelAddress
from actors.config import SupplierActorConfig
from domain.identity import Attendee
from domain.negotiation import NegotiationKind, PollingPolicy
from domain.order import DeliveryMethod, IssuedTicket
from domain.pickling import by_fields
from domain.replies import OrderReply
from domain.settlement import PeriodSummary, PeriodView
from suppliers.gateway import (
    CallResult,
    Catalog,
    DeliveryUpdateEvent,
    IssueInfo,
    LockInfo,
    Outcome,
    RefundInfo,
    SupplierRefundEvent,
)

# -- order hosts ---------------------------------------------------------------------------


@by_fields
@dataclass(frozen=True, slots=True)
class CreateOrder:
    """A create request after the HTTP layer has checked the caller, the grant and the tier."""

    order_id: str
    distributor_id: str
    distributor_order_id: str
    supplier_id: str
    session_id: str
    tier_id: str
    session_ref: str
    tier_ref: str
    quantity: int
    unit_price: int
    settlement_price: int
    face_value: int
    currency: str
    delivery_method: DeliveryMethod
    delivery_address: str | None
    buyer: dict[str, str]
    callback_url: str | None
    request_hash: str
    lock_seconds: int | None = None
    # Real-name sessions: one attendee per ticket, and the session's limit per document.
    attendees: tuple[Attendee, ...] = ()
    tickets_per_id: int = 0


# What an order's actor answers a negotiation's answer or a timer: the order's status after
# it, or "missing" (no such order).
MISSING = "missing"


class EventOutcome(StrEnum):
    """What became of an event of a supplier's feed at its order's actor."""

    APPLIED = "applied"  # it applied, or there was nothing to do: done with it
    NOT_YET = "not_yet"  # it cannot apply yet (the order is still FIXING): keep it, ask again
    REFUSED = "refused"  # it can never apply (no such order, another supplier's order, ...)


@dataclass(frozen=True, slots=True)
class EventResult:
    outcome: EventOutcome
    reason: str = ""  # what was done, why not yet, or why refused


class OrderHostCalls(Protocol):
    """An `OrderHost`: the virtual order actors of its share of the orders."""

    async def create(self, cmd: CreateOrder) -> OrderReply: ...
    async def get(self, order_id: str, distributor_id: str | None) -> OrderReply: ...
    async def issue(self, order_id: str, distributor_id: str) -> OrderReply: ...
    async def cancel(self, order_id: str, distributor_id: str | None) -> OrderReply: ...
    async def refund(self, order_id: str, distributor_id: str, reason: str) -> OrderReply: ...
    async def operator_resolve(
        self, order_id: str, action: str, tickets: tuple[IssuedTicket, ...], note: str
    ) -> OrderReply: ...

    # from the supplier's actor
    async def negotiation_answer(
        self, order_id: str, kind: NegotiationKind, result: CallResult[Any]
    ) -> str: ...
    async def supplier_refunded(
        self, order_id: str, supplier_id: str, refunded_at: datetime
    ) -> EventResult: ...
    async def delivery_update(
        self, order_id: str, supplier_id: str, status: str
    ) -> EventResult: ...

    # the host's channel (`actors.channel`), where the calls of `ORDER_CALLS` go too
    async def channel(self) -> ChannelAddress: ...

    # ops, tools and tests
    async def sweep_now(self) -> dict[str, str]: ...
    async def deliver_callbacks_now(self) -> int: ...
    async def activate_many(self, order_ids: list[str]) -> int: ...
    async def stats(self) -> dict[str, int]: ...
    async def rss_bytes(self) -> int: ...
    async def suspect_supplier(self, supplier_id: str) -> None: ...
    async def refresh_partitions(self) -> dict[str, int]: ...
    async def ping(self) -> bool: ...
    async def pid(self) -> int: ...
    async def node_id(self) -> str: ...


# The calls of one order, routed to the host owning its partition (`actors.routing`): they
# go over the host's channel rather than as Ray calls.
ORDER_CALLS = frozenset(
    {
        "create",
        "get",
        "issue",
        "cancel",
        "refund",
        "operator_resolve",
        "negotiation_answer",
        "supplier_refunded",
        "delivery_update",
    }
)


# -- supplier actors -----------------------------------------------------------------------


class SupplierCalls(Protocol):
    """What an order's actor asks of its supplier (through the supplier's actor)."""

    async def lock(
        self,
        order_id: str,
        session_ref: str,
        tier_ref: str,
        quantity: int,
        attendees: tuple[Attendee, ...] = (),
    ) -> CallResult[LockInfo]: ...
    async def release(self, order_id: str) -> CallResult[None]: ...
    async def issue(
        self, order_id: str, attendees: tuple[Attendee, ...] = ()
    ) -> CallResult[IssueInfo]: ...
    async def query_issue(self, order_id: str) -> CallResult[IssueInfo]: ...
    async def refund(self, order_id: str) -> CallResult[RefundInfo]: ...
    async def query_refund(self, order_id: str) -> CallResult[RefundInfo]: ...
    async def policy(self) -> PollingPolicy: ...


@dataclass(frozen=True, slots=True)
class LockRecord:
    """A call a supplier's lane made (actors/supplier_lane.py), for its actor to count: a
    lock (which its breaker counts too) or an issue (its statistics only)."""

    outcome: Outcome
    error: str | None
    latency_ms: float
    at: float  # wall clock (time.time()) when it was answered
    op: str = "lock"  # "lock" | "issue"


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


@dataclass(frozen=True, slots=True)
class SessionStock:
    tiers: tuple[tuple[str, int], ...]  # (tier_ref, available)
    as_of: datetime


class SupplierActorCalls(SupplierCalls, Protocol):
    """A supplier's actor (one of its replicas): its calls, stats and background work."""

    async def catalog(self) -> CallResult[Catalog]: ...
    async def supplier_refunds(self, since_seq: int) -> CallResult[list[SupplierRefundEvent]]: ...
    async def delivery_updates(self, since_seq: int) -> CallResult[list[DeliveryUpdateEvent]]: ...
    async def stats(self) -> SupplierStats: ...
    async def lock_outcomes(self, records: list[LockRecord]) -> tuple[str, int]: ...
    async def sync_catalog(self) -> int: ...
    async def session_stock(self, session_ref: str, max_age_s: float) -> SessionStock | None: ...
    async def run_work_now(self) -> dict[str, int]: ...
    async def retire(self, grace_s: float) -> str: ...
    async def config(self) -> SupplierActorConfig: ...
    async def ping(self) -> str: ...
    async def pid(self) -> int: ...


class SupplierHostCalls(Protocol):
    """A process hosting supplier actors (`actors.supplier_actor.SupplierHost`): every call of
    `SupplierActorCalls`, with the supplier's id first (`actors.remote.bound` makes one
    supplier's view of it), and the host's own."""

    async def lock(
        self,
        supplier_id: str,
        order_id: str,
        session_ref: str,
        tier_ref: str,
        quantity: int,
        attendees: tuple[Attendee, ...] = (),
    ) -> CallResult[LockInfo]: ...
    async def release(self, supplier_id: str, order_id: str) -> CallResult[None]: ...
    async def issue(
        self, supplier_id: str, order_id: str, attendees: tuple[Attendee, ...] = ()
    ) -> CallResult[IssueInfo]: ...
    async def query_issue(self, supplier_id: str, order_id: str) -> CallResult[IssueInfo]: ...
    async def refund(self, supplier_id: str, order_id: str) -> CallResult[RefundInfo]: ...
    async def query_refund(self, supplier_id: str, order_id: str) -> CallResult[RefundInfo]: ...
    async def policy(self, supplier_id: str) -> PollingPolicy: ...
    async def catalog(self, supplier_id: str) -> CallResult[Catalog]: ...
    async def supplier_refunds(
        self, supplier_id: str, since_seq: int
    ) -> CallResult[list[SupplierRefundEvent]]: ...
    async def delivery_updates(
        self, supplier_id: str, since_seq: int
    ) -> CallResult[list[DeliveryUpdateEvent]]: ...
    async def stats(self, supplier_id: str) -> SupplierStats: ...
    async def lock_outcomes(
        self, supplier_id: str, records: list[LockRecord]
    ) -> tuple[str, int]: ...
    async def sync_catalog(self, supplier_id: str) -> int: ...
    async def session_stock(
        self, supplier_id: str, session_ref: str, max_age_s: float
    ) -> SessionStock | None: ...
    async def run_work_now(self, supplier_id: str) -> dict[str, int]: ...
    async def retire(self, supplier_id: str, grace_s: float) -> str: ...
    async def config(self, supplier_id: str) -> SupplierActorConfig: ...
    async def ping(self, supplier_id: str) -> str: ...
    async def pid(self, supplier_id: str) -> int: ...
    # The host's own.
    async def hosted(self) -> list[str]: ...
    async def host_pid(self) -> int: ...
    async def node_id(self) -> str: ...


# -- the settlement actor ------------------------------------------------------------------


class SettlementCalls(Protocol):
    """The platform's settlement actor: per-period totals from the flows ledger."""

    async def snapshot(self, period: str) -> PeriodView: ...
    async def periods(self) -> list[PeriodSummary]: ...
    async def close(self, period: str) -> tuple[PeriodView, bool]: ...
    async def stats(self) -> dict[str, Any]: ...
    async def ping(self) -> bool: ...
    async def pid(self) -> int: ...
    async def node_id(self) -> str: ...
