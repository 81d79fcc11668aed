"""Flows, the settlement book and statements against both backends (SQLite, PostgreSQL).

Orders move through the real `OrderRepository.save`, which writes their flows in the move's
transaction; the book rebuilt from the table must equal the plain-SQL recomputation; closing
a period freezes its statement, and late flows go to the next open day without touching it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from actors.settlement_actor import SettlementService
from domain.flows import flows_for
from domain.ids import order_id_for
from domain.order import DeliveryMethod, IssuedTicket, Order, SupplierRefund
from domain.settlement import PeriodNotOver, digest_of
from persistence.accounts import AccountRepository
from persistence.catalog import CatalogRepository
from persistence.ledger import write_flows
from persistence.orders import OrderRepository
from persistence.secretbox import SecretBox
from persistence.settlement import (
    close_period,
    flows_of_period,
    get_statement,
    list_periods,
    sql_snapshot,
)
from persistence.tables import flows, periods

TZ = ZoneInfo("Asia/Shanghai")
# Days in Shanghai: 2026-03-01 00:00 is 2026-02-28 16:00 UTC.
DAY1 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)  # 10:00 on 2026-03-01
P1, P2, P3 = "2026-03-01", "2026-03-02", "2026-03-03"
AFTER = datetime(2026, 3, 10, tzinfo=UTC)  # "now" for closing: every period above is over
TICKETS = (IssuedTicket("T-1"),)


async def parties(engine: AsyncEngine) -> tuple[str, str]:
    now = DAY1
    d = await AccountRepository(engine, SecretBox(bytes(range(32)))).create_distributor("d", now)
    s = await CatalogRepository(engine).create_supplier("s", "sandbox", {"k": 1}, now)
    return d.id, s.id


class Shop:
    """Orders through the real repository, at injected times."""

    def __init__(self, engine: AsyncEngine, distributor: str, supplier: str) -> None:
        self.repo = OrderRepository(engine, tz=TZ)
        self.distributor = distributor
        self.supplier = supplier
        self.n = 0

    async def order(self, at: datetime) -> Order:
        self.n += 1
        ref = f"D-{self.n}"
        order = Order(
            id=order_id_for(self.distributor, ref),
            distributor_id=self.distributor,
            distributor_order_id=ref,
            supplier_id=self.supplier,
            session_id="ses_x",
            tier_id="tir_x",
            quantity=2,
            unit_price=36000,
            settlement_price=32400,
            face_value=38000,
            currency="CNY",
            delivery_method=DeliveryMethod.ETICKET,
            request_hash="ab" * 32,
            created_at=at,
            updated_at=at,
        )
        order.begin(at)
        assert await self.repo.insert_new(order)
        return order

    async def move(self, order: Order, step: Callable[[Order], None]) -> Order:
        step(order)
        await self.repo.save(order)
        return order

    async def locked(self, at: datetime) -> Order:
        order = await self.order(at)
        return await self.move(order, lambda o: o.mark_locked(at, "r", at + timedelta(hours=1)))

    async def fixed(self, at: datetime) -> Order:
        order = await self.locked(at)
        await self.move(order, lambda o: o.start_fixing(at))
        return await self.move(order, lambda o: o.mark_fixed(at + timedelta(minutes=1), TICKETS))

    async def refunded(self, order: Order, at: datetime, supplier_at: datetime) -> Order:
        await self.move(order, lambda o: o.start_refund(at, "refund"))
        return await self.move(
            order,
            lambda o: o.mark_refunded(
                at + timedelta(minutes=1), SupplierRefund(supplier_at, "platform")
            ),
        )


async def flow_count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(flows))).scalar_one())


async def book_of(engine: AsyncEngine) -> SettlementService:
    service = SettlementService(engine)
    await service.rebuild()
    return service


async def assert_book_equals_sql(engine: AsyncEngine, *extra: str) -> None:
    service = await book_of(engine)
    for period in sorted({*service.book.periods(), *extra}):
        assert service.book.snapshot(period) == await sql_snapshot(engine, period), period


@pytest.fixture
async def shop(engine: AsyncEngine) -> Shop:
    return Shop(engine, *await parties(engine))


async def test_flows_written_by_moves_are_unique_and_never_duplicated(
    engine: AsyncEngine, shop: Shop
) -> None:
    a = await shop.fixed(DAY1)
    b = await shop.locked(DAY1)
    await shop.move(b, lambda o: o.cancel(DAY1 + timedelta(hours=20), "canceled"))
    await shop.refunded(a, DAY1 + timedelta(days=1), DAY1 + timedelta(days=1))
    assert await flow_count(engine) == 6  # a: R+ S+ R- S-; b: R+ R-

    # Saving again, and writing every flow of the orders once more, adds nothing.
    for order in (a, b):
        loaded = await shop.repo.get(order.id)
        assert loaded is not None
        await shop.repo.save(loaded)
        async with engine.begin() as conn:
            await write_flows(conn, flows_for(loaded, DAY1 + timedelta(days=1)), tz=TZ, now=AFTER)
    assert await flow_count(engine) == 6

    async with engine.connect() as conn:
        rows = (await conn.execute(select(flows).order_by(flows.c.id))).all()
    keys = [(r.order_id, r.kind, r.sign, r.refund_no) for r in rows]
    assert len(set(keys)) == len(keys)
    by_key = {(r.order_id, r.kind, r.sign): r for r in rows}
    assert by_key[(a.id, "receivable", 1)].amount == 72000
    assert by_key[(a.id, "settlement", 1)].amount == 64800
    assert by_key[(b.id, "receivable", -1)].basis_period == P2  # 20:00 UTC is the next day
    assert {r.currency for r in rows} == {"CNY"}


async def test_sql_group_by_equals_the_book_rebuilt_from_the_table(
    engine: AsyncEngine, shop: Shop
) -> None:
    a = await shop.fixed(DAY1)
    await shop.refunded(a, DAY1 + timedelta(days=2), DAY1 + timedelta(days=1, hours=3))
    b = await shop.fixed(DAY1 + timedelta(hours=13))  # 23:00 on P1 + ... fixed at 23:01
    c = await shop.locked(DAY1 + timedelta(days=1))
    await shop.move(c, lambda o: o.cancel(DAY1 + timedelta(days=1, hours=1), "canceled"))
    await shop.locked(DAY1 + timedelta(hours=14))  # 00:00 on P2
    await assert_book_equals_sql(engine, "2026-02-28", "2026-03-09")

    service = await book_of(engine)
    p1 = service.book.snapshot(P1).as_dict()
    assert p1["distributors"][0]["receivable_plus"] == 2 * 72000
    assert p1["suppliers"][0]["settlement_plus"] == 2 * 64800
    p3 = service.book.snapshot(P3).as_dict()
    assert p3["distributors"][0]["receivable_minus"] == 72000
    assert p3["checks"] == {
        "period": False,  # day 3 carries only the distributor's refund
        "to_date": True,
        "orders": True,
        "violating_orders_count": 0,
        "violating_orders": [],
    }
    assert p3["holds"] is True
    assert service.book.order_nets(b.id) == (72000, 64800)


async def test_tailing_picks_up_new_flows_and_matches_a_rebuild(
    engine: AsyncEngine, shop: Shop
) -> None:
    service = await book_of(engine)
    assert service.book.periods() == []
    order = await shop.fixed(DAY1)
    assert await service.tail() == 2
    await shop.refunded(order, DAY1 + timedelta(days=1), DAY1 + timedelta(days=1))
    await service.catch_up()
    rebuilt = await book_of(engine)
    for period in (P1, P2):
        assert service.book.snapshot(period) == rebuilt.book.snapshot(period)
        assert service.book.snapshot(period) == await sql_snapshot(engine, period)
    assert await service.tail() == 0


async def test_close_then_late_flows_leave_the_statement_unchanged(
    engine: AsyncEngine, shop: Shop
) -> None:
    a = await shop.fixed(DAY1)
    await shop.locked(DAY1 + timedelta(hours=1))
    statement, created = await close_period(engine, P1, tz=TZ, now=AFTER)
    assert created
    assert statement.digest == digest_of(statement.body)
    assert statement.body == (await sql_snapshot(engine, P1)).as_dict()
    assert statement.body["distributors"][0]["receivable_plus"] == 2 * 72000

    # Late: an order locked (and a refund supplier-dated) inside the closed day.
    late = await shop.locked(DAY1 + timedelta(hours=2))
    await shop.refunded(a, DAY1 + timedelta(days=1), DAY1 + timedelta(hours=5))
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(
                    flows.c.order_id,
                    flows.c.kind,
                    flows.c.sign,
                    flows.c.basis_period,
                    flows.c.booked_period,
                )
            )
        ).all()
    booked = {(r.order_id, r.kind, r.sign): (r.basis_period, r.booked_period) for r in rows}
    assert booked[(late.id, "receivable", 1)] == (P1, P2)
    assert booked[(a.id, "settlement", 1)] == (P1, P1)  # written before the close
    assert booked[(a.id, "settlement", -1)] == (P1, P2)  # the supplier's refund time is in P1
    assert booked[(a.id, "receivable", -1)] == (P2, P2)

    again, created = await close_period(engine, P1, tz=TZ, now=AFTER + timedelta(days=1))
    assert not created
    assert again == statement  # idempotent: the stored statement, same digest and time
    stored = await get_statement(engine, P1)
    assert stored == statement
    assert stored is not None
    assert digest_of(stored.body) == statement.digest
    # The book agrees the closed day did not move, and the next day carries the late flows.
    service = await book_of(engine)
    assert service.book.snapshot(P1).as_dict() == statement.body
    p2 = service.book.snapshot(P2).as_dict()
    assert p2["distributors"][0]["receivable_plus"] == 72000
    assert p2["suppliers"][0]["settlement_minus"] == 64800
    assert (await service.snapshot(P1, tz=TZ)).as_dict()["closed"] is True
    assert (await service.snapshot(P1, tz=TZ)).as_dict()["digest"] == statement.digest
    await assert_book_equals_sql(engine)
    # The CSV of the period shows the flows booked into it, nothing else.
    assert {r["order_id"] for r in await flows_of_period(engine, P2)} == {late.id, a.id}
    assert sum(r["signed_amount"] for r in await flows_of_period(engine, P1)) == (2 * 72000 + 64800)


async def test_close_creates_a_missing_period_and_refuses_one_not_over(
    engine: AsyncEngine,
) -> None:
    now = datetime(2026, 3, 5, 15, 59, tzinfo=UTC)  # 23:59 on 2026-03-05 in Shanghai
    with pytest.raises(PeriodNotOver):
        await close_period(engine, "2026-03-05", tz=TZ, now=now)
    with pytest.raises(PeriodNotOver):
        await close_period(engine, "2026-03-06", tz=TZ, now=now)
    statement, created = await close_period(engine, "2026-03-04", tz=TZ, now=now)
    assert created
    assert statement.body["flows"] == 0
    # 16:00 UTC is already the 6th in Shanghai: the 5th is over.
    _, created = await close_period(engine, "2026-03-05", tz=TZ, now=now + timedelta(minutes=1))
    assert created
    assert [(p, s) for p, s, _ in await list_periods(engine)] == [
        ("2026-03-04", "closed"),
        ("2026-03-05", "closed"),
    ]


async def test_concurrent_writers_and_a_close_never_change_a_statement(
    engine: AsyncEngine, shop: Shop
) -> None:
    """Writers racing a close: every flow lands either in the statement or in the next day."""

    async def writer(i: int) -> None:
        await shop.locked(DAY1 + timedelta(minutes=i))

    tasks = [asyncio.create_task(writer(i)) for i in range(20)]
    await asyncio.sleep(0)
    statement, _ = await close_period(engine, P1, tz=TZ, now=AFTER)
    await asyncio.gather(*tasks)
    service = await book_of(engine)
    total = sum(
        d["receivable_plus"]
        for p in service.book.periods()
        for d in service.book.snapshot(p).as_dict()["distributors"]
    )
    assert total == 20 * 72000
    assert service.book.snapshot(P1).as_dict() == statement.body
    stored = await get_statement(engine, P1)
    assert stored is not None
    assert stored.digest == statement.digest


# PostgreSQL only: SQLite runs one writer at a time, so its ids always commit in order.
@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
async def test_tail_sees_flows_that_commit_out_of_id_order(engine: AsyncEngine, shop: Shop) -> None:
    assert engine.dialect.name == "postgresql"
    first = await shop.order(DAY1)
    second = await shop.order(DAY1)
    async with engine.begin() as conn:
        # The day's row exists already (as it does after its first flow): otherwise the fast
        # writer would wait for the slow one's uncommitted insert of it.
        await conn.execute(periods.insert().values(period=P1, status="open"))
    service = await book_of(engine)

    def locked_flows(order: Order) -> Any:
        order.mark_locked(DAY1, "r", DAY1 + timedelta(hours=1))
        return flows_for(order)

    async with engine.connect() as slow:
        tx = await slow.begin()
        await write_flows(slow, locked_flows(first), tz=TZ, now=DAY1)  # takes id n, uncommitted
        async with engine.begin() as fast:
            await write_flows(fast, locked_flows(second), tz=TZ, now=DAY1)  # id n+1, committed
        assert await service.tail() == 1
        assert len(service.gaps) == 1
        await tx.commit()
    assert await service.tail() == 1  # the late id was asked for again
    assert service.gaps == []
    assert service.book.snapshot(P1) == await sql_snapshot(engine, P1)
    assert service.book.snapshot(P1).as_dict()["distributors"][0]["receivable_plus"] == 2 * 72000


async def test_a_gap_is_given_up_after_the_grace_period(engine: AsyncEngine, shop: Shop) -> None:
    clock = [0.0]
    service = SettlementService(engine, gap_grace_seconds=5.0, clock=lambda: clock[0])
    await shop.locked(DAY1)
    async with engine.begin() as conn:
        # A burnt id (as a rolled-back insert or ON CONFLICT DO NOTHING leaves on PostgreSQL).
        top = (await conn.execute(select(func.max(flows.c.id)))).scalar_one()
        row = dict((await conn.execute(select(flows).where(flows.c.id == top))).one()._mapping)
        row.update(id=top + 2, sign=-1)
        await conn.execute(flows.insert().values(row))
    await service.tail()
    assert service.gaps == [top + 1]
    clock[0] = 6.0
    await service.tail()
    assert service.gaps == []
    async with engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(periods))).scalar_one() >= 1
