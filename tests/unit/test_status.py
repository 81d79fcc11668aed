"""The order and delivery status machines against docs/design.md's diagrams, pair by pair.

The expected edges are written out here from docs/design.md ("Order status", "Delivery status"),
not read from `domain.status`, so a drift in the code's table fails these tests.
"""

from __future__ import annotations

import itertools
from typing import Any, cast

import pytest

from domain.status import (
    DELIVERY_TERMINAL,
    ORDER_AT_REST,
    ORDER_TERMINAL,
    DeliveryStatus,
    InvalidTransition,
    OrderStatus,
    can_transition,
    transition,
)

# docs/design.md, "Order status". The "stays FIXING" loop on FIXING is the order *staying*
# FIXING while the supplier is polled (no status change), so FIXING -> FIXING is not an edge.
ORDER_EDGES: frozenset[tuple[OrderStatus, OrderStatus]] = frozenset(
    {
        (OrderStatus.NEW, OrderStatus.LOCKED),  # lock ok
        (OrderStatus.NEW, OrderStatus.LOCK_FAILED),  # lock failed / timeout
        (OrderStatus.LOCKED, OrderStatus.FIXING),  # issue requested
        (OrderStatus.LOCKED, OrderStatus.CANCELED),  # cancel / lock expired
        (OrderStatus.FIXING, OrderStatus.FIXED),  # supplier issued
        (
            OrderStatus.FIXING,
            OrderStatus.CANCELED,
        ),  # supplier refused / negotiation: definitely not issued
        (OrderStatus.FIXED, OrderStatus.REFUNDING),  # refund requested (distributor or supplier)
        (OrderStatus.REFUNDING, OrderStatus.REFUNDED),  # supplier ok
        (OrderStatus.REFUNDING, OrderStatus.REFUND_FAIL),  # supplier refused
        (OrderStatus.REFUND_FAIL, OrderStatus.REFUNDED),  # the supplier refunded after all (feed)
    }
)

# docs/design.md, "Delivery status": NONE -> PENDING -> SHIPPED -> DELIVERED (express),
# NONE -> DELIVERED (e-tickets).
DELIVERY_EDGES: frozenset[tuple[DeliveryStatus, DeliveryStatus]] = frozenset(
    {
        (DeliveryStatus.NONE, DeliveryStatus.PENDING),
        (DeliveryStatus.PENDING, DeliveryStatus.SHIPPED),
        (DeliveryStatus.SHIPPED, DeliveryStatus.DELIVERED),
        (DeliveryStatus.NONE, DeliveryStatus.DELIVERED),
    }
)

EXPECTED_ORDER_TERMINAL = frozenset(
    {OrderStatus.LOCK_FAILED, OrderStatus.CANCELED, OrderStatus.REFUNDED}
)
# At rest but not terminal: a refund may still leave FIXED, a supplier's own refund REFUND_FAIL.
EXPECTED_AT_REST = EXPECTED_ORDER_TERMINAL | {OrderStatus.FIXED, OrderStatus.REFUND_FAIL}
EXPECTED_DELIVERY_TERMINAL = frozenset({DeliveryStatus.DELIVERED})


def _pair_id(pair: tuple[Any, Any]) -> str:
    return f"{pair[0]}->{pair[1]}"


def test_status_enums_hold_exactly_the_designed_statuses() -> None:
    # A new status must come with a decision about its edges in this file.
    assert {s.value for s in OrderStatus} == {
        "NEW",
        "LOCKED",
        "LOCK_FAILED",
        "CANCELED",
        "FIXING",
        "FIXED",
        "REFUNDING",
        "REFUNDED",
        "REFUND_FAIL",
    }
    assert {s.value for s in DeliveryStatus} == {"NONE", "PENDING", "SHIPPED", "DELIVERED"}


@pytest.mark.parametrize(
    ("current", "target"), list(itertools.product(OrderStatus, OrderStatus)), ids=_pair_id
)
def test_every_order_pair(current: OrderStatus, target: OrderStatus) -> None:
    if (current, target) in ORDER_EDGES:
        assert can_transition(current, target)
        assert transition(current, target) is target
    else:
        assert not can_transition(current, target)
        with pytest.raises(InvalidTransition) as info:
            transition(current, target)
        assert info.value.machine == "order"
        assert info.value.current == current.value
        assert info.value.target == target.value
        assert str(current) in str(info.value)
        assert str(target) in str(info.value)


@pytest.mark.parametrize(
    ("current", "target"),
    list(itertools.product(DeliveryStatus, DeliveryStatus)),
    ids=_pair_id,
)
def test_every_delivery_pair(current: DeliveryStatus, target: DeliveryStatus) -> None:
    if (current, target) in DELIVERY_EDGES:
        assert can_transition(current, target)
        assert transition(current, target) is target
    else:
        assert not can_transition(current, target)
        with pytest.raises(InvalidTransition) as info:
            transition(current, target)
        assert info.value.machine == "delivery"
        assert info.value.current == current.value
        assert info.value.target == target.value


def test_terminal_sets_are_the_designed_ones() -> None:
    assert ORDER_TERMINAL == EXPECTED_ORDER_TERMINAL
    assert DELIVERY_TERMINAL == EXPECTED_DELIVERY_TERMINAL


@pytest.mark.parametrize("terminal", sorted(EXPECTED_ORDER_TERMINAL))
def test_terminal_order_status_has_no_exit(terminal: OrderStatus) -> None:
    for target in OrderStatus:
        with pytest.raises(InvalidTransition):
            transition(terminal, target)


def test_delivered_has_no_exit() -> None:
    for target in DeliveryStatus:
        with pytest.raises(InvalidTransition):
            transition(DeliveryStatus.DELIVERED, target)


def test_every_non_terminal_status_has_an_exit() -> None:
    # An in-flight status with no way out would strand orders.
    for status in set(OrderStatus) - EXPECTED_ORDER_TERMINAL:
        assert any(can_transition(status, t) for t in OrderStatus), status
    for delivery in set(DeliveryStatus) - EXPECTED_DELIVERY_TERMINAL:
        assert any(can_transition(delivery, t) for t in DeliveryStatus), delivery


def test_new_is_the_pre_lock_state() -> None:
    assert {t for t in OrderStatus if can_transition(OrderStatus.NEW, t)} == {
        OrderStatus.LOCKED,
        OrderStatus.LOCK_FAILED,
    }
    # Nothing goes back to NEW: once the lock was tried, the order has left it for good.
    assert not any(can_transition(s, OrderStatus.NEW) for s in OrderStatus)


def test_order_at_rest_is_terminal_plus_fixed_and_refund_fail() -> None:
    assert EXPECTED_AT_REST == ORDER_AT_REST
    in_flight = set(OrderStatus) - ORDER_AT_REST
    assert in_flight == {
        OrderStatus.NEW,
        OrderStatus.LOCKED,
        OrderStatus.FIXING,
        OrderStatus.REFUNDING,
    }


def test_every_status_is_reachable_from_new() -> None:
    seen = {OrderStatus.NEW}
    frontier = [OrderStatus.NEW]
    while frontier:
        here = frontier.pop()
        for target in OrderStatus:
            if target not in seen and can_transition(here, target):
                seen.add(target)
                frontier.append(target)
    assert seen == set(OrderStatus)


def test_statuses_of_the_two_machines_do_not_mix() -> None:
    # Both are StrEnums, so a mix-up would not be caught by equality; the machine must refuse it.
    order_status = cast(Any, OrderStatus.NEW)
    delivery_status = cast(Any, DeliveryStatus.DELIVERED)
    assert not can_transition(order_status, delivery_status)
    assert not can_transition(delivery_status, order_status)
    with pytest.raises(InvalidTransition):
        transition(order_status, delivery_status)
