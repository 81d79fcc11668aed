"""What an order answers a request, as a function of its state alone: that is what makes any
number of repeats (concurrent or not) answer the same. The HTTP layer maps each `Verdict` to
a status and an error code (`serve_app/replies.py`); nothing here knows of HTTP."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from domain.order import ISSUED_STATUSES, Order
from domain.status import OrderStatus

# The failure reason of a lock the supplier refused for want of seats (the supplier
# gateways' `ErrorCode.SOLD_OUT`).
SOLD_OUT_REASON = "sold_out"


class Verdict(StrEnum):
    CREATED = "created"  # a new order
    REPLAYED = "replayed"  # the create was made before: the order as it is
    DONE = "done"  # the request is answered by the order as it is
    IN_PROGRESS = "in_progress"  # the supplier has not answered yet; the order will move on
    NOT_FOUND = "not_found"
    SOLD_OUT = "sold_out"
    SUPPLIER_UNAVAILABLE = "supplier_unavailable"
    ISSUE_FAILED = "issue_failed"
    LOCK_EXPIRED = "lock_expired"
    INVALID_TRANSITION = "invalid_transition"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"


@dataclass(frozen=True, slots=True)
class OrderReply:
    verdict: Verdict
    order: Order | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.verdict in _SUCCESS

    def __reduce__(self) -> tuple[Callable[[bytes], OrderReply], tuple[bytes]]:
        # Every order call's answer crosses a Ray hop. Ray's pickler (cloudpickle) walks an
        # order's few dozen objects one by one in Python; the standard pickler does it in C,
        # in about half the time, so the reply travels as the bytes it makes.
        return (_reply_from, (pickle.dumps((self.verdict.value, self.order, self.message), 5),))


def _reply_from(data: bytes) -> OrderReply:
    # Only ever what `__reduce__` made, inside Ray (which unpickles whatever crosses it).
    verdict, order, message = pickle.loads(data)  # noqa: S301
    return OrderReply(Verdict(verdict), order, message)


_SUCCESS = frozenset({Verdict.CREATED, Verdict.REPLAYED, Verdict.DONE, Verdict.IN_PROGRESS})

NOT_FOUND = OrderReply(Verdict.NOT_FOUND, message="no such order")


def issue_reply(order: Order) -> OrderReply:
    s = order.status
    if s in ISSUED_STATUSES:
        return OrderReply(Verdict.DONE, order)
    if s is OrderStatus.FIXING:
        return OrderReply(Verdict.IN_PROGRESS, order)
    if s is OrderStatus.CANCELED and order.went_through(OrderStatus.FIXING):
        return OrderReply(
            Verdict.ISSUE_FAILED,
            order,
            "the supplier did not issue the tickets; the order is canceled and nothing is owed",
        )
    if s is OrderStatus.CANCELED and order.failure_reason == "lock_expired":
        return OrderReply(Verdict.LOCK_EXPIRED, order, "the seat lock expired")
    return OrderReply(Verdict.INVALID_TRANSITION, order, f"cannot issue an order in {s}")


def cancel_reply(order: Order) -> OrderReply:
    if order.status is OrderStatus.CANCELED and not order.went_through(OrderStatus.FIXING):
        return OrderReply(Verdict.DONE, order)
    return OrderReply(
        Verdict.INVALID_TRANSITION,
        order,
        f"only a LOCKED order can be canceled, not {order.status}",
    )


def refund_reply(order: Order) -> OrderReply:
    s = order.status
    if s is OrderStatus.REFUNDING:
        return OrderReply(Verdict.IN_PROGRESS, order)
    if s in (OrderStatus.REFUNDED, OrderStatus.REFUND_FAIL):
        return OrderReply(Verdict.DONE, order)
    return OrderReply(
        Verdict.INVALID_TRANSITION, order, f"only a FIXED order can be refunded, not {s}"
    )


def create_reply(order: Order, *, created: bool) -> OrderReply:
    if order.status is OrderStatus.LOCK_FAILED:
        if order.failure_reason == SOLD_OUT_REASON:
            return OrderReply(Verdict.SOLD_OUT, order, "not enough seats left")
        return OrderReply(
            Verdict.SUPPLIER_UNAVAILABLE, order, "the supplier could not lock the seats"
        )
    return OrderReply(Verdict.CREATED if created else Verdict.REPLAYED, order)


def not_fixing(order: Order) -> OrderReply:
    return OrderReply(Verdict.INVALID_TRANSITION, order, f"the order is {order.status}, not FIXING")


IDEMPOTENCY_CONFLICT = OrderReply(
    Verdict.IDEMPOTENCY_CONFLICT,
    message="this distributor_order_id was used with a different request",
)
