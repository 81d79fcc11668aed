"""The order aggregate: its moves with an injected clock, its money, its request fingerprint,
and a Hypothesis state machine that throws every move at it in any order."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from domain.money import Money
from domain.order import (
    DeliveryMethod,
    HistoryEntry,
    IssuedTicket,
    Order,
    SupplierRefund,
    request_fingerprint,
)
from domain.pickling import by_fields
from domain.status import DeliveryStatus, InvalidTransition, OrderStatus
from tests.unit.test_status import (
    DELIVERY_EDGES,
    EXPECTED_DELIVERY_TERMINAL,
    EXPECTED_ORDER_TERMINAL,
    ORDER_EDGES,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
TICK = timedelta(microseconds=1)
LOCK_TTL = timedelta(minutes=15)
TICKETS = (IssuedTicket("CODE-1", "A-1"), IssuedTicket("CODE-2", "A-2"))

# Statuses in which the supplier has issued the tickets (the order went through FIXED).
ISSUED = frozenset(
    {OrderStatus.FIXED, OrderStatus.REFUNDING, OrderStatus.REFUNDED, OrderStatus.REFUND_FAIL}
)


def make_order(**overrides: Any) -> Order:
    fields: dict[str, Any] = {
        "id": "ord_test",
        "distributor_id": "dst_a",
        "distributor_order_id": "A-1001",
        "supplier_id": "sup_a",
        "session_id": "sess_1",
        "tier_id": "tier_vip",
        "quantity": 2,
        "unit_price": 38000,
        "settlement_price": 35000,
        "face_value": 40000,
        "currency": "CNY",
        "delivery_method": DeliveryMethod.ETICKET,
        "request_hash": "h" * 64,
        "created_at": T0,
        "updated_at": T0,
    }
    fields.update(overrides)
    return Order(**fields)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def locked_order(**overrides: Any) -> Order:
    order = make_order(**overrides)
    order.mark_locked(at(1), "lock-1", at(1) + LOCK_TTL)
    return order


def fixing_order(**overrides: Any) -> Order:
    order = locked_order(**overrides)
    order.start_fixing(at(2))
    return order


def fixed_order(**overrides: Any) -> Order:
    order = fixing_order(**overrides)
    order.mark_fixed(at(3), TICKETS)
    return order


@dataclass(frozen=True)
class Snapshot:
    """Everything a refused move must leave as it was."""

    status: OrderStatus
    delivery_status: DeliveryStatus
    history: tuple[HistoryEntry, ...]
    unsaved_history: tuple[HistoryEntry, ...]
    tickets: tuple[IssuedTicket, ...]
    updated_at: datetime
    failure_reason: str | None
    supplier_lock_ref: str | None
    lock_expires_at: datetime | None
    version: int

    @classmethod
    def of(cls, order: Order) -> Snapshot:
        return cls(
            order.status,
            order.delivery_status,
            tuple(order.history),
            tuple(order.unsaved_history),
            order.tickets,
            order.updated_at,
            order.failure_reason,
            order.supplier_lock_ref,
            order.lock_expires_at,
            order.version,
        )


# Read through functions so a type checker does not carry a narrowed status across moves.
def status_of(order: Order) -> OrderStatus:
    return order.status


def delivery_of(order: Order) -> DeliveryStatus:
    return order.delivery_status


def statuses(order: Order) -> list[OrderStatus]:
    return [entry.status for entry in order.history]


# -- the paths of docs/design.md ----------------------------------------------------------


def test_new_order_starts_new_with_nothing_delivered() -> None:
    order = make_order()
    assert status_of(order) is OrderStatus.NEW
    assert delivery_of(order) is DeliveryStatus.NONE
    assert order.history == []
    assert order.tickets == ()


def test_happy_path_with_e_tickets() -> None:
    order = make_order()

    order.mark_locked(at(1), "lock-1", at(16))
    assert status_of(order) is OrderStatus.LOCKED
    assert order.supplier_lock_ref == "lock-1"
    assert order.lock_expires_at == at(16)
    assert order.updated_at == at(1)

    order.start_fixing(at(2))
    assert status_of(order) is OrderStatus.FIXING
    assert not order.tickets
    assert delivery_of(order) is DeliveryStatus.NONE

    order.mark_fixed(at(3), TICKETS)
    assert status_of(order) is OrderStatus.FIXED
    assert order.tickets == TICKETS
    # The e-ticket codes are the delivery.
    assert delivery_of(order) is DeliveryStatus.DELIVERED
    assert order.updated_at == at(3)
    assert statuses(order) == [OrderStatus.LOCKED, OrderStatus.FIXING, OrderStatus.FIXED]
    assert [e.at for e in order.history] == [at(1), at(2), at(3)]


def test_express_delivery_goes_pending_shipped_delivered() -> None:
    order = fixed_order(delivery_method=DeliveryMethod.EXPRESS, delivery_address="1 Road")
    assert delivery_of(order) is DeliveryStatus.PENDING

    # A courier cannot deliver what has not shipped.
    with pytest.raises(InvalidTransition) as info:
        order.advance_delivery(DeliveryStatus.DELIVERED, at(4))
    assert info.value.machine == "delivery"
    assert delivery_of(order) is DeliveryStatus.PENDING
    assert order.updated_at == at(3)

    order.advance_delivery(DeliveryStatus.SHIPPED, at(5))
    assert delivery_of(order) is DeliveryStatus.SHIPPED
    assert order.updated_at == at(5)

    order.advance_delivery(DeliveryStatus.DELIVERED, at(6))
    assert delivery_of(order) is DeliveryStatus.DELIVERED
    assert order.updated_at == at(6)

    # Delivery is kept apart from the order status and its history.
    assert status_of(order) is OrderStatus.FIXED
    assert statuses(order) == [OrderStatus.LOCKED, OrderStatus.FIXING, OrderStatus.FIXED]

    with pytest.raises(InvalidTransition):
        order.advance_delivery(DeliveryStatus.SHIPPED, at(7))


def test_lock_failed() -> None:
    order = make_order()
    order.mark_lock_failed(at(1), "supplier_timeout")
    assert status_of(order) is OrderStatus.LOCK_FAILED
    assert order.failure_reason == "supplier_timeout"
    assert order.history == [HistoryEntry(OrderStatus.LOCK_FAILED, at(1), "supplier_timeout")]
    with pytest.raises(InvalidTransition):
        order.start_fixing(at(2))


def test_cancel_from_locked() -> None:
    order = locked_order()
    order.cancel(at(5), "distributor_cancel")
    assert status_of(order) is OrderStatus.CANCELED
    assert order.failure_reason == "distributor_cancel"
    assert order.history[-1] == HistoryEntry(OrderStatus.CANCELED, at(5), "distributor_cancel")
    assert order.tickets == ()
    assert delivery_of(order) is DeliveryStatus.NONE


def test_fixing_can_be_canceled_when_the_supplier_refuses() -> None:
    order = fixing_order()
    order.cancel(at(4), "issue_refused:sold_out")
    assert status_of(order) is OrderStatus.CANCELED
    assert order.failure_reason == "issue_refused:sold_out"
    assert statuses(order) == [OrderStatus.LOCKED, OrderStatus.FIXING, OrderStatus.CANCELED]
    assert delivery_of(order) is DeliveryStatus.NONE


def test_issued_order_cannot_be_canceled_only_refunded() -> None:
    order = fixed_order()
    before = Snapshot.of(order)
    with pytest.raises(InvalidTransition) as info:
        order.cancel(at(4), "too late")
    assert (info.value.current, info.value.target) == ("FIXED", "CANCELED")
    assert Snapshot.of(order) == before


def test_refund_path() -> None:
    order = fixed_order()
    order.start_refund(at(10), "show_cancelled")
    assert status_of(order) is OrderStatus.REFUNDING
    assert order.history[-1] == HistoryEntry(OrderStatus.REFUNDING, at(10), "show_cancelled")
    order.mark_refunded(at(11), SupplierRefund(at(11), "platform"))
    assert status_of(order) is OrderStatus.REFUNDED
    assert statuses(order) == [
        OrderStatus.LOCKED,
        OrderStatus.FIXING,
        OrderStatus.FIXED,
        OrderStatus.REFUNDING,
        OrderStatus.REFUNDED,
    ]
    # The tickets that were issued stay on record.
    assert order.tickets == TICKETS
    assert order.updated_at == at(11)


def test_refund_refused() -> None:
    order = fixed_order()
    order.start_refund(at(10), "buyer_request")
    order.mark_refund_failed(at(11), "supplier_refused")
    assert status_of(order) is OrderStatus.REFUND_FAIL
    assert order.failure_reason == "supplier_refused"
    with pytest.raises(InvalidTransition):
        order.start_refund(at(12), "again")


def test_a_delivered_order_can_still_be_refunded() -> None:
    order = fixed_order()
    assert delivery_of(order) is DeliveryStatus.DELIVERED
    order.start_refund(at(10), "buyer_request")
    order.mark_refunded(at(11), SupplierRefund(at(11), "platform"))
    assert status_of(order) is OrderStatus.REFUNDED
    assert delivery_of(order) is DeliveryStatus.DELIVERED


def test_refund_needs_an_issued_order() -> None:
    for order in (make_order(), locked_order(), fixing_order()):
        before = Snapshot.of(order)
        with pytest.raises(InvalidTransition):
            order.start_refund(at(10), "buyer_request")
        assert Snapshot.of(order) == before


# -- lock expiry at the edge ---------------------------------------------------------------


def test_lock_expired_exactly_at_the_edge() -> None:
    expires = at(1) + LOCK_TTL
    order = locked_order()
    assert order.lock_expires_at == expires
    assert not order.lock_expired(at(1))
    assert not order.lock_expired(expires - TICK)
    assert order.lock_expired(expires)
    assert order.lock_expired(expires + TICK)


def test_lock_expiry_only_concerns_locked_orders() -> None:
    long_after = at(1) + LOCK_TTL + timedelta(days=1)
    assert not make_order().lock_expired(long_after)
    assert not fixing_order().lock_expired(long_after)
    assert not fixed_order().lock_expired(long_after)


# -- guards --------------------------------------------------------------------------------


def test_mark_fixed_without_tickets_raises_and_changes_nothing() -> None:
    order = fixing_order()
    before = Snapshot.of(order)
    with pytest.raises(ValueError, match="tickets"):
        order.mark_fixed(at(3), ())
    assert Snapshot.of(order) == before
    assert status_of(order) is OrderStatus.FIXING


def test_illegal_move_raises_and_changes_nothing() -> None:
    order = make_order()
    before = Snapshot.of(order)
    with pytest.raises(InvalidTransition) as info:
        order.mark_fixed(at(1), TICKETS)
    assert (info.value.machine, info.value.current, info.value.target) == (
        "order",
        "NEW",
        "FIXED",
    )
    assert Snapshot.of(order) == before


def test_a_refused_mark_fixed_leaves_the_order_unchanged() -> None:
    order = fixing_order()
    # Either the domain refuses delivery before issue (which also resolves this), or it
    # accepts it; then mark_fixed must be all or nothing.
    with contextlib.suppress(InvalidTransition):
        order.advance_delivery(DeliveryStatus.DELIVERED, at(3))
    before = Snapshot.of(order)
    try:
        order.mark_fixed(at(4), TICKETS)
    except InvalidTransition:
        assert Snapshot.of(order) == before
    else:
        assert status_of(order) is OrderStatus.FIXED
        assert delivery_of(order) is DeliveryStatus.DELIVERED


@pytest.mark.parametrize("target", [DeliveryStatus.PENDING, DeliveryStatus.DELIVERED])
def test_delivery_does_not_move_before_the_order_is_issued(target: DeliveryStatus) -> None:
    canceled = locked_order()
    canceled.cancel(at(5), "distributor_cancel")
    for order in (make_order(), locked_order(), fixing_order(), canceled):
        before = Snapshot.of(order)
        with pytest.raises(InvalidTransition):
            order.advance_delivery(target, at(9))
        assert Snapshot.of(order) == before


# -- history -------------------------------------------------------------------------------


def test_history_and_unsaved_history_record_moves_in_order() -> None:
    order = make_order()
    order.mark_locked(at(1), "lock-1", at(16))
    order.start_fixing(at(2))
    order.cancel(at(3), "issue_refused")
    expected = [
        HistoryEntry(OrderStatus.LOCKED, at(1), None),
        HistoryEntry(OrderStatus.FIXING, at(2), None),
        HistoryEntry(OrderStatus.CANCELED, at(3), "issue_refused"),
    ]
    assert order.history == expected
    assert order.unsaved_history == expected


def test_unsaved_history_holds_only_moves_since_load() -> None:
    # As the repository loads it: earlier history on record, nothing unsaved.
    earlier = [
        HistoryEntry(OrderStatus.LOCKED, at(1)),
        HistoryEntry(OrderStatus.FIXING, at(2)),
        HistoryEntry(OrderStatus.FIXED, at(3)),
    ]
    order = make_order(
        status=OrderStatus.FIXED,
        delivery_status=DeliveryStatus.DELIVERED,
        tickets=TICKETS,
        history=list(earlier),
        updated_at=at(3),
        version=3,
    )
    order.start_refund(at(10), "buyer_request")
    order.mark_refunded(at(11), SupplierRefund(at(11), "platform"))
    new = [
        HistoryEntry(OrderStatus.REFUNDING, at(10), "buyer_request"),
        HistoryEntry(OrderStatus.REFUNDED, at(11), None),
    ]
    assert order.history == earlier + new
    assert order.unsaved_history == new
    # Saving (and bumping the version) is the repository's job, not the aggregate's.
    assert order.version == 3


def test_delivery_moves_are_not_order_history() -> None:
    order = fixed_order(delivery_method=DeliveryMethod.EXPRESS)
    length = len(order.history)
    order.advance_delivery(DeliveryStatus.SHIPPED, at(5))
    assert len(order.history) == length
    assert len(order.unsaved_history) == length


# -- money ---------------------------------------------------------------------------------


def test_amount_is_distribution_price_times_quantity() -> None:
    order = make_order(quantity=3, unit_price=38000, settlement_price=35050, currency="CNY")
    assert order.amount == Money(114000, "CNY")
    assert order.settlement_amount == Money(105150, "CNY")
    assert type(order.amount.amount) is int
    assert type(order.settlement_amount.amount) is int


def test_amount_in_a_currency_without_minor_units() -> None:
    order = make_order(quantity=4, unit_price=12000, settlement_price=11000, currency="JPY")
    assert order.amount == Money(48000, "JPY")
    assert order.settlement_amount == Money(44000, "JPY")
    assert order.amount.format() == "JPY 48000"


def test_face_value_plays_no_part_in_the_amounts() -> None:
    cheap_face = make_order(face_value=1)
    dear_face = make_order(face_value=99999)
    assert cheap_face.amount == dear_face.amount == Money(76000, "CNY")
    assert cheap_face.settlement_amount == dear_face.settlement_amount == Money(70000, "CNY")


# -- request fingerprint -------------------------------------------------------------------

REQUEST: dict[str, Any] = {
    "distributor_order_id": "A-1001",
    "session_id": "sess_1",
    "tier_id": "tier_vip",
    "quantity": 2,
    "buyer": {"name": "Li Lei", "phone": "+86 138 0000 0000"},
    "delivery": {"method": "EXPRESS", "address": "上海市 1 号"},
    "callback_url": None,
}


def test_fingerprint_is_a_sha256_hex_digest() -> None:
    fp = request_fingerprint(REQUEST)
    assert len(fp) == 64
    assert int(fp, 16) >= 0
    assert fp == request_fingerprint(dict(REQUEST))


def test_fingerprint_is_stable_under_key_order() -> None:
    reversed_top = dict(reversed(list(REQUEST.items())))
    reversed_nested = {
        k: dict(reversed(list(v.items()))) if isinstance(v, dict) else v
        for k, v in reversed_top.items()
    }
    assert list(reversed_top) != list(REQUEST)
    assert request_fingerprint(reversed_top) == request_fingerprint(REQUEST)
    assert request_fingerprint(reversed_nested) == request_fingerprint(REQUEST)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("distributor_order_id",), "A-1002"),
        (("session_id",), "sess_2"),
        (("tier_id",), "tier_std"),
        (("quantity",), 3),
        (("quantity",), "2"),
        (("buyer", "name"), "Han Meimei"),
        (("buyer", "phone"), "+86 138 0000 0001"),
        (("delivery", "method"), "ETICKET"),
        (("delivery", "address"), "上海市 2 号"),
        (("callback_url",), "https://example.test/cb"),
    ],
    ids=lambda v: ".".join(v) if isinstance(v, tuple) else repr(v),
)
def test_fingerprint_changes_with_any_field(path: tuple[str, ...], value: object) -> None:
    changed: dict[str, Any] = {k: dict(v) if isinstance(v, dict) else v for k, v in REQUEST.items()}
    target = changed
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert request_fingerprint(changed) != request_fingerprint(REQUEST)


def test_fingerprint_changes_when_a_field_is_added_or_dropped() -> None:
    dropped = {k: v for k, v in REQUEST.items() if k != "callback_url"}
    added = {**REQUEST, "note": "gift"}
    assert request_fingerprint(dropped) != request_fingerprint(REQUEST)
    assert request_fingerprint(added) != request_fingerprint(REQUEST)


# -- the state machine ---------------------------------------------------------------------

steps = st.integers(min_value=0, max_value=3_600_000_000).map(lambda us: timedelta(microseconds=us))
reasons = st.sampled_from(["buyer_request", "supplier_timeout", "sold_out", ""])
ticket_sets = st.lists(
    st.builds(IssuedTicket, st.text(min_size=1, max_size=8), st.none() | st.just("A-1")),
    max_size=3,
).map(tuple)


class OrderMachine(RuleBasedStateMachine):
    """Every move, legal or not, at any time; a refused move must leave no trace."""

    order: Order
    now: datetime

    @initialize(
        method=st.sampled_from(DeliveryMethod),
        quantity=st.integers(min_value=1, max_value=20),
        unit_price=st.integers(min_value=0, max_value=10**9),
        settlement_price=st.integers(min_value=0, max_value=10**9),
        currency=st.sampled_from(["CNY", "JPY", "USD"]),
        head_start=st.integers(min_value=0, max_value=4),
    )
    def create(
        self,
        method: DeliveryMethod,
        quantity: int,
        unit_price: int,
        settlement_price: int,
        currency: str,
        head_start: int,
    ) -> None:
        self.now = T0
        self.order = make_order(
            delivery_method=method,
            quantity=quantity,
            unit_price=unit_price,
            settlement_price=settlement_price,
            currency=currency,
        )
        self.money = self._money_fields()
        self.expected_amount = Money(unit_price * quantity, currency)
        # Random moves from NEW end in LOCK_FAILED half the time; a head start along the happy
        # path (through the same checked rules) lets runs spend their steps in the later states.
        second = timedelta(seconds=1)
        o = self.order
        happy_path: list[tuple[OrderStatus, Callable[[], None]]] = [
            (OrderStatus.LOCKED, lambda: o.mark_locked(self.now, "lock-1", self.now + LOCK_TTL)),
            (OrderStatus.FIXING, lambda: o.start_fixing(self.now)),
            (OrderStatus.FIXED, lambda: o.mark_fixed(self.now, TICKETS)),
            (OrderStatus.REFUNDING, lambda: o.start_refund(self.now, "buyer_request")),
        ]
        for target, move in happy_path[:head_start]:
            assert self._attempt(second, target, move)
        self.last_updated_at = self.order.updated_at
        self.last_status = self.order.status
        self.last_delivery = self.order.delivery_status

    def _money_fields(self) -> tuple[Any, ...]:
        o = self.order
        return (o.unit_price, o.settlement_price, o.face_value, o.quantity, o.currency, o.amount)

    def _attempt(
        self,
        step: timedelta,
        target: OrderStatus,
        move: Callable[[], None],
        *,
        legal_besides_status: bool = True,
    ) -> bool:
        """Try a move; check it happened exactly when it is legal. True if it happened."""
        self.now += step
        current = self.order.status
        expected_ok = (current, target) in ORDER_EDGES and legal_besides_status
        before = Snapshot.of(self.order)
        refused: Exception | None = None
        try:
            move()
        except (InvalidTransition, ValueError) as exc:
            refused = exc
        if refused is not None:
            assert not expected_ok, f"{current} -> {target} refused: {refused!r}"
            if isinstance(refused, InvalidTransition):
                assert (refused.machine, refused.current, refused.target) == (
                    "order",
                    current.value,
                    target.value,
                )
            assert Snapshot.of(self.order) == before
            return False
        assert expected_ok, f"{current} -> {target} was allowed"
        assert self.order.status is target
        assert len(self.order.history) == len(before.history) + 1
        assert self.order.history[-1].status is target
        assert self.order.history[-1].at == self.now
        assert self.order.updated_at == self.now
        return True

    @rule(step=steps, ttl=steps)
    def mark_locked(self, step: timedelta, ttl: timedelta) -> None:
        self._attempt(
            step,
            OrderStatus.LOCKED,
            lambda: self.order.mark_locked(self.now, "lock-1", self.now + ttl),
        )

    @rule(step=steps, reason=reasons)
    def mark_lock_failed(self, step: timedelta, reason: str) -> None:
        self._attempt(
            step, OrderStatus.LOCK_FAILED, lambda: self.order.mark_lock_failed(self.now, reason)
        )

    @rule(step=steps)
    def start_fixing(self, step: timedelta) -> None:
        self._attempt(step, OrderStatus.FIXING, lambda: self.order.start_fixing(self.now))

    @rule(step=steps, tickets=ticket_sets)
    def mark_fixed(self, step: timedelta, tickets: tuple[IssuedTicket, ...]) -> None:
        fixed = self._attempt(
            step,
            OrderStatus.FIXED,
            lambda: self.order.mark_fixed(self.now, tickets),
            legal_besides_status=bool(tickets),
        )
        if fixed:
            assert self.order.tickets == tickets

    @rule(step=steps, reason=reasons)
    def cancel(self, step: timedelta, reason: str) -> None:
        self._attempt(step, OrderStatus.CANCELED, lambda: self.order.cancel(self.now, reason))

    @rule(step=steps)
    def cancel_if_lock_expired(self, step: timedelta) -> None:
        # What the order actor's timer does.
        self.now += step
        if self.order.lock_expired(self.now):
            assert self.order.status is OrderStatus.LOCKED
            assert self.order.lock_expires_at is not None
            assert self.now >= self.order.lock_expires_at
            self._attempt(
                timedelta(0),
                OrderStatus.CANCELED,
                lambda: self.order.cancel(self.now, "lock_expired"),
            )

    @rule(step=steps, reason=reasons)
    def start_refund(self, step: timedelta, reason: str) -> None:
        self._attempt(
            step, OrderStatus.REFUNDING, lambda: self.order.start_refund(self.now, reason)
        )

    @rule(step=steps)
    def mark_refunded(self, step: timedelta) -> None:
        self._attempt(
            step,
            OrderStatus.REFUNDED,
            lambda: self.order.mark_refunded(self.now, SupplierRefund(self.now, "platform")),
        )

    @rule(step=steps, reason=reasons)
    def mark_refund_failed(self, step: timedelta, reason: str) -> None:
        self._attempt(
            step,
            OrderStatus.REFUND_FAIL,
            lambda: self.order.mark_refund_failed(self.now, reason),
        )

    # Delivery starts once the tickets exist. Moving it earlier is accepted by the aggregate
    # today and then breaks mark_fixed (see test_a_refused_mark_fixed_leaves_the_order_unchanged),
    # so the machine only drives delivery for issued orders.
    @precondition(lambda self: self.order.status in ISSUED)
    @rule(step=steps, to=st.sampled_from(DeliveryStatus))
    def advance_delivery(self, step: timedelta, to: DeliveryStatus) -> None:
        self.now += step
        current = self.order.delivery_status
        before = Snapshot.of(self.order)
        refused: InvalidTransition | None = None
        try:
            self.order.advance_delivery(to, self.now)
        except InvalidTransition as exc:
            refused = exc
        if refused is not None:
            assert (current, to) not in DELIVERY_EDGES
            assert refused.machine == "delivery"
            assert Snapshot.of(self.order) == before
            return
        assert (current, to) in DELIVERY_EDGES
        assert self.order.delivery_status is to
        assert self.order.status is before.status
        assert self.order.history == list(before.history)
        assert self.order.updated_at == self.now

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def status_follows_allowed_edges(self) -> None:
        current = self.order.status
        assert current == self.last_status or (self.last_status, current) in ORDER_EDGES
        if self.last_status in EXPECTED_ORDER_TERMINAL:
            assert current == self.last_status, "a terminal status was left"
        self.last_status = current

    @invariant()
    def delivery_follows_allowed_edges(self) -> None:
        current = self.order.delivery_status
        assert current == self.last_delivery or (self.last_delivery, current) in DELIVERY_EDGES
        if self.last_delivery in EXPECTED_DELIVERY_TERMINAL:
            assert current == self.last_delivery
        self.last_delivery = current

    @invariant()
    def money_never_changes(self) -> None:
        assert self._money_fields() == self.money
        assert self.order.amount == self.expected_amount

    @invariant()
    def history_is_a_path_from_new(self) -> None:
        path = [OrderStatus.NEW, *statuses(self.order)]
        for step in itertools.pairwise(path):
            assert step in ORDER_EDGES, path
        assert path[-1] is self.order.status
        times = [entry.at for entry in self.order.history]
        assert times == sorted(times)
        # Created in this run, so nothing has been saved: every move is still unsaved.
        assert self.order.unsaved_history == self.order.history

    @invariant()
    def updated_at_never_decreases(self) -> None:
        assert self.order.updated_at >= self.last_updated_at
        self.last_updated_at = self.order.updated_at

    @invariant()
    def tickets_and_delivery_exist_only_once_issued(self) -> None:
        issued = self.order.status in ISSUED
        assert bool(self.order.tickets) == issued
        if issued:
            assert self.order.delivery_status is not DeliveryStatus.NONE
        else:
            assert self.order.delivery_status is DeliveryStatus.NONE
        if self.order.status is not OrderStatus.NEW and self.order.status is not (
            OrderStatus.LOCK_FAILED
        ):
            assert self.order.supplier_lock_ref == "lock-1"


OrderMachine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestOrderMachine = OrderMachine.TestCase


def test_a_reply_crosses_a_ray_hop_whole() -> None:
    """Ray pickles answers with cloudpickle; a reply's own reduction keeps every field."""
    import ray.cloudpickle

    from domain.replies import NOT_FOUND, create_reply

    order = make_order()
    order.mark_locked(T0, "lock-1", T0 + timedelta(minutes=15))
    for reply in (create_reply(order, created=True), NOT_FOUND):
        back = ray.cloudpickle.loads(ray.cloudpickle.dumps(reply))  # type: ignore[no-untyped-call]
        assert back == reply
        if reply.order is not None:
            assert back.order.history == reply.order.history


def _every_field_set() -> Order:
    """An order with no field left at its default, facts included."""
    from domain.identity import Attendee, Document, IdType

    order = make_order(
        delivery_method=DeliveryMethod.EXPRESS,
        buyer={"name": "Li Lei", "phone": "+86 138 0000 0000"},
        delivery_address="1 Chang'an Avenue",
        callback_url="https://dist.example/cb",
        attendees=(
            Attendee("Li Lei", Document(IdType.ID_CARD, "11010519491231002X")),
            Attendee("Han Meimei", Document(IdType.PASSPORT, "E12345678")),
        ),
        tickets_per_id=1,
        version=3,
    )
    order.mark_locked(T0, "lock-1", T0 + timedelta(minutes=15))
    order.start_fixing(at(1))
    order.mark_fixed(at(2), (IssuedTicket("C-1", "A-1"), IssuedTicket("C-2", None)))
    order.failure_reason = "none, but set"
    order.advance_delivery(DeliveryStatus.SHIPPED, at(3))
    return order


@pytest.mark.parametrize("facts", [True, False], ids=["unsaved facts", "saved"])
def test_an_order_pickles_whole(facts: bool) -> None:
    """Every field comes back equal and of its own type, through the standard pickler (the
    order channel) and cloudpickle (Ray), alone and inside a reply."""
    import pickle

    import ray.cloudpickle

    from domain.identity import IdType
    from domain.replies import issue_reply

    order = _every_field_set()
    if not facts:
        order.facts.clear()
    reply = issue_reply(order)
    for dumps, loads in (
        (pickle.dumps, pickle.loads),
        (ray.cloudpickle.dumps, ray.cloudpickle.loads),
    ):
        back = loads(dumps(order))
        assert back == order
        for name in Order.__dataclass_fields__:
            assert type(getattr(back, name)) is type(getattr(order, name)), name
        assert len(back.history) == 3
        # (A StrEnum equals its value, so equality alone would pass plain strings.)
        assert all(type(h.status) is OrderStatus for h in back.history)
        assert [type(a.document.id_type) for a in back.attendees] == [IdType, IdType]
        assert [type(f) for f in back.facts] == [type(f) for f in order.facts]
        again = loads(dumps(reply))
        assert again == reply
        assert again.verdict is reply.verdict
        assert again.order is not None
        assert again.order.tickets == order.tickets


@by_fields
@dataclass(frozen=True, slots=True)
class _OneField:
    a: int


def test_by_fields_keeps_a_frozen_dataclass_whole_and_refuses_what_it_cannot_rebuild() -> None:
    import pickle
    from dataclasses import field, make_dataclass

    from actors.interfaces import CreateOrder
    from domain.identity import Attendee, Document, IdType

    request = CreateOrder(
        "ord_1", "dst_a", "A-1", "sup_a", "sess_1", "tier_1", "S1", "T1", 2, 100, 90, 120,
        "CNY", DeliveryMethod.ETICKET, None, {"name": "x"}, None, "h" * 64, 60,
        (Attendee("Li Lei", Document(IdType.ID_CARD, "11010519491231002X")),), 1,
    )  # fmt: skip
    back = pickle.loads(pickle.dumps(request))  # noqa: S301
    assert back == request
    assert back.attendees[0].document.id_type is IdType.ID_CARD
    assert pickle.loads(pickle.dumps(_OneField(7))) == _OneField(7)  # noqa: S301

    for outside_init in (field(init=False, default=0), field(kw_only=True, default=0)):
        cls = make_dataclass("Bad", [("a", int), ("b", int, outside_init)], frozen=True, slots=True)
        with pytest.raises(TypeError, match="__init__ argument"):
            by_fields(cls)
