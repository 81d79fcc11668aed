"""Writing flows into the ledger inside an order move's transaction, and booking each into
its period: the day of its basis time, or, when that day is closed, the first open day after
it (the flow keeps its original basis time and basis period).

Why the booking cannot race a close: a writer takes a shared row lock on the period's row
(`FOR SHARE` on PostgreSQL; SQLite runs one writer at a time), and closing a period updates
that row, which waits for the writers in flight and makes later writers see `closed`.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, tzinfo
from functools import cache
from typing import Any

from sqlalchemy import Table, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.flows import Flow, period_of
from persistence.tables import flows, periods


@cache
def _insert_ignore(dialect: str, table: Table) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def insert_ignore(conn: AsyncConnection, table: Table) -> Any:
    """INSERT … ON CONFLICT DO NOTHING in the connection's dialect (built once per dialect
    and table; give it the row as execute's parameters, or call .values())."""
    return _insert_ignore(conn.dialect.name, table)


_PERIOD_STATUS = select(periods.c.status).where(periods.c.period == bindparam("b_period"))
_PERIOD_STATUS_LOCKED = _PERIOD_STATUS.with_for_update(read=True)


async def booked_period(conn: AsyncConnection, basis: date) -> str:
    q = _PERIOD_STATUS_LOCKED if conn.dialect.name == "postgresql" else _PERIOD_STATUS
    day = basis
    while True:
        key = day.isoformat()
        status = (await conn.execute(q, {"b_period": key})).scalar_one_or_none()
        if status is None:  # the period's first flow: make its row, then lock it
            await conn.execute(insert_ignore(conn, periods), {"period": key, "status": "open"})
            status = (await conn.execute(q, {"b_period": key})).scalar_one()
        if status == "open":
            return key
        day += timedelta(days=1)


def flow_rows(new_flows: list[Flow], *, tz: tzinfo, now: datetime) -> list[dict[str, Any]]:
    """The ledger rows of `new_flows`, in basis-time order, each without its booked period
    (`write_flow_rows` books it; a writer that knows its days are open books the basis day)."""
    return [
        {
            "order_id": f.order_id,
            "distributor_id": f.distributor_id,
            "supplier_id": f.supplier_id,
            "kind": f.kind.value,
            "sign": f.sign,
            "refund_no": f.refund_no,
            "amount": f.amount,
            "currency": f.currency,
            "basis_time": f.basis_time,
            "basis_period": period_of(f.basis_time, tz).isoformat(),
            "created_at": now,
        }
        # Period rows are locked in day order, so two saves that open two new days cannot
        # lock them in opposite orders and deadlock.
        for f in sorted(new_flows, key=lambda fl: fl.basis_time)
    ]


async def write_flow_rows(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Insert `flow_rows`' rows (in their order), each booked into its period."""
    for row in rows:
        basis = date.fromisoformat(row["basis_period"])
        booked = await booked_period(conn, basis)
        await conn.execute(insert_ignore(conn, flows), {**row, "booked_period": booked})


async def write_flows(
    conn: AsyncConnection, new_flows: list[Flow], *, tz: tzinfo, now: datetime
) -> None:
    await write_flow_rows(conn, flow_rows(new_flows, tz=tz, now=now))
