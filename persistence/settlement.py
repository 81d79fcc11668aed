"""Settlement queries: tailing the ledger, the flows of a period, the plain-SQL snapshot, and
closing a period into its statement.

The snapshot's shape, its checks and the statement record are in `domain.settlement`; here
the SQL GROUP BYs fill the same `PeriodFigures` the settlement actor's in-memory book does,
so the tests and the benchmark compare the two `Snapshot`s to the minor unit.

Closing (one transaction): the period's row is set to `closed` (created if missing) first,
which waits for the ledger writers that hold a shared lock on it and turns later writers to
the next open period (see `persistence.ledger`); then the statement is computed from the flows
booked in it, by SQL, and stored with the sha256 of its canonical JSON. A period can be closed
only once it is over (before today in the platform's time zone). Closing a closed period is
idempotent: it returns the stored statement unchanged (`created` False), so a retried close is
harmless and a statement is never recomputed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import Any

from sqlalchemy import BigInteger, and_, case, cast, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.flows import FlowKind
from domain.settlement import (
    PeriodFigures,
    PeriodNotOver,
    Snapshot,
    Statement,
    parse_period,
    period_is_over,
)
from persistence.ledger import insert_ignore
from persistence.tables import flows, periods, statements

# The columns a tailer reads, in this order (SettlementBook.apply_rows relies on it).
TAIL_COLUMNS = (
    flows.c.id,
    flows.c.order_id,
    flows.c.distributor_id,
    flows.c.supplier_id,
    flows.c.kind,
    flows.c.sign,
    flows.c.refund_no,
    flows.c.amount,
    flows.c.currency,
    flows.c.booked_period,
)

# --------------------------------------------------------------------------- reading flows


async def flows_since(
    engine: AsyncEngine, after_id: int, *, also_ids: Sequence[int] = (), limit: int = 50_000
) -> Sequence[Any]:
    """Flows with id > after_id, plus those of `also_ids` (ids the tailer saw skipped, whose
    transactions may commit late), in id order, as TAIL_COLUMNS tuples."""
    where: Any = flows.c.id > after_id
    if also_ids:
        where = or_(where, flows.c.id.in_(list(also_ids)))
    q = select(*TAIL_COLUMNS).where(where).order_by(flows.c.id).limit(limit)
    async with engine.connect() as conn:
        return (await conn.execute(q)).all()


async def flows_of_period(engine: AsyncEngine, period: str) -> list[dict[str, Any]]:
    """Every flow booked into the period, in id order, for the CSV export."""
    q = select(flows).where(flows.c.booked_period == period).order_by(flows.c.id)
    async with engine.connect() as conn:
        rows = (await conn.execute(q)).all()
    out = []
    for r in rows:
        m = dict(r._mapping)
        m["signed_amount"] = m["sign"] * m["amount"]
        out.append(m)
    return out


# --------------------------------------------------------------------------- SQL snapshot


def _sum(expr: Any) -> Any:
    # PostgreSQL sums bigints into numeric: cast back so integers come out, never floats.
    return cast(func.coalesce(func.sum(expr), 0), BigInteger)


async def sql_period_group_by(conn: AsyncConnection, period: str) -> Sequence[Any]:
    """The plain GROUP BY of one period's flows (the benchmark's baseline)."""
    keys = (flows.c.kind, flows.c.sign, flows.c.currency, flows.c.distributor_id)
    q = (
        select(
            *keys,
            flows.c.supplier_id,
            _sum(flows.c.amount).label("amount"),
            func.count().label("n"),
        )
        .where(flows.c.booked_period == period)
        .group_by(*keys, flows.c.supplier_id)
    )
    return (await conn.execute(q)).all()


async def sql_figures(conn: AsyncConnection, period: str) -> PeriodFigures:
    receivable, settlement = FlowKind.RECEIVABLE.value, FlowKind.SETTLEMENT.value
    fig = PeriodFigures()
    for row in await sql_period_group_by(conn, period):
        kind, sign, code, did, sid, amount, n = tuple(row)
        fig.flows += int(n)
        lines = fig.distributors if kind == receivable else fig.suppliers
        line = lines.setdefault((did if kind == receivable else sid, code), [0, 0])
        line[0 if sign > 0 else 1] += int(amount)
    signed = flows.c.sign * flows.c.amount
    rec = _sum(case((flows.c.kind == receivable, signed), else_=0))
    sett = _sum(case((flows.c.kind == settlement, signed), else_=0))
    upto = flows.c.booked_period <= period
    q = select(flows.c.currency, rec, sett).where(upto).group_by(flows.c.currency)
    for code, r, s in (await conn.execute(q)).all():
        fig.to_date[code] = [int(r), int(s)]
    violators = (
        select(flows.c.order_id)
        .where(upto)
        .group_by(flows.c.order_id)
        .having(
            func.sum(case((flows.c.kind == receivable, signed), else_=0))
            < func.sum(case((flows.c.kind == settlement, signed), else_=0))
        )
        .order_by(flows.c.order_id)
    )
    fig.violating_orders = [r[0] for r in (await conn.execute(violators)).all()]
    return fig


async def sql_snapshot(engine: AsyncEngine, period: str) -> Snapshot:
    """A period's snapshot recomputed from the flows table by SQL alone."""
    async with engine.connect() as conn:
        return Snapshot.from_figures(period, await sql_figures(conn, period))


# --------------------------------------------------------------------------- periods


async def list_periods(engine: AsyncEngine) -> list[tuple[str, str, datetime | None]]:
    """(period, status, closed_at) of every period that has a row, oldest first."""
    q = select(periods.c.period, periods.c.status, periods.c.closed_at).order_by(periods.c.period)
    async with engine.connect() as conn:
        return [(r[0], r[1], r[2]) for r in (await conn.execute(q)).all()]


async def get_statement(engine: AsyncEngine, period: str) -> Statement | None:
    async with engine.connect() as conn:
        return await _statement(conn, period)


async def all_statements(engine: AsyncEngine) -> dict[str, Statement]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(statements))).all()
    return {r.period: Statement(r.period, dict(r.body), r.digest, r.closed_at) for r in rows}


async def _statement(conn: AsyncConnection, period: str) -> Statement | None:
    r = (await conn.execute(select(statements).where(statements.c.period == period))).first()
    return None if r is None else Statement(r.period, dict(r.body), r.digest, r.closed_at)


async def close_period(
    engine: AsyncEngine, period: str, *, tz: tzinfo, now: datetime
) -> tuple[Statement, bool]:
    """Freeze the period into its statement; returns (statement, created). Idempotent."""
    period = parse_period(period)
    if not period_is_over(period, tz=tz, now=now):
        raise PeriodNotOver(period)
    async with engine.begin() as conn:
        await conn.execute(insert_ignore(conn, periods).values(period=period, status="open"))
        # The UPDATE takes the row's exclusive lock: it waits for writers holding FOR SHARE
        # (their flows count here) and makes every later writer book into the next open day.
        changed = await conn.execute(
            update(periods)
            .where(and_(periods.c.period == period, periods.c.status == "open"))
            .values(status="closed", closed_at=now)
        )
        if changed.rowcount == 0:
            existing = await _statement(conn, period)
            assert existing is not None, f"period {period} is closed without a statement"
            return existing, False
        snapshot = Snapshot.from_figures(period, await sql_figures(conn, period))
        statement = Statement.of(snapshot, now)
        await conn.execute(
            statements.insert().values(
                period=period, body=statement.body, digest=statement.digest, closed_at=now
            )
        )
    return statement, True
