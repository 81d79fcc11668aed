"""The PostgreSQL fast path of order moves (persistence/pg_moves.py): the hot moves (NEW,
LOCKED, FIXING, FIXED, and every other move made only of inserts) are one statement, and
they write exactly the rows the transaction of SQLAlchemy statements writes; a stale move
writes nothing; a flow whose day is closed (or has no row yet) is still booked as before;
and under real concurrency the compare-and-set still lets exactly one writer through. The
existence read asked for every create refused as sold out is one raw query too.
(PostgreSQL only: SQLite writes every move as a transaction, as it always has.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.order import DeliveryMethod, IssuedTicket, Order
from domain.status import OrderStatus
from persistence.db import make_engine
from persistence.migrate import upgrade_async
from persistence.orders import OrderRepository, StaleOrder
from persistence.settlement import close_period
from persistence.tables import (
    distributors,
    flows,
    metadata,
    order_history,
    outbox,
    periods,
    suppliers,
    tickets,
)
from tests.conftest import fresh_database_url
from tests.integration.test_move_facts import CASES, at
from tests.integration.test_persistence import (
    drop_every_connection,
    make_distributor,
    make_supplier,
    new_order,
)
from tests.support.services import PostgresServer

pytestmark = pytest.mark.parametrize("engine", ["postgresql"], indirect=True)

ONE = "one statement"
AFTER_PERIOD = "one statement, then transaction (period)"


def day_of(t: datetime) -> str:
    return t.date().isoformat()  # the repository's default time zone is UTC


async def open_day(engine: AsyncEngine, day: str, status: str = "open") -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(periods).values(period=day, status=status))


async def every_row(engine: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary-key order."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    async with engine.connect() as conn:
        for table in metadata.sorted_tables:
            q = select(table).order_by(*table.primary_key.columns)
            out[table.name] = [tuple(r) for r in (await conn.execute(q)).all()]
    return out


async def lifecycle(repo: OrderRepository, order: Order, t: datetime) -> None:
    """The hot path: NEW, LOCKED, FIXING, FIXED with tickets."""
    assert await repo.insert_new(order)
    order.mark_locked(at(1, t), "L-1", at(16, t))
    await repo.save(order)
    order.start_fixing(at(2, t))
    await repo.save(order)
    order.mark_fixed(at(3, t), (IssuedTicket("C-1", "A-1"), IssuedTicket("C-2", None)))
    await repo.save(order)


async def fixing_order(repo: OrderRepository, engine: AsyncEngine, now: datetime) -> Order:
    """An order saved as FIXING (its receivable flow booked into the open day)."""
    dist, sup = await make_distributor(engine, now), await make_supplier(engine, now)
    await open_day(engine, day_of(now))
    order = new_order(dist, sup, "D-fixing", now)
    assert await repo.insert_new(order)
    order.mark_locked(at(1, now), "L-1", at(16, now))
    order.start_fixing(at(2, now))
    await repo.save(order)
    return order


@pytest.fixture
async def second_engine(postgres: PostgresServer, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    url = fresh_database_url("postgresql", postgres, tmp_path)
    await upgrade_async(url)
    eng = make_engine(url)
    yield eng
    await eng.dispose()


async def same_parties(engine: AsyncEngine, now: datetime) -> tuple[str, str]:
    """A distributor and a supplier with the same ids in every database."""
    async with engine.begin() as conn:
        await conn.execute(
            insert(distributors).values(id="dst_same", name="d", created_at=now, updated_at=now)
        )
        await conn.execute(
            insert(suppliers).values(
                id="sup_same",
                name="s",
                gateway="sandbox",
                config={},
                created_at=now,
                updated_at=now,
            )
        )
    return "dst_same", "sup_same"


def counting_engine(engine: AsyncEngine, queries: list[str], statements: list[str]) -> AsyncEngine:
    """An engine on the same database with one connection, so its query log is the whole
    story: every query asyncpg sends goes to `queries`, every SQLAlchemy statement to
    `statements` (asyncpg calls its query loggers soon after a query, not at once)."""
    counted = make_engine(engine.url.render_as_string(hide_password=False), pool_size=1)

    @event.listens_for(counted.sync_engine, "connect")
    def _log_queries(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.driver_connection.add_query_logger(lambda q: queries.append(q.query))

    @event.listens_for(counted.sync_engine, "before_cursor_execute")
    def _count(_c: Any, _cur: Any, statement: str, *_rest: Any) -> None:
        statements.append(statement)

    return counted


async def test_every_move_writes_the_same_rows_as_the_transaction(
    engine: AsyncEngine, second_engine: AsyncEngine, now: datetime
) -> None:
    """Every case of test_move_facts (and the hot lifecycle) run twice, in two databases:
    through the one-statement path and forced through the transaction. Afterwards every
    table holds the same rows, ids and all."""
    fast = OrderRepository(engine)
    slow = OrderRepository(second_engine, one_statement=False)
    for eng, repo in ((engine, fast), (second_engine, slow)):
        dist, sup = await same_parties(eng, now)
        await lifecycle(repo, new_order(dist, sup, "D-hot", now), now)
        for case in CASES:
            method = DeliveryMethod.EXPRESS if case.express else DeliveryMethod.ETICKET
            order = new_order(dist, sup, "D-" + case.name[:40], now, delivery_method=method)
            assert await repo.insert_new(order)
            for i, step in enumerate([*case.start, case.move], start=1):
                step(order, at(i, now))
                await repo.save(order)
    fast_rows, slow_rows = await every_row(engine), await every_row(second_engine)
    for name in fast_rows:
        assert fast_rows[name] == slow_rows[name], name
    assert len(fast_rows["flows"]) > 20
    assert len(fast_rows["outbox"]) > 40
    # Only the day's first flow (its period row is made) and the negotiations' moves took
    # the transaction on the fast side; the slow side took it every time.
    assert set(fast.paths) == {ONE, AFTER_PERIOD, "transaction"}, fast.paths
    assert fast.paths[AFTER_PERIOD] == 1
    assert fast.paths[ONE] > 60
    assert set(slow.paths) == {"transaction"}


async def test_a_hot_move_is_one_query_and_no_sqlalchemy_statement(
    engine: AsyncEngine, now: datetime, postgres: PostgresServer, tmp_path: Path
) -> None:
    queries: list[str] = []
    statements: list[str] = []
    counted = counting_engine(engine, queries, statements)
    try:
        repo = OrderRepository(counted)
        dist, sup = await make_distributor(counted, now), await make_supplier(counted, now)
        await open_day(counted, day_of(now))
        await lifecycle(repo, new_order(dist, sup, "D-warm", now), now)  # prepares the shapes
        queries.clear()
        statements.clear()

        await lifecycle(repo, new_order(dist, sup, "D-counted", now), now)

        assert statements == []
        assert len(queries) == 4, queries  # NEW, LOCKED, FIXING, FIXED: one each
        assert all(q.startswith("WITH ") for q in queries)
        assert repo.paths == {ONE: 8}
    finally:
        await counted.dispose()


async def test_a_stale_move_writes_nothing(engine: AsyncEngine, now: datetime) -> None:
    repo = OrderRepository(engine)
    order = await fixing_order(repo, engine, now)
    stale = await repo.get(order.id)
    assert stale is not None
    order.cancel(at(3, now), "refused")
    await repo.save(order)
    before = await every_row(engine)
    paths = repo.paths.copy()

    stale.mark_fixed(at(4, now), (IssuedTicket("C-1"),))  # tickets, a flow, a callback
    with pytest.raises(StaleOrder):
        await repo.save(stale)

    assert await every_row(engine) == before
    assert repo.paths - paths == {ONE: 1}  # decided in the one statement
    assert stale.version == 1
    assert stale.facts


async def test_a_closed_day_books_the_flow_into_the_next_open_day(
    engine: AsyncEngine, now: datetime
) -> None:
    repo = OrderRepository(engine)
    dist, sup = await make_distributor(engine, now), await make_supplier(engine, now)
    day, next_day = day_of(now), day_of(now + timedelta(days=1))
    await open_day(engine, day, "closed")
    first = new_order(dist, sup, "D-late-1", now)
    second = new_order(dist, sup, "D-late-2", now)
    await lifecycle(repo, first, now)  # the next day has no row yet: the transaction makes it
    await lifecycle(repo, second, now)  # it has one now: still the closed day's flows
    async with engine.connect() as conn:
        booked = (
            await conn.execute(
                select(flows.c.order_id, flows.c.kind, flows.c.basis_period, flows.c.booked_period)
            )
        ).all()
        days = (await conn.execute(select(periods.c.period, periods.c.status))).all()
    assert sorted(booked) == sorted(
        (o.id, kind, day, next_day)
        for o in (first, second)
        for kind in ("receivable", "settlement")
    )
    assert sorted(days) == [(day, "closed"), (next_day, "open")]
    # Each flow's move went to the transaction, which booked it; the others were one statement.
    assert repo.paths == {ONE: 4, AFTER_PERIOD: 4}


async def test_a_day_closing_while_moves_book_into_it(engine: AsyncEngine, now: datetime) -> None:
    """Moves racing a close: each flow is in the closed day's statement or the next day."""
    repo = OrderRepository(engine)
    dist, sup = await make_distributor(engine, now), await make_supplier(engine, now)
    await open_day(engine, day_of(now))
    orders = [new_order(dist, sup, f"D-race-{i}", now) for i in range(30)]
    for o in orders:
        assert await repo.insert_new(o)

    async def lock(o: Order) -> None:
        o.mark_locked(now, "L", at(15, now))
        await repo.save(o)

    tasks = [asyncio.create_task(lock(o)) for o in orders]
    await asyncio.sleep(0)
    statement, _ = await close_period(engine, day_of(now), tz=UTC, now=now + timedelta(days=1))
    await asyncio.gather(*tasks)
    async with engine.connect() as conn:
        in_day = await conn.scalar(select(func.count()).where(flows.c.booked_period == day_of(now)))
        total = await conn.scalar(select(func.count()).select_from(flows))
    assert total == 30
    assert statement.body["flows"] == in_day


async def test_concurrent_lifecycles_of_many_orders(engine: AsyncEngine, now: datetime) -> None:
    repo = OrderRepository(engine)
    dist, sup = await make_distributor(engine, now), await make_supplier(engine, now)
    await open_day(engine, day_of(now))
    orders = [new_order(dist, sup, f"D-many-{i}", now) for i in range(48)]

    await asyncio.gather(*(lifecycle(repo, o, now) for o in orders))

    assert repo.paths == {ONE: 4 * 48}
    loaded = await repo.get_many([o.id for o in orders])
    assert [o.status for o in loaded] == [OrderStatus.FIXED] * 48
    assert loaded == orders
    async with engine.connect() as conn:
        for table, per_order in ((order_history, 4), (tickets, 2), (flows, 2), (outbox, 3)):
            n = await conn.scalar(select(func.count()).select_from(table))
            assert n == per_order * 48, table.name


async def test_racing_saves_of_one_order_exactly_one_wins(
    engine: AsyncEngine, now: datetime
) -> None:
    repo = OrderRepository(engine)
    order = await fixing_order(repo, engine, now)
    copies = []
    for i in range(2):
        c = await repo.get(order.id)
        assert c is not None
        c.mark_fixed(at(3, now), (IssuedTicket(f"C{i}-1"), IssuedTicket(f"C{i}-2")))
        copies.append(c)
    paths = repo.paths.copy()

    results = await asyncio.gather(*(repo.save(c) for c in copies), return_exceptions=True)

    winners = [i for i, r in enumerate(results) if r is None]
    assert len(winners) == 1, results
    assert all(isinstance(r, StaleOrder) for r in results if r is not None)
    assert repo.paths - paths == {ONE: 2}
    w = winners[0]
    async with engine.connect() as conn:
        codes = sorted((await conn.execute(select(tickets.c.code))).scalars())
        settlement = await conn.scalar(
            select(func.count()).where(flows.c.order_id == order.id, flows.c.kind == "settlement")
        )
        fixed_callbacks = await conn.scalar(
            select(func.count()).where(outbox.c.body.contains('"status":"FIXED"'))
        )
    assert codes == [f"C{w}-1", f"C{w}-2"]
    assert (settlement, fixed_callbacks) == (1, 1)


async def test_a_refused_move_fails_as_the_transaction_does_with_values_hidden(
    engine: AsyncEngine, now: datetime
) -> None:
    """A duplicate NEW is False; a NEW the database refuses (an unknown distributor) raises
    SQLAlchemy's IntegrityError, its message without the row's values; neither writes."""
    repo = OrderRepository(engine)
    dist, sup = await make_distributor(engine, now), await make_supplier(engine, now)
    order = new_order(dist, sup, "D-dup", now)
    assert await repo.insert_new(order)
    assert not await repo.insert_new(new_order(dist, sup, "D-dup", now))

    stranger = new_order("dst_nobody_knows", sup, "D-unknown", now)
    with pytest.raises(IntegrityError) as refused:
        await repo.insert_new(stranger)
    message = str(refused.value)
    assert "dst_nobody_knows" not in message, message
    assert "+86" not in message, message
    assert "foreign key" in message
    assert await repo.get(stranger.id) is None
    assert repo.paths["one statement, then transaction (failed)"] == 2
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM orders")) == 1


async def test_a_dropped_connection_is_replaced_and_the_move_made(
    engine: AsyncEngine, now: datetime
) -> None:
    """The server drops every pooled connection: the one statement fails on its dead
    connection (which is discarded), the move is made by the transaction's second attempt
    on a fresh connection, and the next move is one statement again."""
    repo = OrderRepository(engine)
    dist, sup = await make_distributor(engine, now), await make_supplier(engine, now)
    await open_day(engine, day_of(now))
    order = new_order(dist, sup, "D-drop", now)
    assert await repo.insert_new(order)
    await drop_every_connection(repo, order.id, engine.url.render_as_string(hide_password=False))
    paths = repo.paths.copy()

    order.mark_locked(at(1, now), "L-1", at(16, now))
    await repo.save(order)
    order.start_fixing(at(2, now))
    await repo.save(order)

    assert repo.paths - paths == {"one statement, then transaction (failed)": 1, ONE: 2}
    assert await repo.get(order.id) == order


async def test_exists_is_one_raw_query_and_survives_dropped_connections(
    engine: AsyncEngine, now: datetime, caplog: pytest.LogCaptureFixture
) -> None:
    """`exists` (asked for every create refused as sold out) is one query on the pool's raw
    connection, no SQLAlchemy statement; it tells an order that is there from one that is
    not; and when the server has dropped the pooled connections it still answers (through
    SQLAlchemy, once), and then on the raw connection again."""
    queries: list[str] = []
    statements: list[str] = []
    counted = counting_engine(engine, queries, statements)
    try:
        repo = OrderRepository(counted)
        dist, sup = await make_distributor(counted, now), await make_supplier(counted, now)
        order = new_order(dist, sup, "D-exists", now)
        assert await repo.insert_new(order)
        await asyncio.sleep(0.05)  # (the insert's query log arrives)
        queries.clear()
        statements.clear()

        assert await repo.exists(order.id) is True
        assert await repo.exists(order.id + "x") is False

        await asyncio.sleep(0.05)
        assert statements == []
        assert len(queries) == 2
        assert all(q.startswith("SELECT EXISTS") for q in queries)
        assert "raw exists read failed" not in caplog.text
    finally:
        await counted.dispose()

    repo = OrderRepository(engine)
    await drop_every_connection(repo, order.id, engine.url.render_as_string(hide_password=False))
    caplog.clear()
    # The raw read fails on its dead connection; the SQLAlchemy read answers (its own first
    # try meets a dead connection too, and SQLAlchemy replaces the pool's connections).
    assert await repo.exists(order.id) is True
    assert "raw exists read failed" in caplog.text
    caplog.clear()
    # Then the raw read works again, on a new connection.
    assert await repo.exists(order.id) is True
    assert await repo.exists("no-such-order") is False
    assert "raw exists read failed" not in caplog.text
