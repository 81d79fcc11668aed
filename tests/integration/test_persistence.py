"""The persistence layer against both backends: SQLite (aiosqlite) and a real PostgreSQL.

Every test takes the parametrized `engine` fixture of tests/conftest.py, a freshly migrated
database, so each runs once per backend.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.grants import CatalogItem, GrantScope
from domain.ids import order_id_for
from domain.money import Money
from domain.order import DeliveryMethod, HistoryEntry, IssuedTicket, Moved, Order
from domain.signing import KeyType
from domain.status import DeliveryStatus, OrderStatus
from persistence.accounts import ADMIN, DISTRIBUTOR, AccountRepository
from persistence.catalog import CatalogRepository, catalog_id
from persistence.db import make_engine, statement_reads
from persistence.migrate import alembic_config, upgrade_async
from persistence.nonces import DbNonceStore
from persistence.orders import OrderRepository, StaleOrder
from persistence.secretbox import SecretBox, SecretBoxError
from persistence.tables import (
    api_keys,
    distributors,
    grants,
    metadata,
    order_history,
    orders,
    shows,
    tickets,
    tiers,
)
from suppliers.gateway import Catalog, CatalogSession, CatalogShow, CatalogTier
from tests.support.database import terminate_connections
from tests.support.services import PostgresServer

MASTER_KEY = bytes(range(32))
BIG = 9_007_199_254_740_993  # 2**53 + 1: the first integer a float64 cannot hold
CST = timezone(timedelta(hours=8))


# --------------------------------------------------------------------------- helpers


def url_of(engine: AsyncEngine) -> str:
    return engine.url.render_as_string(hide_password=False)


def is_utc(dt: datetime | None) -> bool:
    return dt is not None and dt.tzinfo is not None and dt.utcoffset() == timedelta(0)


def head_revision(url: str) -> str:
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    assert head is not None
    return head


async def table_names(engine: AsyncEngine) -> set[str]:
    def names(c: Connection) -> list[str]:
        return sqlalchemy.inspect(c).get_table_names()

    async with engine.connect() as conn:
        return set(await conn.run_sync(names))


async def schema_snapshot(engine: AsyncEngine) -> dict[str, Any]:
    """Tables with their columns, indexes, unique constraints and foreign keys."""

    def describe(c: Connection) -> dict[str, Any]:
        insp = sqlalchemy.inspect(c)
        return {
            t: (
                [(col["name"], str(col["type"]), col["nullable"]) for col in insp.get_columns(t)],
                sorted((i["name"] or "", tuple(i["column_names"])) for i in insp.get_indexes(t)),
                sorted(tuple(u["column_names"]) for u in insp.get_unique_constraints(t)),
                sorted(
                    (tuple(f["constrained_columns"]), f["referred_table"])
                    for f in insp.get_foreign_keys(t)
                ),
            )
            for t in insp.get_table_names()
        }

    async with engine.connect() as conn:
        return await conn.run_sync(describe)


async def count(engine: AsyncEngine, table: sqlalchemy.Table, *where: Any) -> int:
    async with engine.connect() as conn:
        n = (await conn.execute(select(func.count()).select_from(table).where(*where))).scalar()
    assert isinstance(n, int)
    return n


async def make_distributor(engine: AsyncEngine, now: datetime, name: str = "dist") -> str:
    return (await AccountRepository(engine, SecretBox(MASTER_KEY)).create_distributor(name, now)).id


async def make_supplier(engine: AsyncEngine, now: datetime, name: str = "sup") -> str:
    return (await CatalogRepository(engine).create_supplier(name, "sandbox", {"k": 1}, now)).id


def new_order(
    distributor_id: str,
    supplier_id: str,
    distributor_order_id: str,
    now: datetime,
    **overrides: Any,
) -> Order:
    """A NEW order with its first history entry, as the order actor builds it."""
    order = Order(
        id=order_id_for(distributor_id, distributor_order_id),
        distributor_id=distributor_id,
        distributor_order_id=distributor_order_id,
        supplier_id=supplier_id,
        session_id="ses_x",
        tier_id="tir_x",
        quantity=2,
        unit_price=36000,
        settlement_price=32400,
        face_value=38000,
        currency="CNY",
        delivery_method=DeliveryMethod.ETICKET,
        request_hash="ab" * 32,
        created_at=now,
        updated_at=now,
        buyer={"name": "Li Lei", "phone": "+86 138 0000 0000"},
        callback_url="https://dist.example/cb",
    )
    for k, v in overrides.items():
        setattr(order, k, v)
    order.begin(order.created_at)
    return order


async def history_rows(engine: AsyncEngine, order_id: str) -> list[tuple[int, str, datetime]]:
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(order_history.c.seq, order_history.c.status, order_history.c.at)
                .where(order_history.c.order_id == order_id)
                .order_by(order_history.c.seq)
            )
        ).all()
    return [(r.seq, r.status, r.at) for r in rows]


async def order_row(engine: AsyncEngine, order_id: str) -> dict[str, Any]:
    async with engine.connect() as conn:
        row = (await conn.execute(select(orders).where(orders.c.id == order_id))).one()
    return dict(row._mapping)


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(MASTER_KEY)


@pytest.fixture
async def parties(engine: AsyncEngine, now: datetime) -> tuple[str, str]:
    """A distributor and a supplier, which orders refer to."""
    return await make_distributor(engine, now), await make_supplier(engine, now)


# --------------------------------------------------------------------------- migrations


async def test_every_table_of_the_metadata_exists(engine: AsyncEngine) -> None:
    names = await table_names(engine)
    assert set(metadata.tables) <= names
    assert "alembic_version" in names


async def test_upgrade_twice_is_a_no_op(engine: AsyncEngine, now: datetime) -> None:
    dist = await make_distributor(engine, now, "kept")
    before = await schema_snapshot(engine)

    await upgrade_async(url_of(engine))

    assert await schema_snapshot(engine) == before
    async with engine.connect() as conn:
        versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
    assert [v[0] for v in versions] == [head_revision(url_of(engine))]
    # the data is still there
    assert await count(engine, distributors, distributors.c.id == dist) == 1


async def test_migrations_match_the_metadata(engine: AsyncEngine) -> None:
    """No drift between tables.py and what the migrations build: tables, columns, indexes,
    unique constraints and foreign keys (type comparison is left out: reflected types on
    SQLite are only approximations)."""

    def diff(c: Connection) -> list[Any]:
        ctx = MigrationContext.configure(c, opts={"compare_type": False})
        return list(compare_metadata(ctx, metadata))

    async with engine.connect() as conn:
        changes = await conn.run_sync(diff)
    assert changes == []


async def test_schema_has_the_expected_keys_and_indexes(engine: AsyncEngine) -> None:
    def describe(c: Connection) -> dict[str, Any]:
        insp = sqlalchemy.inspect(c)
        return {
            "orders_uq": [u["column_names"] for u in insp.get_unique_constraints("orders")],
            "orders_ix": {i["name"] for i in insp.get_indexes("orders")},
            "nonces_pk": insp.get_pk_constraint("nonces")["constrained_columns"],
            "tickets_pk": insp.get_pk_constraint("tickets")["constrained_columns"],
            "history_uq": [u["column_names"] for u in insp.get_unique_constraints("order_history")],
        }

    async with engine.connect() as conn:
        d = await conn.run_sync(describe)
    assert ["distributor_id", "distributor_order_id"] in d["orders_uq"]
    assert {
        "ix_orders_status",
        "ix_orders_supplier_status",
        "ix_orders_distributor_updated",
    } <= d["orders_ix"]
    assert d["nonces_pk"] == ["key_id", "nonce"]
    assert d["tickets_pk"] == ["order_id", "code"]
    assert ["order_id", "seq"] in d["history_uq"]


# --------------------------------------------------------------------------- orders


async def test_insert_new_then_get_returns_an_equal_order(
    engine: AsyncEngine, now: datetime, parties: tuple[str, str]
) -> None:
    dist, sup = parties
    repo = OrderRepository(engine)
    created = now + timedelta(microseconds=123_456)
    order = new_order(
        dist,
        sup,
        "D-1",
        created,
        delivery_method=DeliveryMethod.EXPRESS,
        delivery_address="1 Road, Shanghai",
        buyer={"name": "韩梅梅", "email": "hmm@example.com"},
    )
    assert order.unsaved_history

    assert await repo.insert_new(order) is True
    assert order.unsaved_history == []

    loaded = await repo.get(order.id)
    assert loaded is not None
    assert loaded == order
    # every field, one by one, so a failure says which
    for f in dataclasses.fields(Order):
        assert getattr(loaded, f.name) == getattr(order, f.name), f.name
    assert loaded.status is OrderStatus.NEW
    assert loaded.delivery_status is DeliveryStatus.NONE
    assert loaded.delivery_method is DeliveryMethod.EXPRESS
    assert loaded.version == 0
    assert loaded.history == [HistoryEntry(OrderStatus.NEW, created)]
    assert loaded.tickets == ()
    assert loaded.created_at.microsecond == 123_456
    for dt in (loaded.created_at, loaded.updated_at, *(h.at for h in loaded.history)):
        assert is_utc(dt)
    assert await repo.get("ord_missing") is None


async def test_non_utc_datetimes_come_back_as_the_same_instant_in_utc(
    engine: AsyncEngine, now: datetime, parties: tuple[str, str]
) -> None:
    dist, sup = parties
    repo = OrderRepository(engine)
    local = now.astimezone(CST)
    order = new_order(dist, sup, "D-tz", local)
    assert await repo.insert_new(order)
    order.mark_locked(local, "L-1", local + timedelta(minutes=15))
    await repo.save(order)

    loaded = await repo.get(order.id)
    assert loaded is not None
    assert loaded.created_at == now
    assert loaded.lock_expires_at == now + timedelta(minutes=15)
    for dt in (loaded.created_at, loaded.updated_at, loaded.lock_expires_at):
        assert is_utc(dt)
    assert all(is_utc(h.at) for h in loaded.history)


async def test_naive_datetime_is_refused(
    engine: AsyncEngine, now: datetime, parties: tuple[str, str]
) -> None:
    dist, sup = parties
    order = new_order(dist, sup, "D-naive", now.replace(tzinfo=None))
    with pytest.raises(sqlalchemy.exc.StatementError, match="naive datetime"):
        await OrderRepository(engine).insert_new(order)
    assert await count(engine, orders) == 0


async def test_second_insert_of_same_id_returns_false_and_writes_nothing(
    engine: AsyncEngine, now: datetime, parties: tuple[str, str]
) -> None:
    dist, sup = parties
    repo = OrderRepository(engine)
    first = new_order(dist, sup, "D-1", now)
    assert await repo.insert_new(first)

    later = now + timedelta(minutes=1)
    again = new_order(dist, sup, "D-1", later, quantity=9, unit_price=1)
    extra = HistoryEntry(OrderStatus.NEW, later, "extra")
    again.history.append(extra)
    again.facts.append(Moved(extra))
    assert await repo.insert_new(again) is False
    assert again.unsaved_history  # nothing was written, so nothing is marked saved

    assert await count(engine, orders) == 1
    assert await history_rows(engine, first.id) == [(0, "NEW", now)]
    loaded = await repo.get(first.id)
    assert loaded == first


async def test_unique_distributor_order_id(
    engine: AsyncEngine, now: datetime, parties: tuple[str, str]
) -> None:
    dist, sup = parties
    other_dist = await make_distributor(engine, now, "other")
    repo = OrderRepository(engine)
    assert await repo.insert_new(new_order(dist, sup, "D-1", now))

    # another id, same (distributor, distributor order id): refused, nothing written
    clash = new_order(dist, sup, "D-1", now)
    clash.id = "ord_clash"
    assert await repo.insert_new(clash) is False
    assert await repo.get("ord_clash") is None
    assert await count(engine, order_history, order_history.c.order_id == "ord_clash") == 0

    # the same constraint at the table level
    row = await order_row(engine, order_id_for(dist, "D-1"))
    row["id"] = "ord_clash2"
    with pytest.raises(IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(insert(orders).values(row))

    # the same distributor order id for another distributor is fine
    assert await repo.insert_new(new_order(other_dist, sup, "D-1", now))
    assert await count(engine, orders) == 2


async def test_save_moves_bump_version_write_history_and_tickets(
    engine: AsyncEngine, now: datetime, parties: tuple[str, str]
) -> None:
    dist, sup = parties
    repo = OrderRepository(engine)
    order = new_order(dist, sup, "D-1", now)
    assert await repo.insert_new(order)

    t1, t2, t3 = (now + timedelta(seconds=s) for s in (1, 2, 3))
    loaded = await repo.get(order.id)
    assert loaded is not None
    loaded.mark_locked(t1, "LOCK-1", t1 + timedelta(minutes=15))
    await repo.save(loaded)
    assert loaded.version == 1
    assert loaded.unsaved_history == []
    assert (await order_row(engine, order.id))["version"] == 1

    loaded.start_fixing(t2)
    await repo.save(loaded)
    assert (await order_row(engine, order.id))["version"] == 2
    assert await count(engine, tickets) == 0

    issued = (IssuedTicket("TCK-B", "A-2"), IssuedTicket("TCK-A", None))
    loaded.mark_fixed(t3, issued)
    await repo.save(loaded)

    row = await order_row(engine, order.id)
    assert row["version"] == 3
    assert row["status"] == "FIXED"
    assert row["delivery_status"] == "DELIVERED"
    assert row["supplier_lock_ref"] == "LOCK-1"
    assert row["updated_at"] == t3
    assert await history_rows(engine, order.id) == [
        (0, "NEW", now),
        (1, "LOCKED", t1),
        (2, "FIXING", t2),
        (3, "FIXED", t3),
    ]

    again = await repo.get(order.id)
    assert again is not None
    assert again.version == 3
    assert again.status is OrderStatus.FIXED
    assert again.delivery_status is DeliveryStatus.DELIVERED
    assert set(again.tickets) == set(issued)
    assert again.tickets == tuple(sorted(issued, key=lambda t: t.code))
    assert [h.status for h in again.history] == [
        OrderStatus.NEW,
        OrderStatus.LOCKED,
        OrderStatus.FIXING,
        OrderStatus.FIXED,
    ]
    assert again.lock_expires_at == t1 + timedelta(minutes=15)

    # a later move after FIXED writes its history but not the tickets a second time
    again.start_refund(t3 + timedelta(seconds=1), "customer asked")
    await repo.save(again)
    assert await count(engine, tickets, tickets.c.order_id == order.id) == 2
    final = await repo.get(order.id)
    assert final is not None
    assert final.version == 4
    assert final.history[-1] == HistoryEntry(
        OrderStatus.REFUNDING, t3 + timedelta(seconds=1), "customer asked"
    )


async def test_several_moves_in_one_save_bump_version_once(
    engine: AsyncEngine, now: datetime, parties: tuple[str, str]
) -> None:
    dist, sup = parties
    repo = OrderRepository(engine)
    order = new_order(dist, sup, "D-1", now)
    assert await repo.insert_new(order)
    order.mark_locked(now, "L", now + timedelta(minutes=1))
    order.start_fixing(now + timedelta(seconds=1))
    order.mark_fixed(now + timedelta(seconds=2), (IssuedTicket("C1"),))
    await repo.save(order)
    assert order.version == 1
    assert [s for _, s, _ in await history_rows(engine, order.id)] == [
        "NEW",
        "LOCKED",
        "FIXING",
        "FIXED",
    ]
    assert await repo.get(order.id) == order


async def test_stale_save_raises_and_leaves_the_db_unchanged(
    engine: AsyncEngine, now: datetime, parties: tuple[str, str]
) -> None:
    dist, sup = parties
    repo = OrderRepository(engine)
    order = new_order(dist, sup, "D-1", now)
    assert await repo.insert_new(order)

    a = await repo.get(order.id)
    b = await repo.get(order.id)
    assert a is not None
    assert b is not None
    t1 = now + timedelta(seconds=1)
    a.mark_locked(t1, "LOCK-A", t1 + timedelta(minutes=15))
    await repo.save(a)

    before = await order_row(engine, order.id)
    b.mark_lock_failed(now + timedelta(seconds=2), "sold_out")
    with pytest.raises(StaleOrder):
        await repo.save(b)

    assert b.version == 0  # the loser's copy is not advanced
    assert await order_row(engine, order.id) == before
    assert before["version"] == 1
    assert before["status"] == "LOCKED"
    assert before["failure_reason"] is None
    assert await history_rows(engine, order.id) == [(0, "NEW", now), (1, "LOCKED", t1)]


async def test_stale_fixed_save_writes_no_tickets(
    engine: AsyncEngine, now: datetime, parties: tuple[str, str]
) -> None:
    dist, sup = parties
    repo = OrderRepository(engine)
    order = new_order(dist, sup, "D-1", now)
    assert await repo.insert_new(order)
    order.mark_locked(now, "L", now + timedelta(minutes=1))
    order.start_fixing(now)
    await repo.save(order)

    a = await repo.get(order.id)
    b = await repo.get(order.id)
    assert a is not None
    assert b is not None
    a.cancel(now, "refused")
    await repo.save(a)
    b.mark_fixed(now, (IssuedTicket("C1"), IssuedTicket("C2")))
    with pytest.raises(StaleOrder):
        await repo.save(b)
    assert await count(engine, tickets) == 0
    assert (await order_row(engine, order.id))["status"] == "CANCELED"


async def test_concurrent_saves_of_the_same_version_exactly_one_wins(
    engine: AsyncEngine, now: datetime, parties: tuple[str, str]
) -> None:
    dist, sup = parties
    repo = OrderRepository(engine)
    order = new_order(dist, sup, "D-1", now)
    assert await repo.insert_new(order)

    copies: list[Order] = []
    for i in range(20):
        c = await repo.get(order.id)
        assert c is not None
        c.mark_locked(now + timedelta(seconds=1), f"LOCK-{i}", now + timedelta(minutes=15))
        copies.append(c)

    results = await asyncio.gather(*(repo.save(c) for c in copies), return_exceptions=True)

    winners = [i for i, r in enumerate(results) if r is None]
    losers = [r for r in results if r is not None]
    assert len(winners) == 1, results
    assert all(isinstance(r, StaleOrder) for r in losers), losers
    row = await order_row(engine, order.id)
    assert row["version"] == 1
    assert row["supplier_lock_ref"] == f"LOCK-{winners[0]}"
    assert [s for _, s, _ in await history_rows(engine, order.id)] == ["NEW", "LOCKED"]


async def test_concurrent_inserts_of_one_order_exactly_one_wins(
    engine: AsyncEngine, now: datetime, parties: tuple[str, str]
) -> None:
    dist, sup = parties
    repo = OrderRepository(engine)
    copies = [new_order(dist, sup, "D-1", now, quantity=i + 1) for i in range(10)]
    results = await asyncio.gather(*(repo.insert_new(c) for c in copies))
    assert sum(results) == 1
    winner = copies[results.index(True)]
    assert await repo.get(winner.id) == winner
    assert await count(engine, orders) == 1
    assert await history_rows(engine, winner.id) == [(0, "NEW", now)]


async def test_concurrent_fixes_write_only_the_winners_tickets(
    engine: AsyncEngine, now: datetime, parties: tuple[str, str]
) -> None:
    dist, sup = parties
    repo = OrderRepository(engine)
    order = new_order(dist, sup, "D-1", now)
    assert await repo.insert_new(order)
    order.mark_locked(now, "L", now + timedelta(minutes=15))
    order.start_fixing(now)
    await repo.save(order)

    copies: list[Order] = []
    for i in range(10):
        c = await repo.get(order.id)
        assert c is not None
        c.mark_fixed(now, (IssuedTicket(f"C{i}-1"), IssuedTicket(f"C{i}-2")))
        copies.append(c)
    results = await asyncio.gather(*(repo.save(c) for c in copies), return_exceptions=True)
    winners = [i for i, r in enumerate(results) if r is None]
    assert len(winners) == 1, results
    assert all(isinstance(r, StaleOrder) for r in results if r is not None)
    async with engine.connect() as conn:
        codes = sorted(r[0] for r in (await conn.execute(select(tickets.c.code))).all())
    assert codes == [f"C{winners[0]}-1", f"C{winners[0]}-2"]
    row = await order_row(engine, order.id)
    assert (row["version"], row["status"]) == (2, "FIXED")


async def _orders_in_pages(
    repo: OrderRepository, distributor_id: str, limit: int, **filters: Any
) -> list[list[Order]]:
    pages: list[list[Order]] = []
    after: tuple[datetime, str] | None = None
    while True:
        page = await repo.list_for_distributor(distributor_id, after=after, limit=limit, **filters)
        if not page:
            return pages
        pages.append(page)
        after = (page[-1].updated_at, page[-1].id)
        assert len(pages) < 100, "paging does not end"


async def test_list_for_distributor_keyset_paging(
    engine: AsyncEngine, now: datetime, parties: tuple[str, str]
) -> None:
    dist, sup = parties
    other = await make_distributor(engine, now, "other")
    repo = OrderRepository(engine)
    mine: set[str] = set()
    # ten orders over four instants, so pages split inside runs of equal updated_at
    for i in range(10):
        at = now + timedelta(seconds=i // 3)
        o = new_order(dist, sup, f"D-{i}", at)
        assert await repo.insert_new(o)
        mine.add(o.id)
    for i in range(4):
        assert await repo.insert_new(new_order(other, sup, f"D-{i}", now))

    pages = await _orders_in_pages(repo, dist, 3)
    assert [len(p) for p in pages] == [3, 3, 3, 1]
    seen = [o.id for p in pages for o in p]
    assert len(seen) == len(set(seen)) == 10
    assert set(seen) == mine
    assert all(o.distributor_id == dist for p in pages for o in p)
    keys = [(o.updated_at, o.id) for p in pages for o in p]
    assert keys == sorted(keys)
    # whole orders come back, history included
    assert all(o.history and o.history[0].status is OrderStatus.NEW for p in pages for o in p)

    theirs = await _orders_in_pages(repo, other, 3)
    assert sum(len(p) for p in theirs) == 4
    assert not {o.id for p in theirs for o in p} & mine
    assert await repo.list_for_distributor("dst_nobody") == []


async def test_list_for_distributor_filters(
    engine: AsyncEngine, now: datetime, parties: tuple[str, str]
) -> None:
    dist, sup = parties
    repo = OrderRepository(engine)
    ids = []
    for i in range(6):
        o = new_order(dist, sup, f"D-{i}", now + timedelta(minutes=i))
        assert await repo.insert_new(o)
        if i % 2:
            o.mark_locked(o.updated_at, "L", o.updated_at + timedelta(minutes=15))
            await repo.save(o)
        ids.append(o.id)

    locked = await _orders_in_pages(repo, dist, 2, status="LOCKED")
    assert [o.id for p in locked for o in p] == [ids[1], ids[3], ids[5]]

    since = await repo.list_for_distributor(dist, updated_since=now + timedelta(minutes=3))
    assert [o.id for o in since] == ids[3:]


async def test_ids_in_status(engine: AsyncEngine, now: datetime, parties: tuple[str, str]) -> None:
    dist, sup = parties
    repo = OrderRepository(engine)
    by_status: dict[OrderStatus, list[str]] = {}
    for i in range(7):
        # ids ascend while updated_at descends: oldest first is the reverse of id order
        at = now - timedelta(minutes=i)
        o = new_order(dist, sup, f"D-{i}", at, id=f"ord_{i:02d}")
        assert await repo.insert_new(o)
        if i % 3 == 1:
            o.mark_locked(at, "L", at + timedelta(minutes=15))
            await repo.save(o)
        elif i % 3 == 2:
            o.mark_lock_failed(at, "sold_out")
            await repo.save(o)
        by_status.setdefault(o.status, []).append(o.id)

    assert await repo.ids_in_status([OrderStatus.LOCKED]) == by_status[OrderStatus.LOCKED][::-1]
    assert await repo.ids_in_status([OrderStatus.NEW]) == by_status[OrderStatus.NEW][::-1]
    both = await repo.ids_in_status([OrderStatus.NEW, OrderStatus.LOCKED])
    assert set(both) == set(by_status[OrderStatus.NEW]) | set(by_status[OrderStatus.LOCKED])
    # the limit keeps the oldest
    assert await repo.ids_in_status([OrderStatus.NEW, OrderStatus.LOCKED], limit=2) == [
        "ord_06",
        "ord_04",
    ]
    assert await repo.ids_in_status([OrderStatus.FIXED]) == []
    assert await repo.ids_in_status([]) == []


# --------------------------------------------------------------------------- money


async def test_money_columns_keep_exact_big_integers(
    engine: AsyncEngine, now: datetime, parties: tuple[str, str]
) -> None:
    dist, sup = parties
    repo = OrderRepository(engine)
    biggest = 2**63 - 1
    order = new_order(
        dist,
        sup,
        "D-big",
        now,
        quantity=1,
        unit_price=BIG,
        settlement_price=BIG - 2,
        face_value=biggest,
    )
    assert await repo.insert_new(order)
    loaded = await repo.get(order.id)
    assert loaded is not None
    assert (loaded.unit_price, loaded.settlement_price, loaded.face_value) == (
        BIG,
        BIG - 2,
        biggest,
    )
    for v in (loaded.unit_price, loaded.settlement_price, loaded.face_value):
        assert type(v) is int
    assert loaded.amount == Money(BIG, "CNY")
    assert float(BIG) != BIG  # what a float column would have lost

    row = await order_row(engine, order.id)
    assert row["unit_price"] == BIG
    assert type(row["unit_price"]) is int
    # exact in SQL comparisons too
    assert await count(engine, orders, orders.c.unit_price == BIG) == 1
    assert await count(engine, orders, orders.c.unit_price == BIG - 1) == 0

    # and through the catalog
    cat = CatalogRepository(engine)
    tier = CatalogTier("T", "Top", BIG + 2, BIG, BIG - 2, "CNY", 5)
    show = CatalogShow(
        "S",
        "Show",
        "Beijing",
        "concert",
        "Hall",
        now,
        "online",
        (CatalogSession("S1", now, "online", (tier,)),),
    )
    await cat.apply_catalog(sup, Catalog((show,)), now)
    sale = await cat.tier_for_sale(
        catalog_id("ses", sup, "S", "S1"), catalog_id("tir", sup, "S", "S1", "T")
    )
    assert sale is not None
    assert (sale.face_value, sale.price, sale.settlement_price) == (BIG + 2, BIG, BIG - 2)
    assert all(type(v) is int for v in (sale.face_value, sale.price, sale.settlement_price))
    # and re-applying the same big numbers is recognised as unchanged
    assert await cat.apply_catalog(sup, Catalog((show,)), now + timedelta(hours=1)) == 0


# --------------------------------------------------------------------------- accounts


async def dump_database(engine: AsyncEngine) -> list[str]:
    """Every value of every column of every table (read raw, without column types)."""
    values: list[str] = []
    names = await table_names(engine)
    async with engine.connect() as conn:
        for name in sorted(names):
            result = await conn.execute(text(f'SELECT * FROM "{name}"'))
            for row in result.all():
                for v in row:
                    if v is None:
                        continue
                    if isinstance(v, bytes | bytearray | memoryview):
                        raw = bytes(v)
                        values.extend([raw.decode("latin-1"), raw.hex()])
                    else:
                        values.append(str(v))
    return values


def encodings_of(secret: str) -> list[str]:
    raw = secret.encode()
    forms = [
        secret,
        raw.hex(),
        raw.hex().upper(),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        base64.b32encode(raw).decode().rstrip("="),
    ]
    token = secret.removeprefix("sk_")
    forms.append(token)
    try:  # the token itself is urlsafe base64 of random bytes
        token_bytes = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        pass
    else:
        forms += [
            token_bytes.hex(),
            base64.b64encode(token_bytes).decode().rstrip("="),
        ]
    return forms


async def test_create_distributor(engine: AsyncEngine, now: datetime, box: SecretBox) -> None:
    repo = AccountRepository(engine, box)
    d = await repo.create_distributor("Ticket Shop", now)
    assert d.id.startswith("dst_")
    assert d.status == "active"
    got = await repo.get_distributor(d.id)
    assert got == d
    assert got is not None
    assert is_utc(got.created_at)
    assert await repo.get_distributor("dst_missing") is None
    other = await repo.create_distributor("Ticket Shop", now)
    assert other.id != d.id


async def test_hmac_secret_is_never_stored_in_clear(
    engine: AsyncEngine, now: datetime, box: SecretBox
) -> None:
    repo = AccountRepository(engine, box)
    d = await repo.create_distributor("dist", now)
    made = [
        await repo.create_hmac_key(owner_kind=DISTRIBUTOR, distributor_id=d.id, now=now),
        await repo.create_hmac_key(owner_kind=ADMIN, distributor_id=None, now=now),
    ]

    dump = await dump_database(engine)
    assert any(key_id in dump for key_id, _ in made)  # the dump does see the key rows
    for _key_id, secret in made:
        assert secret.startswith("sk_")
        for form in encodings_of(secret):
            leaks = [v for v in dump if form in v]
            assert leaks == [], f"secret found in the database as {form!r}"

    async with engine.connect() as conn:
        rows = (await conn.execute(select(api_keys))).all()
    for r in rows:
        assert r.secret_ciphertext.startswith("v1:")
        assert r.public_key is None


async def test_load_key_returns_the_secret(
    engine: AsyncEngine, now: datetime, box: SecretBox
) -> None:
    repo = AccountRepository(engine, box)
    d = await repo.create_distributor("dist", now)
    expires = now + timedelta(days=30)
    key_id, secret = await repo.create_hmac_key(
        owner_kind=DISTRIBUTOR, distributor_id=d.id, now=now, expires_at=expires
    )
    assert key_id.startswith("dk_")
    rec = await repo.load_key(key_id)
    assert rec is not None
    assert rec.material == secret.encode()
    assert rec.key_type is KeyType.HMAC
    assert rec.owner_kind == DISTRIBUTOR
    assert rec.distributor_id == d.id
    assert rec.status == "active"
    assert rec.expires_at == expires
    assert is_utc(rec.expires_at)
    assert rec.account_status == "active"

    admin_id, admin_secret = await repo.create_hmac_key(
        owner_kind=ADMIN, distributor_id=None, now=now
    )
    assert admin_id.startswith("ak_")
    admin = await repo.load_key(admin_id)
    assert admin is not None
    assert admin.material == admin_secret.encode()
    assert admin.distributor_id is None
    assert admin.expires_at is None
    assert admin.account_status == "active"

    assert await repo.load_key("dk_missing") is None
    # a repository with another master key cannot open it
    other = AccountRepository(engine, SecretBox(bytes(32)))
    with pytest.raises(SecretBoxError):
        await other.load_key(key_id)


async def test_ciphertext_copied_to_another_key_row_does_not_open(
    engine: AsyncEngine, now: datetime, box: SecretBox
) -> None:
    repo = AccountRepository(engine, box)
    d1 = await repo.create_distributor("one", now)
    d2 = await repo.create_distributor("two", now)
    k1, s1 = await repo.create_hmac_key(owner_kind=DISTRIBUTOR, distributor_id=d1.id, now=now)
    k2, _ = await repo.create_hmac_key(owner_kind=DISTRIBUTOR, distributor_id=d1.id, now=now)
    k3, _ = await repo.create_hmac_key(owner_kind=DISTRIBUTOR, distributor_id=d2.id, now=now)

    async with engine.connect() as conn:
        sealed = (
            await conn.execute(select(api_keys.c.secret_ciphertext).where(api_keys.c.id == k1))
        ).scalar_one()
    async with engine.begin() as conn:
        await conn.execute(
            update(api_keys).where(api_keys.c.id.in_([k2, k3])).values(secret_ciphertext=sealed)
        )

    # same owner, other key id
    with pytest.raises(SecretBoxError):
        await repo.load_key(k2)
    # other owner, other key id
    with pytest.raises(SecretBoxError):
        await repo.load_key(k3)
    # the original still opens
    rec = await repo.load_key(k1)
    assert rec is not None
    assert rec.material == s1.encode()

    # the same row moved to another owner no longer opens either
    async with engine.begin() as conn:
        await conn.execute(update(api_keys).where(api_keys.c.id == k1).values(distributor_id=d2.id))
    with pytest.raises(SecretBoxError):
        await repo.load_key(k1)


async def test_ed25519_key_stores_the_public_key(
    engine: AsyncEngine, now: datetime, box: SecretBox
) -> None:
    repo = AccountRepository(engine, box)
    d = await repo.create_distributor("dist", now)
    raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    pub_b64 = base64.b64encode(raw).decode()
    key_id = await repo.create_ed25519_key(distributor_id=d.id, public_key_b64=pub_b64, now=now)

    async with engine.connect() as conn:
        row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).one()
    assert row.public_key == pub_b64
    assert row.secret_ciphertext is None
    assert row.key_type == KeyType.ED25519.value

    rec = await repo.load_key(key_id)
    assert rec is not None
    assert rec.key_type is KeyType.ED25519
    assert rec.material == raw
    assert rec.distributor_id == d.id

    with pytest.raises(ValueError, match="32 bytes"):
        await repo.create_ed25519_key(
            distributor_id=d.id, public_key_b64=base64.b64encode(raw[:31]).decode(), now=now
        )
    assert await count(engine, api_keys) == 1


async def test_revoke_sets_status(engine: AsyncEngine, now: datetime, box: SecretBox) -> None:
    repo = AccountRepository(engine, box)
    d = await repo.create_distributor("dist", now)
    key_id, _ = await repo.create_hmac_key(owner_kind=DISTRIBUTOR, distributor_id=d.id, now=now)
    keep_id, _ = await repo.create_hmac_key(owner_kind=DISTRIBUTOR, distributor_id=d.id, now=now)
    later = now + timedelta(hours=1)
    assert await repo.revoke_key(key_id, later) is True

    rec = await repo.load_key(key_id)
    assert rec is not None
    assert rec.status == "revoked"
    async with engine.connect() as conn:
        revoked_at = (
            await conn.execute(select(api_keys.c.revoked_at).where(api_keys.c.id == key_id))
        ).scalar_one()
    assert revoked_at == later
    kept = await repo.load_key(keep_id)
    assert kept is not None
    assert kept.status == "active"
    assert await repo.revoke_key("dk_missing", later) is False


async def test_suspended_distributor_shows_on_its_keys(
    engine: AsyncEngine, now: datetime, box: SecretBox
) -> None:
    repo = AccountRepository(engine, box)
    d = await repo.create_distributor("dist", now)
    key_id, _ = await repo.create_hmac_key(owner_kind=DISTRIBUTOR, distributor_id=d.id, now=now)
    assert await repo.set_distributor_status(d.id, "suspended", now) is True

    rec = await repo.load_key(key_id)
    assert rec is not None
    assert rec.account_status == "suspended"
    assert rec.status == "active"  # the key itself is untouched
    got = await repo.get_distributor(d.id)
    assert got is not None
    assert got.status == "suspended"
    assert await repo.set_distributor_status("dst_missing", "suspended", now) is False

    assert await repo.set_distributor_status(d.id, "active", now)
    again = await repo.load_key(key_id)
    assert again is not None
    assert again.account_status == "active"


async def test_grants_of_returns_created_grants_with_windows(
    engine: AsyncEngine, now: datetime, box: SecretBox
) -> None:
    repo = AccountRepository(engine, box)
    d = await repo.create_distributor("dist", now)
    other = await repo.create_distributor("other", now)
    start = now.astimezone(CST)
    end = now + timedelta(days=7)
    made = [
        await repo.create_grant(d.id, GrantScope.ALL, None, now=now),
        await repo.create_grant(
            d.id, GrantScope.CITY, "Shanghai", now=now, valid_from=start, valid_until=end
        ),
        await repo.create_grant(d.id, GrantScope.SHOW, "shw_1", now=now, valid_until=end),
    ]
    await repo.create_grant(other.id, GrantScope.ALL, None, now=now)
    revoked = await repo.create_grant(d.id, GrantScope.SUPPLIER, "sup_1", now=now)
    async with engine.begin() as conn:
        await conn.execute(update(grants).where(grants.c.id == revoked.id).values(revoked_at=now))

    # Revoked grants come back too (incremental catalog sync needs to know when they ended),
    # and are not live from their revocation on.
    got_all = sorted(await repo.grants_of(d.id), key=lambda g: g.id)
    assert sorted(g.id for g in got_all) == sorted([*(g.id for g in made), revoked.id])
    gone = next(g for g in got_all if g.id == revoked.id)
    assert gone.revoked_at == now
    assert not gone.live_at(now)
    got = [g for g in got_all if g.id != revoked.id]
    assert got == sorted(made, key=lambda g: g.id)
    city = next(g for g in got if g.scope is GrantScope.CITY)
    assert city.value == "Shanghai"
    assert city.valid_from == now
    assert is_utc(city.valid_from)
    assert city.valid_until == end
    assert is_utc(city.valid_until)
    assert city.live_at(now)
    assert not city.live_at(end)
    assert await repo.grants_of("dst_missing") == []


# --------------------------------------------------------------------------- catalog


def build_catalog(now: datetime, price_of: dict[str, int] | None = None) -> Catalog:
    """Two shows, two sessions each, two tiers each (8 tiers, all with distinct prices)."""
    price_of = price_of or {}
    show_list = []
    for s in range(2):
        sessions_ = []
        for n in range(2):
            tier_list = []
            for t, name in enumerate(("VIP", "Stalls")):
                ref = f"SH{s}-SE{n}-{name}"
                # the VIP tier costs more, and its ref sorts first: detail orders by price
                price = price_of.get(ref, 100_000 - 40_000 * t + 100 * s + 10 * n)
                tier_list.append(
                    CatalogTier(ref, name, price + 2000, price, price - 3000, "CNY", 100 + t)
                )
            sessions_.append(
                CatalogSession(
                    f"SE{n}",
                    # the second session starts first: detail orders by start time
                    now + timedelta(days=30 - n),
                    "online",
                    tuple(tier_list),
                )
            )
        show_list.append(
            CatalogShow(
                f"SH{s}",
                f"Show {s}",
                ("Shanghai", "Beijing")[s],
                ("concert", "drama")[s],
                f"Venue {s}",
                now + timedelta(days=29),
                "online",
                tuple(sessions_),
            )
        )
    return Catalog(tuple(show_list))


async def test_create_supplier(engine: AsyncEngine, now: datetime) -> None:
    repo = CatalogRepository(engine)
    config = {"base_url": "http://127.0.0.1:9", "timeouts": {"lock": 2}, "tags": ["a", "b"]}
    s = await repo.create_supplier("Sandbox", "sandbox", config, now)
    assert s.id.startswith("sup_")
    assert (s.replicas, s.status) == (1, "active")
    got = await repo.get_supplier(s.id)
    assert got == s
    assert got is not None
    assert got.config == config
    assert await repo.find_supplier_by_name("Sandbox") == s
    assert await repo.find_supplier_by_name("nobody") is None
    assert await repo.get_supplier("sup_missing") is None
    assert await repo.list_suppliers() == [s]


async def test_apply_catalog_creates_rows_with_stable_ids(
    engine: AsyncEngine, now: datetime
) -> None:
    repo = CatalogRepository(engine)
    sup = (await repo.create_supplier("Sandbox", "sandbox", {}, now)).id
    catalog = build_catalog(now)

    assert await repo.apply_catalog(sup, catalog, now) == 2 + 4 + 8

    async with engine.connect() as conn:
        show_ids = {r[0] for r in (await conn.execute(select(shows.c.id))).all()}
        tier_rows = {r.id: r for r in (await conn.execute(select(tiers))).all()}
    assert show_ids == {catalog_id("shw", sup, f"SH{s}") for s in range(2)}
    expected_tiers = {
        catalog_id("tir", sup, show.ref, ses.ref, tier.ref): tier
        for show in catalog.shows
        for ses in show.sessions
        for tier in ses.tiers
    }
    assert set(tier_rows) == set(expected_tiers)
    for tid, tier in expected_tiers.items():
        r = tier_rows[tid]
        assert (r.ref, r.name, r.face_value, r.price, r.settlement_price, r.currency) == (
            tier.ref,
            tier.name,
            tier.face_value,
            tier.price,
            tier.settlement_price,
            tier.currency,
        )
        assert r.available == tier.available
        assert r.updated_at == now

    async def snapshot() -> dict[str, dict[str, datetime]]:
        out: dict[str, dict[str, datetime]] = {}
        async with engine.connect() as conn:
            for table in (shows, metadata.tables["sessions"], tiers):
                rows = (await conn.execute(select(table.c.id, table.c.updated_at))).all()
                out[table.name] = {r[0]: r[1] for r in rows}
        return out

    first = await snapshot()
    later = now + timedelta(hours=1)
    assert await repo.apply_catalog(sup, build_catalog(now), later) == 0
    assert await snapshot() == first

    # one tier's price changes: only that tier moves
    changed_ref = "SH1-SE0-Stalls"
    assert await repo.apply_catalog(sup, build_catalog(now, {changed_ref: 55_500}), later) == 1
    after = await snapshot()
    changed_id = catalog_id("tir", sup, "SH1", "SE0", changed_ref)
    assert after["tiers"][changed_id] == later
    for table, rows in after.items():
        for rid, at in rows.items():
            if rid != changed_id:
                assert at == first[table][rid], (table, rid)
    sale = await repo.tier_for_sale(catalog_id("ses", sup, "SH1", "SE0"), changed_id)
    assert sale is not None
    assert sale.price == 55_500

    # the ids do not depend on the supplier's order of listing, only on its refs
    reversed_catalog = Catalog(tuple(reversed(build_catalog(now, {changed_ref: 55_500}).shows)))
    assert await repo.apply_catalog(sup, reversed_catalog, later + timedelta(hours=1)) == 0

    # another supplier with the same refs gets its own rows
    sup2 = (await repo.create_supplier("Other", "sandbox", {}, now)).id
    assert await repo.apply_catalog(sup2, catalog, now) == 14
    assert await count(engine, tiers) == 16


async def test_tier_for_sale(engine: AsyncEngine, now: datetime) -> None:
    repo = CatalogRepository(engine)
    sup = (await repo.create_supplier("Sandbox", "sandbox", {}, now)).id
    catalog = build_catalog(now)
    await repo.apply_catalog(sup, catalog, now)

    show = catalog.shows[1]
    ses = show.sessions[0]
    tier = ses.tiers[1]
    show_id = catalog_id("shw", sup, show.ref)
    session_id = catalog_id("ses", sup, show.ref, ses.ref)
    tier_id = catalog_id("tir", sup, show.ref, ses.ref, tier.ref)

    sale = await repo.tier_for_sale(session_id, tier_id)
    assert sale is not None
    assert sale.supplier_id == sup
    assert sale.show_id == show_id
    assert sale.session_id == session_id
    assert sale.tier_id == tier_id
    assert (sale.session_ref, sale.tier_ref) == ("SE0", "SH1-SE0-Stalls")
    assert (sale.face_value, sale.price, sale.settlement_price, sale.currency) == (
        tier.face_value,
        tier.price,
        tier.settlement_price,
        "CNY",
    )
    assert (sale.show_status, sale.session_status) == ("online", "online")
    assert sale.item == CatalogItem(sup, "Beijing", "drama", show_id, session_id)

    # a tier asked for under a session it does not belong to is not for sale
    other_session = catalog_id("ses", sup, show.ref, "SE1")
    assert await repo.tier_for_sale(other_session, tier_id) is None
    assert await repo.tier_for_sale(session_id, "tir_missing") is None


async def test_show_detail_nests_sessions_and_tiers(engine: AsyncEngine, now: datetime) -> None:
    repo = CatalogRepository(engine)
    sup = (await repo.create_supplier("Sandbox", "sandbox", {}, now)).id
    catalog = build_catalog(now)
    await repo.apply_catalog(sup, catalog, now)

    show_id = catalog_id("shw", sup, "SH0")
    detail = await repo.show_detail(show_id)
    assert detail is not None
    assert detail["id"] == show_id
    assert (detail["title"], detail["city"], detail["category"]) == (
        "Show 0",
        "Shanghai",
        "concert",
    )
    assert detail["starts_at"] == now + timedelta(days=29)
    assert is_utc(detail["starts_at"])
    # sessions by start time: SE1 starts a day before SE0
    assert [s["ref"] for s in detail["sessions"]] == ["SE1", "SE0"]
    for s in detail["sessions"]:
        assert s["show_id"] == show_id
        assert s["id"] == catalog_id("ses", sup, "SH0", s["ref"])
        # tiers by price, cheapest first
        assert [t["name"] for t in s["tiers"]] == ["Stalls", "VIP"]
        assert all(t["session_id"] == s["id"] for t in s["tiers"])
        prices = [t["price"] for t in s["tiers"]]
        assert prices == sorted(prices)
    assert await repo.show_detail("shw_missing") is None

    assert CatalogRepository.item_of(detail, detail["sessions"][0]["id"]) == CatalogItem(
        sup,
        "Shanghai",
        "concert",
        show_id,
        detail["sessions"][0]["id"],
        frozenset(s["id"] for s in detail["sessions"]),
    )


async def test_list_shows(engine: AsyncEngine, now: datetime) -> None:
    repo = CatalogRepository(engine)
    assert await repo.list_shows() == []
    sup = (await repo.create_supplier("Sandbox", "sandbox", {}, now)).id
    await repo.apply_catalog(sup, build_catalog(now), now)

    listed = await repo.list_shows()
    assert [s["id"] for s in listed] == sorted(catalog_id("shw", sup, f"SH{i}") for i in range(2))
    assert {s["ref"] for s in listed} == {"SH0", "SH1"}
    assert all(s["supplier_id"] == sup and s["status"] == "online" for s in listed)
    assert "sessions" not in listed[0]


# --------------------------------------------------------------------------- nonces


async def test_nonce_claims(engine: AsyncEngine, now: datetime) -> None:
    store = DbNonceStore(engine)
    ttl = timedelta(minutes=10)
    assert await store.claim("dk_a", "n-1", now=now, ttl=ttl) is True
    assert await store.claim("dk_a", "n-1", now=now, ttl=ttl) is False
    assert await store.claim("dk_a", "n-1", now=now + timedelta(seconds=1), ttl=ttl) is False
    assert await store.claim("dk_b", "n-1", now=now, ttl=ttl) is True
    assert await store.claim("dk_a", "n-2", now=now, ttl=ttl) is True
    assert await count(engine, metadata.tables["nonces"]) == 3


async def test_expired_nonces_are_purged(engine: AsyncEngine, now: datetime) -> None:
    store = DbNonceStore(engine, purge_every=1)
    ttl = timedelta(minutes=5)
    assert await store.claim("dk_a", "n-1", now=now, ttl=ttl)
    assert not await store.claim("dk_a", "n-1", now=now + timedelta(minutes=4), ttl=ttl)
    # past its retention the nonce is forgotten
    assert await store.claim("dk_a", "n-1", now=now + timedelta(minutes=6), ttl=ttl)


async def test_concurrent_claims_of_one_nonce_exactly_one_wins(
    engine: AsyncEngine, now: datetime
) -> None:
    store = DbNonceStore(engine)
    results: Sequence[bool] = await asyncio.gather(
        *(store.claim("dk_a", "same", now=now, ttl=timedelta(minutes=5)) for _ in range(50))
    )
    assert sum(results) == 1
    assert await count(engine, metadata.tables["nonces"]) == 1


async def test_after_the_server_drops_every_connection_moves_go_on_and_reads_fail_once(
    postgres: PostgresServer, now: datetime
) -> None:
    """Connections are not pinged before use (a round trip per transaction). When the server
    drops them (a restart, a failover), an order move runs again at once on a new connection
    (its failure could strand a supplier call already made); a read fails once, writing
    nothing, and the pool has by then replaced every connection made before the failure.
    (PostgreSQL only: an embedded SQLite has no server to drop them.)"""
    url = postgres.create_database("dropped_connections")
    await upgrade_async(url)
    engine = make_engine(url)
    try:
        dist, sup = await make_distributor(engine, now), await make_supplier(engine, now)
        repo = OrderRepository(engine)
        first = new_order(dist, sup, "D-drop-1", now)
        assert await repo.insert_new(first)

        await drop_every_connection(repo, first.id, url)
        second = new_order(dist, sup, "D-drop-2", now)
        assert await repo.insert_new(second)  # ran again on a fresh connection
        await drop_every_connection(repo, first.id, url)
        first.mark_locked(now + timedelta(seconds=1), "L-1", now + timedelta(minutes=15))
        await repo.save(first)
        assert await repo.get(first.id) == first

        await drop_every_connection(repo, first.id, url)
        with pytest.raises(sqlalchemy.exc.DBAPIError) as failed:
            await repo.get(first.id)
        assert failed.value.connection_invalidated
        got = await asyncio.gather(*(repo.get(i) for i in [first.id, second.id] * 3))
        assert got == [first, second] * 3
    finally:
        await engine.dispose()


async def drop_every_connection(repo: OrderRepository, order_id: str, url: str) -> None:
    """Fill the pool with idle connections, then have the server terminate all of them."""
    await asyncio.gather(*(repo.get(order_id) for _ in range(6)))
    dropped = await terminate_connections(url)
    assert dropped >= 1


async def test_statement_reads_run_each_statement_alone_on_postgresql(
    engine: AsyncEngine,
) -> None:
    """`statement_reads`: no transaction around a poll's statement on PostgreSQL (two round
    trips less); SQLite keeps the engine, and the one snapshot its transactions give. Both
    read what was committed."""
    reads = statement_reads(engine)
    if engine.dialect.name == "sqlite":
        assert reads is engine
        return
    xact = text("SELECT pg_current_xact_id()::text")
    async with engine.connect() as conn:  # one transaction: the same id twice
        assert await conn.scalar(xact) == await conn.scalar(xact)
    async with reads.connect() as conn:  # each statement its own
        assert await conn.scalar(xact) != await conn.scalar(xact)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE probe (n int)"))
        await conn.execute(text("INSERT INTO probe VALUES (7)"))
    async with reads.connect() as conn:
        assert await conn.scalar(text("SELECT n FROM probe")) == 7
    async with engine.connect() as conn:  # the pool's connection is back to transactions
        assert await conn.scalar(xact) == await conn.scalar(xact)
