"""The order aggregate: its fields, its money, and the guarded moves between statuses.

Pure: every move takes `now` from the caller, and nothing here touches a database or a
supplier. The order actor loads an `Order`, calls one move, and persists the result with a
compare-and-set on `version`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from domain.money import Money
from domain.status import DeliveryStatus, InvalidTransition, OrderStatus, transition

# Statuses in which the supplier has issued the tickets (whatever happened after).
ISSUED_STATUSES = frozenset(
    {OrderStatus.FIXED, OrderStatus.REFUNDING, OrderStatus.REFUNDED, OrderStatus.REFUND_FAIL}
)


class DeliveryMethod(StrEnum):
    ETICKET = "ETICKET"
    EXPRESS = "EXPRESS"


@dataclass(frozen=True, slots=True)
class IssuedTicket:
    code: str
    seat: str | None = None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    status: OrderStatus
    at: datetime
    reason: str | None = None


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
    version: int = 0
    # History entries made since the order was loaded; the repository writes and clears them.
    unsaved_history: list[HistoryEntry] = field(default_factory=list)

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

    # -- moves ---------------------------------------------------------------------------
    def _move(self, target: OrderStatus, now: datetime, reason: str | None = None) -> None:
        self.status = transition(self.status, target)
        entry = HistoryEntry(target, now, reason)
        self.history.append(entry)
        self.unsaved_history.append(entry)
        self.updated_at = now

    def mark_locked(self, now: datetime, lock_ref: str, expires_at: datetime) -> None:
        self._move(OrderStatus.LOCKED, now)
        self.supplier_lock_ref = lock_ref
        self.lock_expires_at = expires_at

    def mark_lock_failed(self, now: datetime, reason: str) -> None:
        self._move(OrderStatus.LOCK_FAILED, now, reason)
        self.failure_reason = reason

    def start_fixing(self, now: datetime) -> None:
        self._move(OrderStatus.FIXING, now)

    def mark_fixed(self, now: datetime, tickets: tuple[IssuedTicket, ...]) -> None:
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
        self._move(OrderStatus.FIXED, now)
        self.tickets = tickets
        self.delivery_status = delivery

    def cancel(self, now: datetime, reason: str) -> None:
        self._move(OrderStatus.CANCELED, now, reason)
        self.failure_reason = reason

    def start_refund(self, now: datetime, reason: str) -> None:
        self._move(OrderStatus.REFUNDING, now, reason)

    def mark_refunded(self, now: datetime) -> None:
        self._move(OrderStatus.REFUNDED, now)

    def mark_refund_failed(self, now: datetime, reason: str) -> None:
        self._move(OrderStatus.REFUND_FAIL, now, reason)
        self.failure_reason = reason

    def advance_delivery(self, target: DeliveryStatus, now: datetime) -> None:
        """A delivery update from the supplier; delivery starts only once tickets exist."""
        if self.status not in ISSUED_STATUSES:
            raise InvalidTransition("delivery", self.delivery_status.value, target.value)
        self.delivery_status = transition(self.delivery_status, target)
        self.updated_at = now


def request_fingerprint(fields: Mapping[str, Any]) -> str:
    """A stable hash of a create request's meaningful fields, for idempotency checks."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
