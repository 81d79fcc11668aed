"""The order aggregate: its fields, its money, and the guarded moves between statuses.

Pure: every move takes `now` from the caller, and nothing here touches a database or a
supplier. Each move records the facts it implies (`Order.facts`: a history entry, seats to
release, a negotiation opened or closed, a supplier refund, a delivery step); the order actor
loads an `Order`, makes a move, and the repository saves the move with its facts' rows in one
transaction, with a compare-and-set on `version`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from operator import attrgetter
from typing import Any

from domain.identity import Attendee
from domain.money import Money
from domain.negotiation import NegotiationKind, PollingPolicy, Resolution
from domain.pickling import by_fields
from domain.status import DeliveryStatus, InvalidTransition, OrderStatus, transition

# Statuses in which the supplier has issued the tickets (whatever happened after).
ISSUED_STATUSES = frozenset(
    {OrderStatus.FIXED, OrderStatus.REFUNDING, OrderStatus.REFUNDED, OrderStatus.REFUND_FAIL}
)


# Statuses in which an order no longer holds its attendees' documents (terminal: once).
FREES_DOCUMENTS = frozenset({OrderStatus.CANCELED, OrderStatus.LOCK_FAILED, OrderStatus.REFUNDED})


class DeliveryMethod(StrEnum):
    ETICKET = "ETICKET"
    EXPRESS = "EXPRESS"


@by_fields
@dataclass(frozen=True, slots=True)
class IssuedTicket:
    code: str
    seat: str | None = None


@by_fields
@dataclass(frozen=True, slots=True)
class HistoryEntry:
    status: OrderStatus
    at: datetime
    reason: str | None = None


@by_fields
@dataclass(frozen=True, slots=True)
class SupplierRefund:
    """A refund the supplier made, with its own refund time (the basis of the settlement minus
    flow) and who started it."""

    refunded_at: datetime
    initiated_by: str  # "platform" | "supplier"


# -- facts: what a move implies, recorded by the move itself ---------------------------------
# Each move appends the facts it brings into being to `Order.facts`; the repository writes
# each fact's rows in the move's transaction (one mapping, persistence/orders.py), and flows
# (domain/flows.py) and callbacks (domain/callbacks.py) are derived from the same facts.


@dataclass(frozen=True, slots=True)
class Moved:
    """The order's status changed: a history row."""

    entry: HistoryEntry


@dataclass(frozen=True, slots=True)
class TicketsIssued:
    tickets: tuple[IssuedTicket, ...]


@dataclass(frozen=True, slots=True)
class SeatsToRelease:
    """The supplier may hold seats for this order: release them (best effort, retried)."""

    at: datetime


@dataclass(frozen=True, slots=True)
class NegotiationOpened:
    """The supplier's answer is unknown: poll it from `next_poll_at`, ask a person after
    `give_up_at`."""

    kind: NegotiationKind
    started_at: datetime
    next_poll_at: datetime
    give_up_at: datetime


@dataclass(frozen=True, slots=True)
class NegotiationClosed:
    kind: NegotiationKind
    resolution: Resolution
    at: datetime


@dataclass(frozen=True, slots=True)
class SupplierRefundRecorded:
    refund: SupplierRefund
    at: datetime


@dataclass(frozen=True, slots=True)
class DeliveryChanged:
    """The supplier reported a delivery step (the delivery that comes with issuing is part
    of the FIXED move, told by its status callback)."""

    status: DeliveryStatus
    at: datetime


@dataclass(frozen=True, slots=True)
class DocumentsFreed:
    """A real-name order let its seats go (CANCELED, LOCK_FAILED, REFUNDED): its attendees'
    documents may buy tickets of the session again."""

    at: datetime


Fact = (
    Moved
    | DocumentsFreed
    | TicketsIssued
    | SeatsToRelease
    | NegotiationOpened
    | NegotiationClosed
    | SupplierRefundRecorded
    | DeliveryChanged
)

# The negotiation an order in flight with the supplier would have open.
_NEGOTIATING: dict[OrderStatus, NegotiationKind] = {
    OrderStatus.FIXING: NegotiationKind.ISSUE,
    OrderStatus.REFUNDING: NegotiationKind.REFUND,
}


@dataclass(slots=True)
class Order:
    id: str
    distributor_id: str
    distributor_order_id: str
    supplier_id: str
    session_id: str
    tier_id: str
    quantity: int
    unit_price: int  # distribution price per ticket, minor units: what the distributor pays
    settlement_price: int  # per ticket, minor units: what we pay the supplier
    face_value: int
    currency: str
    delivery_method: DeliveryMethod
    request_hash: str
    created_at: datetime
    updated_at: datetime
    status: OrderStatus = OrderStatus.NEW
    delivery_status: DeliveryStatus = DeliveryStatus.NONE
    buyer: dict[str, str] = field(default_factory=dict)
    delivery_address: str | None = None
    callback_url: str | None = None
    lock_expires_at: datetime | None = None
    supplier_lock_ref: str | None = None
    failure_reason: str | None = None
    tickets: tuple[IssuedTicket, ...] = ()
    history: list[HistoryEntry] = field(default_factory=list)
    # Real-name tickets: one attendee per ticket, whose documents hold at most
    # `tickets_per_id` tickets of the session across every distributor (0: not real-name).
    attendees: tuple[Attendee, ...] = ()
    tickets_per_id: int = 0
    version: int = 0
    # Facts recorded by the moves made since the order was loaded; the repository writes
    # their rows with the move and clears them.
    facts: list[Fact] = field(default_factory=list)

    @property
    def unsaved_history(self) -> list[HistoryEntry]:
        """History entries made since the order was loaded (not yet written)."""
        return [f.entry for f in self.facts if isinstance(f, Moved)]

    # -- money -------------------------------------------------------------------------
    @property
    def amount(self) -> Money:
        """What the distributor owes for the order (receivable)."""
        return Money(self.unit_price, self.currency).times(self.quantity)

    @property
    def settlement_amount(self) -> Money:
        """What the platform owes the supplier once issued."""
        return Money(self.settlement_price, self.currency).times(self.quantity)

    # -- guards --------------------------------------------------------------------------
    def lock_expired(self, now: datetime) -> bool:
        return (
            self.status is OrderStatus.LOCKED
            and self.lock_expires_at is not None
            and now >= self.lock_expires_at
        )

    def went_through(self, status: OrderStatus) -> bool:
        return any(h.status is status for h in self.history)

    # -- moves ---------------------------------------------------------------------------
    def _entry(self, entry: HistoryEntry) -> None:
        self.history.append(entry)
        self.facts.append(Moved(entry))
        self.updated_at = entry.at

    def _move(
        self,
        target: OrderStatus,
        now: datetime,
        reason: str | None = None,
        *,
        closes: Resolution | None = None,
    ) -> None:
        """Move to `target`; with `closes`, the negotiation the current status had open ends
        with that resolution (the move is how its outcome was learned)."""
        kind = _NEGOTIATING.get(self.status)
        self.status = transition(self.status, target)
        self._entry(HistoryEntry(target, now, reason))
        if self.attendees and target in FREES_DOCUMENTS:
            self.facts.append(DocumentsFreed(now))
        if closes is not None:
            assert kind is not None, "only an order in flight with the supplier negotiates"
            self.facts.append(NegotiationClosed(kind, closes, now))

    def begin(self, now: datetime) -> None:
        """The first entry of a new order (NEW), written before the supplier hears of it."""
        if self.history:
            raise InvalidTransition("order", self.status.value, OrderStatus.NEW.value)
        self._entry(HistoryEntry(OrderStatus.NEW, now))

    def mark_locked(self, now: datetime, lock_ref: str, expires_at: datetime) -> None:
        self._move(OrderStatus.LOCKED, now)
        self.supplier_lock_ref = lock_ref
        self.lock_expires_at = expires_at

    def mark_lock_failed(
        self, now: datetime, reason: str, *, seats_may_be_held: bool = False
    ) -> None:
        """Fail fast. When the supplier's answer was unknown it may hold seats: release them."""
        self._move(OrderStatus.LOCK_FAILED, now, reason)
        self.failure_reason = reason
        if seats_may_be_held:
            self.facts.append(SeatsToRelease(now))

    def start_fixing(self, now: datetime) -> None:
        self._move(OrderStatus.FIXING, now)

    def mark_fixed(
        self, now: datetime, tickets: tuple[IssuedTicket, ...], *, closes: Resolution | None = None
    ) -> None:
        if not tickets:
            raise ValueError("an issued order carries its tickets")
        # E-ticket codes are the delivery; paper tickets wait for the courier. Both moves are
        # checked before either is made, so a refused move leaves the order as it was.
        target = (
            DeliveryStatus.DELIVERED
            if self.delivery_method is DeliveryMethod.ETICKET
            else DeliveryStatus.PENDING
        )
        transition(self.status, OrderStatus.FIXED)  # checks only; _move below makes it
        delivery = transition(self.delivery_status, target)
        self._move(OrderStatus.FIXED, now, closes=closes)
        self.tickets = tickets
        self.delivery_status = delivery
        self.facts.append(TicketsIssued(tickets))

    def cancel(self, now: datetime, reason: str, *, closes: Resolution | None = None) -> None:
        """Every cancel gives the seats back: a release of what the supplier holds follows."""
        self._move(OrderStatus.CANCELED, now, reason, closes=closes)
        self.failure_reason = reason
        self.facts.append(SeatsToRelease(now))

    def start_refund(self, now: datetime, reason: str) -> None:
        self._move(OrderStatus.REFUNDING, now, reason)

    def mark_refunded(
        self, now: datetime, refund: SupplierRefund, *, closes: Resolution | None = None
    ) -> None:
        self._move(OrderStatus.REFUNDED, now, closes=closes)
        self.facts.append(SupplierRefundRecorded(refund, now))

    def mark_refund_failed(
        self, now: datetime, reason: str, *, closes: Resolution | None = None
    ) -> None:
        self._move(OrderStatus.REFUND_FAIL, now, reason, closes=closes)
        self.failure_reason = reason

    def refunded_after_refusal(self, now: datetime, refund: SupplierRefund) -> None:
        """REFUND_FAIL -> REFUNDED: the supplier that refused our refund refunded after all (its
        feed says so). The same facts as `mark_refunded`; no negotiation is open any more."""
        if self.status is not OrderStatus.REFUND_FAIL:
            raise InvalidTransition("order", self.status.value, OrderStatus.REFUNDED.value)
        self._move(OrderStatus.REFUNDED, now, "refunded_by_supplier")
        self.failure_reason = None  # the refusal is in the history; the refund happened
        self.facts.append(SupplierRefundRecorded(refund, now))

    def negotiate(
        self, now: datetime, policy: PollingPolicy, *, poll_at: datetime | None = None
    ) -> None:
        """The supplier's answer to the call in flight is unknown: ask it (never do it again)
        until it says, from `poll_at` (default: one interval from now)."""
        kind = _NEGOTIATING.get(self.status)
        if kind is None:
            raise InvalidTransition("negotiation", self.status.value, "negotiating")
        self.facts.append(
            NegotiationOpened(
                kind,
                started_at=self.updated_at,
                next_poll_at=poll_at or now + policy.interval,
                give_up_at=now + policy.give_up_after,
            )
        )

    def close_negotiation(
        self, kind: NegotiationKind, resolution: Resolution, now: datetime
    ) -> None:
        """End a negotiation the order no longer needs (it was decided another way)."""
        self.facts.append(NegotiationClosed(kind, resolution, now))

    def advance_delivery(self, target: DeliveryStatus, now: datetime) -> None:
        """One delivery step; delivery starts only once tickets exist."""
        self._deliver((target,), now)

    def report_delivery(self, target: DeliveryStatus, now: datetime) -> bool:
        """A delivery update from the supplier; False if the order is there already. A
        DELIVERED update may arrive without the SHIPPED before it: both steps are made."""
        if self.delivery_status is target:
            return False
        steps = (
            (DeliveryStatus.SHIPPED, target)
            if target is DeliveryStatus.DELIVERED and self.delivery_status is DeliveryStatus.PENDING
            else (target,)
        )
        self._deliver(steps, now)
        return True

    def _deliver(self, steps: tuple[DeliveryStatus, ...], now: datetime) -> None:
        if self.status not in ISSUED_STATUSES:
            raise InvalidTransition("delivery", self.delivery_status.value, steps[-1].value)
        current = self.delivery_status
        for step in steps:  # all checked before any is made
            current = transition(current, step)
        self.delivery_status = current
        self.updated_at = now
        self.facts.append(DeliveryChanged(current, now))

    def __reduce__(self) -> tuple[Callable[[list[Any]], Order], tuple[list[Any]]]:
        # An order crosses to the API replica in every call's answer. Pickled field by field
        # it is three dozen objects, a class reference and a reduce call each; as a list of
        # plain values (enums as their values, history entries as tuples) it pickles and
        # unpickles in about half the time (`_order_values`).
        return (_order_from, (_order_values(self),))


# -- pickling ------------------------------------------------------------------------------
_FIELDS = tuple(f.name for f in dataclasses.fields(Order))
_values = attrgetter(*_FIELDS)
_STATUS, _DELIVERY, _METHOD, _HISTORY = (
    _FIELDS.index(name) for name in ("status", "delivery_status", "delivery_method", "history")
)


def _order_values(order: Order) -> list[Any]:
    v = list(_values(order))
    v[_STATUS] = order.status.value
    v[_DELIVERY] = order.delivery_status.value
    v[_METHOD] = order.delivery_method.value
    v[_HISTORY] = [(h.status.value, h.at, h.reason) for h in order.history]
    return v  # tickets and attendees `by_fields`, facts (none, once saved) as they are


def _order_from(v: list[Any]) -> Order:
    v[_STATUS] = OrderStatus(v[_STATUS])
    v[_DELIVERY] = DeliveryStatus(v[_DELIVERY])
    v[_METHOD] = DeliveryMethod(v[_METHOD])
    v[_HISTORY] = [HistoryEntry(OrderStatus(s), at, reason) for s, at, reason in v[_HISTORY]]
    return Order(*v)


def request_fingerprint(fields: Mapping[str, Any]) -> str:
    """A stable hash of a create request's meaningful fields, for idempotency checks."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
