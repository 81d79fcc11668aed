"""Real-name orders in the database: one document holds at most `tickets_per_id` tickets of a
session across every distributor, decided by the database under real concurrency; an order
that lets its seats go frees its documents; documents are kept sealed, and the table that is
searched holds none."""

from __future__ import annotations

import asyncio
import os
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.identity import Attendee, AttendeeLimit, IdType, check_document, id_card_check_char
from domain.order import IssuedTicket, Order
from persistence.identity import IdentityVault
from persistence.orders import OrderRepository
from persistence.tables import document_claims, metadata, sessions, shows
from tests.integration.test_persistence import make_distributor, make_supplier, new_order

VAULT = IdentityVault(os.urandom(32))


def _id_card(seq: int) -> str:
    first17 = f"31010419880212{seq:03d}"
    return first17 + id_card_check_char(first17)


def _attendee(seq: int, name: str = "韩梅梅") -> Attendee:
    return Attendee(name, check_document(IdType.ID_CARD, _id_card(seq), today=date(2026, 12, 1)))


def _real_name_order(
    distributor_id: str,
    supplier_id: str,
    ref: str,
    now: datetime,
    *people: Attendee,
    per_id: int = 1,
) -> Order:
    order = new_order(distributor_id, supplier_id, ref, now, quantity=len(people))
    order.attendees = people
    order.tickets_per_id = per_id
    return order


async def test_one_document_one_ticket_across_distributors_under_concurrency(
    engine: AsyncEngine, now: datetime
) -> None:
    repo = OrderRepository(engine, vault=VAULT)
    sup = await make_supplier(engine, now)
    distributors = [await make_distributor(engine, now, f"d{i}") for i in range(8)]
    same_person = _attendee(7)

    async def create(i: int) -> bool | AttendeeLimit:
        order = _real_name_order(distributors[i], sup, f"RN-{i}", now, same_person)
        try:
            return await repo.insert_new(order)
        except AttendeeLimit as refused:
            return refused

    results = await asyncio.gather(*(create(i) for i in range(8)))
    assert results.count(True) == 1, results
    refusals = [r for r in results if isinstance(r, AttendeeLimit)]
    assert len(refusals) == 7
    assert {r.index for r in refusals} == {0}
    assert await repo.documents_held("ses_x") == 1
    # A refused create wrote nothing: only the winner's order exists.
    async with engine.connect() as conn:
        count = await conn.scalar(text("SELECT count(*) FROM orders"))
    assert count == 1


async def test_the_limit_counts_tickets_and_names_the_attendee_over_it(
    engine: AsyncEngine, now: datetime
) -> None:
    repo = OrderRepository(engine, vault=VAULT)
    sup = await make_supplier(engine, now)
    d = await make_distributor(engine, now)
    a, b = _attendee(1), _attendee(2)
    assert await repo.insert_new(_real_name_order(d, sup, "T-1", now, a, b, per_id=2))
    assert await repo.insert_new(_real_name_order(d, sup, "T-2", now, a, per_id=2))
    with pytest.raises(AttendeeLimit) as over:  # b is free, a has its 2 tickets
        await repo.insert_new(_real_name_order(d, sup, "T-3", now, b, a, per_id=2))
    assert (over.value.index, over.value.tickets_per_id) == (1, 2)
    assert await repo.documents_held("ses_x") == 3


async def test_an_order_that_lets_its_seats_go_frees_its_documents(
    engine: AsyncEngine, now: datetime
) -> None:
    repo = OrderRepository(engine, vault=VAULT)
    sup = await make_supplier(engine, now)
    d = await make_distributor(engine, now)
    person = _attendee(3)
    first = _real_name_order(d, sup, "F-1", now, person)
    assert await repo.insert_new(first)
    first.mark_locked(now, "L", now + timedelta(minutes=15))
    await repo.save(first)
    with pytest.raises(AttendeeLimit):
        await repo.insert_new(_real_name_order(d, sup, "F-2", now, person))
    first.cancel(now, "the buyer changed their mind")
    await repo.save(first)
    assert await repo.documents_held("ses_x") == 0
    assert await repo.insert_new(_real_name_order(d, sup, "F-3", now, person))
    # An order that failed its lock frees them too.
    failed = _real_name_order(d, sup, "F-4", now, _attendee(4))
    assert await repo.insert_new(failed)
    failed.mark_lock_failed(now, "sold_out")
    await repo.save(failed)
    assert await repo.documents_held("ses_x") == 1


async def test_documents_are_sealed_on_the_row_and_the_claims_hold_no_number(
    engine: AsyncEngine, now: datetime
) -> None:
    repo = OrderRepository(engine, vault=VAULT)
    sup = await make_supplier(engine, now)
    d = await make_distributor(engine, now)
    person = _attendee(5, name="李雷")
    order = _real_name_order(d, sup, "S-1", now, person)
    assert await repo.insert_new(order)
    loaded = await repo.get(order.id)
    assert loaded is not None
    assert loaded.attendees == (person,)
    assert loaded.tickets_per_id == 1
    number = person.document.number
    async with engine.connect() as conn:
        claims = (await conn.execute(select(document_claims))).all()
        # Every row of every table: what a dump of the database holds.
        dump = [(t.name, (await conn.execute(select(t))).all()) for t in metadata.sorted_tables]
    assert claims
    assert number not in repr(dump)
    assert "李雷" not in repr(dump)
    # Without the key, the order cannot be read as if it had no attendees.
    with pytest.raises(RuntimeError, match="no key"):
        await OrderRepository(engine).get(order.id)


async def test_creates_sharing_documents_in_opposite_orders_never_deadlock(
    engine: AsyncEngine, now: datetime
) -> None:
    """Two creates naming documents A and B in opposite orders: one wins, the other is
    refused (the claims are taken in one order, so the database never sees a deadlock)."""
    repo = OrderRepository(engine, vault=VAULT)
    sup = await make_supplier(engine, now)
    d1, d2 = await make_distributor(engine, now, "d1"), await make_distributor(engine, now, "d2")
    for round_ in range(10):
        a, b = _attendee(500 + 2 * round_), _attendee(501 + 2 * round_)

        async def create(d: str, ref: str, *people: Attendee) -> bool | AttendeeLimit:
            try:
                return await repo.insert_new(_real_name_order(d, sup, ref, now, *people))
            except AttendeeLimit as refused:
                return refused

        results = await asyncio.gather(
            create(d1, f"X-{round_}", a, b), create(d2, f"Y-{round_}", b, a)
        )
        assert sorted(type(r).__name__ for r in results) == ["AttendeeLimit", "bool"], results


async def test_attendees_are_deleted_after_their_retention_and_the_orders_stay(
    engine: AsyncEngine, now: datetime
) -> None:
    """Time moved forward: past the retention after its session, an order keeps its status,
    tickets and flows, and loses its attendees (and their claims)."""
    repo = OrderRepository(engine, vault=VAULT)
    sup = await make_supplier(engine, now)
    d = await make_distributor(engine, now)
    starts = now + timedelta(days=7)
    async with engine.begin() as conn:  # the orders' session, starting in a week
        await conn.execute(
            insert(shows).values(
                id="shw_x", supplier_id=sup, ref="x", title="t", city="c", category="k",
                venue="v", starts_at=starts, status="online", updated_at=now,
            )
        )  # fmt: skip
        await conn.execute(
            insert(sessions).values(
                id="ses_x", show_id="shw_x", ref="x", starts_at=starts, status="online",
                updated_at=now,
            )
        )  # fmt: skip
    order = _real_name_order(d, sup, "K-1", now, _attendee(9))
    assert await repo.insert_new(order)
    order.mark_locked(now, "L", now + timedelta(minutes=15))
    order.start_fixing(now)
    order.mark_fixed(now, (IssuedTicket("T-1", None),))
    await repo.save(order)
    retention = timedelta(days=180)
    # The timer at time T deletes the attendees of sessions before T - retention. Not yet:
    # the session is still to come, then within its retention.
    assert await repo.purge_attendees(now - retention) == 0
    assert await repo.purge_attendees(now + timedelta(days=7 + 179) - retention) == 0
    later = now + timedelta(days=7 + 181)
    assert await repo.purge_attendees(later - retention) == 1
    kept = await repo.get(order.id)
    assert kept is not None
    assert (kept.status.value, kept.tickets, kept.attendees) == ("FIXED", order.tickets, ())
    assert await repo.documents_held("ses_x") == 0
    assert await repo.purge_attendees(later - retention) == 0  # nothing left to delete
