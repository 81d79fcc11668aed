"""Receivable and settlement flows (docs/design.md, "Flows"), derived from an order's state.

`flows_for` returns every flow an order carries given its history and its supplier-refund
record. It is a pure function of facts that never change once recorded (the times of the
order's moves and the supplier's refund time), so writing its result with a unique key per
(order, kind, sign, refund) after every move is idempotent: a flow, once written, is never
updated or deleted.

| flow | sign | carried by | basis time |
| receivable | + | LOCKED and every status after it | lock success time |
| receivable | - | CANCELED, REFUNDED | distributor refund success time, else the cancel time |
| settlement | + | FIXED, REFUNDING, REFUNDED, REFUND_FAIL | issue (fix) success time |
| settlement | - | REFUNDING, REFUNDED, REFUND_FAIL | the supplier's refund time (its record) |
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from enum import StrEnum

from domain.order import Fact, Moved, Order, SupplierRefundRecorded
from domain.status import OrderStatus


class FlowKind(StrEnum):
    RECEIVABLE = "receivable"  # distributor -> platform, at the distribution price
    SETTLEMENT = "settlement"  # platform -> supplier, at the settlement price


@dataclass(frozen=True, slots=True)
class Flow:
    order_id: str
    distributor_id: str
    supplier_id: str
    kind: FlowKind
    sign: int  # +1 or -1
    refund_no: int  # 0: an order is refunded at most once today; the key leaves room for more
    amount: int  # minor units, always positive; the sign says which way
    currency: str
    basis_time: datetime

    @property
    def signed_amount(self) -> int:
        return self.sign * self.amount

    def key(self) -> tuple[str, str, int, int]:
        return (self.order_id, self.kind.value, self.sign, self.refund_no)


def period_of(moment: datetime, tz: tzinfo) -> date:
    """Periods are calendar days in the platform's time zone."""
    return moment.astimezone(tz).date()


def _first(order: Order, status: OrderStatus) -> datetime | None:
    return next((h.at for h in order.history if h.status is status), None)


# Statuses that carry the settlement minus flow once the supplier's refund is recorded.
SETTLEMENT_MINUS_STATUSES = frozenset(
    {OrderStatus.REFUNDING, OrderStatus.REFUNDED, OrderStatus.REFUND_FAIL}
)


def _flow(order: Order, kind: FlowKind, sign: int, at: datetime) -> Flow:
    unit = order.unit_price if kind is FlowKind.RECEIVABLE else order.settlement_price
    return Flow(
        order_id=order.id,
        distributor_id=order.distributor_id,
        supplier_id=order.supplier_id,
        kind=kind,
        sign=sign,
        refund_no=0,
        amount=unit * order.quantity,
        currency=order.currency,
        basis_time=at,
    )


def flows_for(order: Order, supplier_refunded_at: datetime | None = None) -> list[Flow]:
    """Every flow the order carries, from its whole history and its supplier-refund time."""
    out: list[Flow] = []
    locked_at = _first(order, OrderStatus.LOCKED)
    if locked_at is None:
        return out  # never locked (NEW, LOCK_FAILED): nothing is owed either way
    out.append(_flow(order, FlowKind.RECEIVABLE, +1, locked_at))
    fixed_at = _first(order, OrderStatus.FIXED)
    if fixed_at is not None:
        out.append(_flow(order, FlowKind.SETTLEMENT, +1, fixed_at))
    if order.status is OrderStatus.CANCELED:
        canceled_at = _first(order, OrderStatus.CANCELED)
        assert canceled_at is not None
        out.append(_flow(order, FlowKind.RECEIVABLE, -1, canceled_at))
    if order.status is OrderStatus.REFUNDED:
        refunded_at = _first(order, OrderStatus.REFUNDED)
        assert refunded_at is not None
        out.append(_flow(order, FlowKind.RECEIVABLE, -1, refunded_at))
    if order.status in SETTLEMENT_MINUS_STATUSES and supplier_refunded_at is not None:
        out.append(_flow(order, FlowKind.SETTLEMENT, -1, supplier_refunded_at))
    return out


def flows_implied(order: Order, facts: Iterable[Fact]) -> list[Flow]:
    """The flows that `facts` (recorded by the order's latest moves) bring into being. Over
    an order's whole life they add up to `flows_for`: each flow comes from the one fact that
    fixes its basis time."""
    out: list[Flow] = []
    for fact in facts:
        if isinstance(fact, Moved):
            status, at = fact.entry.status, fact.entry.at
            if status is OrderStatus.LOCKED:
                out.append(_flow(order, FlowKind.RECEIVABLE, +1, at))
            elif status is OrderStatus.FIXED:
                out.append(_flow(order, FlowKind.SETTLEMENT, +1, at))
            elif status in (OrderStatus.CANCELED, OrderStatus.REFUNDED) and order.went_through(
                OrderStatus.LOCKED
            ):
                out.append(_flow(order, FlowKind.RECEIVABLE, -1, at))
        elif isinstance(fact, SupplierRefundRecorded) and order.status in SETTLEMENT_MINUS_STATUSES:
            out.append(_flow(order, FlowKind.SETTLEMENT, -1, fact.refund.refunded_at))
    return out
