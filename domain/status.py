"""The order and delivery status machines of docs/design.md, as data.

Each machine is a `StrEnum`, a table of allowed moves and a terminal set; `transition`
is the one place that checks a move and raises `InvalidTransition`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar


class OrderStatus(StrEnum):
    # NEW is the row written before the supplier is asked for a lock: if the process dies
    # during the lock call, recovery finds the row and releases whatever the supplier holds.
    NEW = "NEW"
    LOCKED = "LOCKED"
    LOCK_FAILED = "LOCK_FAILED"
    CANCELED = "CANCELED"
    FIXING = "FIXING"
    FIXED = "FIXED"
    REFUNDING = "REFUNDING"
    REFUNDED = "REFUNDED"
    REFUND_FAIL = "REFUND_FAIL"


class DeliveryStatus(StrEnum):
    NONE = "NONE"
    PENDING = "PENDING"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"


ORDER_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.NEW: frozenset({OrderStatus.LOCKED, OrderStatus.LOCK_FAILED}),
    OrderStatus.LOCKED: frozenset({OrderStatus.FIXING, OrderStatus.CANCELED}),
    # FIXING -> CANCELED: the supplier refused, or negotiation proved nothing was issued.
    OrderStatus.FIXING: frozenset({OrderStatus.FIXED, OrderStatus.CANCELED}),
    OrderStatus.FIXED: frozenset({OrderStatus.REFUNDING}),
    OrderStatus.REFUNDING: frozenset({OrderStatus.REFUNDED, OrderStatus.REFUND_FAIL}),
    # REFUND_FAIL -> REFUNDED: the supplier refused our refund, then refunded on its own (its
    # refund feed says so). REFUND_FAIL is at rest, not terminal.
    OrderStatus.REFUND_FAIL: frozenset({OrderStatus.REFUNDED}),
    OrderStatus.LOCK_FAILED: frozenset(),
    OrderStatus.CANCELED: frozenset(),
    OrderStatus.REFUNDED: frozenset(),
}

ORDER_TERMINAL: frozenset[OrderStatus] = frozenset(
    s for s, targets in ORDER_TRANSITIONS.items() if not targets
)
# Statuses an order may rest in indefinitely: the terminal ones, FIXED (which a refund may
# still leave) and REFUND_FAIL (which a supplier's own refund may still leave). Every other
# status is in flight and has a timer that moves it on.
ORDER_AT_REST: frozenset[OrderStatus] = ORDER_TERMINAL | {
    OrderStatus.FIXED,
    OrderStatus.REFUND_FAIL,
}

DELIVERY_TRANSITIONS: dict[DeliveryStatus, frozenset[DeliveryStatus]] = {
    DeliveryStatus.NONE: frozenset({DeliveryStatus.PENDING, DeliveryStatus.DELIVERED}),
    DeliveryStatus.PENDING: frozenset({DeliveryStatus.SHIPPED}),
    DeliveryStatus.SHIPPED: frozenset({DeliveryStatus.DELIVERED}),
    DeliveryStatus.DELIVERED: frozenset(),
}

DELIVERY_TERMINAL: frozenset[DeliveryStatus] = frozenset(
    s for s, targets in DELIVERY_TRANSITIONS.items() if not targets
)


class InvalidTransition(Exception):
    """A move the status machine does not allow."""

    def __init__(self, machine: str, current: str, target: str) -> None:
        super().__init__(f"{machine}: cannot move from {current} to {target}")
        self.machine = machine
        self.current = current
        self.target = target


S = TypeVar("S", OrderStatus, DeliveryStatus)


def can_transition(current: S, target: S) -> bool:
    table: dict[S, frozenset[S]] = (
        ORDER_TRANSITIONS if isinstance(current, OrderStatus) else DELIVERY_TRANSITIONS  # type: ignore[assignment]
    )
    return type(current) is type(target) and target in table[current]


def transition(current: S, target: S) -> S:
    """Return `target` if the move is allowed, else raise `InvalidTransition`."""
    if not can_transition(current, target):
        machine = "order" if isinstance(current, OrderStatus) else "delivery"
        raise InvalidTransition(machine, current.value, target.value)
    return target
