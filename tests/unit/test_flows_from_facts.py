"""Flows derive from the facts the moves record: over every path of the order machine, the
flows the facts of each save bring add up to exactly the flows the order carries
(`flows_for`, the rule of docs/design.md), each once, with its basis time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from domain.flows import flows_for, flows_implied
from domain.order import IssuedTicket, Order, SupplierRefund
from domain.status import ORDER_AT_REST, ORDER_TRANSITIONS, OrderStatus
from tests.unit.test_order import make_order

T0 = datetime(2026, 11, 25, 15, 50, tzinfo=UTC)  # near midnight in Asia/Shanghai
TICKETS = (IssuedTicket("C-1"),)


def paths(status: OrderStatus = OrderStatus.NEW) -> Iterator[list[OrderStatus]]:
    """Every path of moves from `status` to a status an order may rest in (and on from there)."""
    targets = ORDER_TRANSITIONS[status]
    if status is not OrderStatus.NEW and status in ORDER_AT_REST:
        yield []
    for target in sorted(targets):
        for rest in paths(target):
            yield [target, *rest]


def new_order() -> Order:
    order = make_order(quantity=3, created_at=T0, updated_at=T0)
    order.begin(T0)
    return order


def move(order: Order, target: OrderStatus, t: datetime, refund_at: datetime) -> None:
    if target is OrderStatus.LOCKED:
        order.mark_locked(t, "L", t + timedelta(minutes=15))
    elif target is OrderStatus.LOCK_FAILED:
        order.mark_lock_failed(t, "sold_out")
    elif target is OrderStatus.FIXING:
        order.start_fixing(t)
    elif target is OrderStatus.FIXED:
        order.mark_fixed(t, TICKETS)
    elif target is OrderStatus.CANCELED:
        order.cancel(t, "canceled")
    elif target is OrderStatus.REFUNDING:
        order.start_refund(t, "buyer")
    elif target is OrderStatus.REFUNDED:
        order.mark_refunded(t, SupplierRefund(refund_at, "platform"))
    elif target is OrderStatus.REFUND_FAIL:
        order.mark_refund_failed(t, "refused")
    else:  # pragma: no cover - every status but NEW is a target of some move
        raise AssertionError(target)


ALL_PATHS = list(paths())


def test_the_paths_cover_every_move_of_the_machine() -> None:
    moves = {(a, b) for p in ALL_PATHS for a, b in zip([OrderStatus.NEW, *p], p, strict=False)}
    assert moves == {(a, b) for a, bs in ORDER_TRANSITIONS.items() for b in bs}


@pytest.mark.parametrize("path", ALL_PATHS, ids=["-".join(p) for p in ALL_PATHS])
@pytest.mark.parametrize("save_each_move", [True, False])
def test_flows_from_facts_add_up_to_the_orders_flows(
    path: list[OrderStatus], save_each_move: bool
) -> None:
    order = new_order()
    refund_at = T0 + timedelta(hours=30)  # the supplier's own time, days later
    order.facts.clear()  # NEW was saved
    written = []
    for i, target in enumerate(path, start=1):
        move(order, target, T0 + timedelta(hours=5 * i), refund_at)
        if save_each_move:
            written += flows_implied(order, order.facts)
            order.facts.clear()
    written += flows_implied(order, order.facts)
    supplier_refunded_at = refund_at if OrderStatus.REFUNDED in path else None
    expected = flows_for(order, supplier_refunded_at)
    assert sorted(written, key=lambda f: f.key()) == sorted(expected, key=lambda f: f.key())
    assert len({f.key() for f in written}) == len(written)  # each flow once
