"""What each move of an order writes, on both databases: one table of cases. For each case
the order is brought to a starting state (saved move by move), then one message's moves are
made and saved, and the rows that save added are compared with what the design says that
message implies: history, tickets, seats to release, negotiation opened or closed (with its
resolution), the supplier-refund record, callbacks, and flows with their basis times."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.negotiation import NegotiationKind, PollingPolicy, Resolution
from domain.order import DeliveryMethod, IssuedTicket, Order, SupplierRefund
from domain.status import DeliveryStatus
from persistence.orders import OrderRepository
from persistence.tables import (
    flows,
    negotiations,
    order_history,
    outbox,
    releases,
    supplier_refunds,
    tickets,
)
from tests.integration.test_persistence import make_distributor, make_supplier, new_order

TICKETS = (IssuedTicket("C-1", "A-1"), IssuedTicket("C-2", "A-2"))
POLICY = PollingPolicy(timedelta(seconds=3), timedelta(minutes=2), adaptive=True)
Move = Callable[[Order, datetime], None]


def at(minutes: int, base: datetime) -> datetime:
    return base + timedelta(minutes=minutes)


# -- the starting states, as sequences of saved moves ----------------------------------------
def _lock(o: Order, t: datetime) -> None:
    o.mark_locked(t, "L-1", t + timedelta(minutes=15))


def _fix(o: Order, t: datetime) -> None:
    o.mark_fixed(t, TICKETS)


def _negotiate(o: Order, t: datetime) -> None:
    o.negotiate(t, POLICY)


LOCKED: list[Move] = [_lock]
FIXING: list[Move] = [_lock, lambda o, t: o.start_fixing(t)]
NEGOTIATING_ISSUE: list[Move] = [*FIXING, _negotiate]
FIXED: list[Move] = [*FIXING, _fix]
REFUNDING: list[Move] = [*FIXED, lambda o, t: o.start_refund(t, "buyer")]
NEGOTIATING_REFUND: list[Move] = [*REFUNDING, _negotiate]


@dataclass(frozen=True)
class Case:
    name: str
    start: list[Move]
    move: Move
    history: list[str] = field(default_factory=list)  # statuses added, in order
    tickets: int = 0
    release: bool = False
    negotiation: tuple[str, str, str | None] | None = None  # (kind, status, resolution)
    supplier_refund: str | None = None  # initiated_by
    callbacks: list[tuple[str, str]] = field(default_factory=list)  # (type, status)
    flows: list[tuple[str, int]] = field(default_factory=list)  # (kind, sign)
    delivery: str | None = None
    express: bool = False


def _refund(by: str) -> Callable[[datetime], SupplierRefund]:
    return lambda t: SupplierRefund(t - timedelta(seconds=30), by)


def _supplier_refunds_on_its_own(o: Order, t: datetime) -> None:
    o.start_refund(t, "refunded_by_supplier")
    o.mark_refunded(t, _refund("supplier")(t))


def _delivered(o: Order, t: datetime) -> None:
    assert o.report_delivery(DeliveryStatus.DELIVERED, t)


CASES = [
    Case(
        "lock succeeded",
        [],
        _lock,
        history=["LOCKED"],
        callbacks=[("order.status_changed", "LOCKED")],
        flows=[("receivable", +1)],
    ),
    Case(
        "lock refused (sold out): nothing held, nothing owed",
        [],
        lambda o, t: o.mark_lock_failed(t, "sold_out"),
        history=["LOCK_FAILED"],
        callbacks=[("order.status_changed", "LOCK_FAILED")],
    ),
    Case(
        "lock outcome unknown: the seats the supplier may hold are released",
        [],
        lambda o, t: o.mark_lock_failed(t, "timeout", seats_may_be_held=True),
        history=["LOCK_FAILED"],
        release=True,
        callbacks=[("order.status_changed", "LOCK_FAILED")],
    ),
    Case(
        "canceled by the distributor",
        LOCKED,
        lambda o, t: o.cancel(t, "canceled_by_distributor"),
        history=["CANCELED"],
        release=True,
        callbacks=[("order.status_changed", "CANCELED")],
        flows=[("receivable", -1)],
    ),
    Case(
        "issue requested",
        LOCKED,
        lambda o, t: o.start_fixing(t),
        history=["FIXING"],
        callbacks=[("order.status_changed", "FIXING")],
    ),
    Case(
        "issued",
        FIXING,
        _fix,
        history=["FIXED"],
        tickets=2,
        callbacks=[("order.status_changed", "FIXED")],
        flows=[("settlement", +1)],
        delivery="DELIVERED",
    ),
    Case(
        "issued, paper tickets: delivery pending",
        FIXING,
        _fix,
        history=["FIXED"],
        tickets=2,
        callbacks=[("order.status_changed", "FIXED")],
        flows=[("settlement", +1)],
        delivery="PENDING",
        express=True,
    ),
    Case(
        "issue refused: canceled, seats released, money returned",
        FIXING,
        lambda o, t: o.cancel(t, "issue_failed:refused"),
        history=["CANCELED"],
        release=True,
        callbacks=[("order.status_changed", "CANCELED")],
        flows=[("receivable", -1)],
    ),
    Case(
        "issue outcome unknown: a negotiation opens",
        FIXING,
        _negotiate,
        negotiation=("issue", "active", None),
    ),
    Case(
        "a poll found it issued",
        NEGOTIATING_ISSUE,
        lambda o, t: o.mark_fixed(t, TICKETS, closes=Resolution.DONE),
        history=["FIXED"],
        tickets=2,
        negotiation=("issue", "resolved", "done"),
        callbacks=[("order.status_changed", "FIXED")],
        flows=[("settlement", +1)],
        delivery="DELIVERED",
    ),
    Case(
        "a poll found it not issued",
        NEGOTIATING_ISSUE,
        lambda o, t: o.cancel(t, "issue_failed:not_issued", closes=Resolution.FAILED),
        history=["CANCELED"],
        release=True,
        negotiation=("issue", "resolved", "failed"),
        callbacks=[("order.status_changed", "CANCELED")],
        flows=[("receivable", -1)],
    ),
    Case(
        "an operator cancels a flagged order",
        NEGOTIATING_ISSUE,
        lambda o, t: o.cancel(t, "operator:not issued", closes=Resolution.OPERATOR_CANCEL),
        history=["CANCELED"],
        release=True,
        negotiation=("issue", "resolved", "operator_cancel"),
        callbacks=[("order.status_changed", "CANCELED")],
        flows=[("receivable", -1)],
    ),
    Case(
        "an operator says it was issued",
        NEGOTIATING_ISSUE,
        lambda o, t: o.mark_fixed(t, TICKETS, closes=Resolution.OPERATOR_ISSUED),
        history=["FIXED"],
        tickets=2,
        negotiation=("issue", "resolved", "operator_issued"),
        callbacks=[("order.status_changed", "FIXED")],
        flows=[("settlement", +1)],
        delivery="DELIVERED",
    ),
    Case(
        "an answer that comes after the order moved on closes its negotiation",
        NEGOTIATING_ISSUE,
        lambda o, t: o.close_negotiation(NegotiationKind.ISSUE, Resolution.SUPERSEDED, t),
        negotiation=("issue", "resolved", "superseded"),
    ),
    Case(
        "an operator retries: the negotiation opens again",
        NEGOTIATING_ISSUE,
        _negotiate,
        negotiation=("issue", "active", None),
    ),
    Case(
        "refund requested",
        FIXED,
        lambda o, t: o.start_refund(t, "buyer"),
        history=["REFUNDING"],
        callbacks=[("order.status_changed", "REFUNDING")],
    ),
    Case(
        "refunded by the supplier on request",
        REFUNDING,
        lambda o, t: o.mark_refunded(t, _refund("platform")(t)),
        history=["REFUNDED"],
        supplier_refund="platform",
        callbacks=[("order.status_changed", "REFUNDED")],
        flows=[("receivable", -1), ("settlement", -1)],
    ),
    Case(
        "refund refused",
        REFUNDING,
        lambda o, t: o.mark_refund_failed(t, "refund_refused:refused"),
        history=["REFUND_FAIL"],
        callbacks=[("order.status_changed", "REFUND_FAIL")],
    ),
    Case(
        "refund outcome unknown: a negotiation opens",
        REFUNDING,
        _negotiate,
        negotiation=("refund", "active", None),
    ),
    Case(
        "the supplier's feed settles a refund under negotiation",
        NEGOTIATING_REFUND,
        lambda o, t: o.mark_refunded(t, _refund("supplier")(t), closes=Resolution.SUPPLIER_FEED),
        history=["REFUNDED"],
        supplier_refund="supplier",
        negotiation=("refund", "resolved", "supplier_feed"),
        callbacks=[("order.status_changed", "REFUNDED")],
        flows=[("receivable", -1), ("settlement", -1)],
    ),
    Case(
        "the supplier refunds an issued order on its own",
        FIXED,
        _supplier_refunds_on_its_own,
        history=["REFUNDING", "REFUNDED"],
        supplier_refund="supplier",
        callbacks=[("order.status_changed", "REFUNDING"), ("order.status_changed", "REFUNDED")],
        flows=[("receivable", -1), ("settlement", -1)],
    ),
    Case(
        "the courier delivered paper tickets (SHIPPED reported late): one callback",
        FIXED,
        _delivered,
        callbacks=[("order.delivery_changed", "FIXED")],
        delivery="DELIVERED",
        express=True,
    ),
]


async def rows_of(engine: AsyncEngine, order_id: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    async with engine.connect() as conn:
        for name, table, order_by in (
            ("history", order_history, order_history.c.seq),
            ("tickets", tickets, tickets.c.code),
            ("releases", releases, releases.c.order_id),
            ("negotiations", negotiations, negotiations.c.kind),
            ("supplier_refunds", supplier_refunds, supplier_refunds.c.order_id),
            ("outbox", outbox, outbox.c.id),
            ("flows", flows, flows.c.id),
        ):
            q = select(table).where(table.c.order_id == order_id).order_by(order_by)
            out[name] = [dict(r._mapping) for r in (await conn.execute(q)).all()]
    return out


def added(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in after if r not in before]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_a_moves_facts_write_exactly_its_rows(
    engine: AsyncEngine, now: datetime, case: Case
) -> None:
    repo = OrderRepository(engine)
    dist, sup = await make_distributor(engine, now), await make_supplier(engine, now)
    method = DeliveryMethod.EXPRESS if case.express else DeliveryMethod.ETICKET
    order = new_order(dist, sup, "D-" + case.name[:40], now, delivery_method=method)
    assert await repo.insert_new(order)
    for i, step in enumerate(case.start, start=1):
        step(order, at(i, now))
        await repo.save(order)
    before = await rows_of(engine, order.id)
    t = at(len(case.start) + 1, now)

    case.move(order, t)
    await repo.save(order)

    after = await rows_of(engine, order.id)
    new = {name: added(before[name], after[name]) for name in after}
    assert [(h["status"], h["at"]) for h in new["history"]] == [(s, t) for s in case.history]
    assert len(new["tickets"]) == case.tickets
    assert [(r["status"], r["next_attempt_at"]) for r in new["releases"]] == (
        [("pending", t)] if case.release else []
    )
    negotiation = [n for n in after["negotiations"] if n not in before["negotiations"]]
    if case.negotiation is None:
        assert negotiation == []
    else:
        kind, status, resolution = case.negotiation
        assert [(n["kind"], n["status"], n["resolution"]) for n in negotiation] == [
            (kind, status, resolution)
        ]
        if status == "active":  # polled from one interval on, handed to a person after give-up
            assert negotiation[0]["next_poll_at"] == t + POLICY.interval
            assert negotiation[0]["give_up_at"] == t + POLICY.give_up_after
        else:
            assert negotiation[0]["resolved_at"] == t
    assert [r["initiated_by"] for r in new["supplier_refunds"]] == (
        [case.supplier_refund] if case.supplier_refund else []
    )
    bodies = [json.loads(m["body"]) for m in new["outbox"]]
    assert [(b["type"], b["status"]) for b in bodies] == case.callbacks
    assert all(m["url"] == order.callback_url for m in new["outbox"])
    assert sorted((f["kind"], f["sign"]) for f in new["flows"]) == sorted(case.flows)
    for f in new["flows"]:
        # Each flow's basis time is the time of the fact that brought it: the move's, or the
        # supplier's own refund time for the settlement minus.
        expected = t - timedelta(seconds=30) if (f["kind"], f["sign"]) == ("settlement", -1) else t
        assert f["basis_time"] == expected, f
        unit = order.unit_price if f["kind"] == "receivable" else order.settlement_price
        assert f["amount"] == unit * order.quantity
    if case.delivery is not None:
        assert order.delivery_status.value == case.delivery
    # Whatever was written is what the order reloads as.
    loaded = await repo.get(order.id)
    assert loaded is not None
    assert (loaded.status, loaded.delivery_status, loaded.tickets) == (
        order.status,
        order.delivery_status,
        order.tickets,
    )
    assert order.facts == []  # saved facts are not written twice


async def test_saving_the_same_facts_again_is_refused_and_writes_nothing(
    engine: AsyncEngine, now: datetime
) -> None:
    """A stale copy (another writer moved the order first) writes none of its facts' rows."""
    from persistence.orders import StaleOrder

    repo = OrderRepository(engine)
    dist, sup = await make_distributor(engine, now), await make_supplier(engine, now)
    order = new_order(dist, sup, "D-stale", now)
    assert await repo.insert_new(order)
    stale = await repo.get(order.id)
    assert stale is not None
    _lock(order, at(1, now))
    await repo.save(order)
    before = await rows_of(engine, order.id)
    stale.mark_lock_failed(at(2, now), "timeout", seats_may_be_held=True)
    with pytest.raises(StaleOrder):
        await repo.save(stale)
    assert await rows_of(engine, order.id) == before
