"""Settlement queries: tailing the ledger, the flows of a period, the plain-SQL snapshot, and
closing a period into its statement.

A snapshot of a period is one JSON-able dict (see `shape_snapshot`), filled either from the
settlement actor's in-memory book or here from SQL GROUP BYs; the tests and the benchmark
compare the two to the minor unit. Amounts are int minor units; `*_minus` figures are the
positive magnitudes of the negative flows, and `net = plus - minus`.

The receivable >= settlement checks of a snapshot of period P:
- `period`: over P's own flows, receivable net >= settlement net in every currency. Reported,
  but not part of `holds`: a day with more refunds than sales is legitimately negative (the
  supplier refunds us on day 2, we refund the distributor on day 3: day 3 is -receivable only).
- `to_date`: over every flow booked up to and including P, per currency: what the platform has
  collected covers what it owes suppliers.
- `orders`: the same for each order, over its flows booked up to and including P.
`holds` = `to_date` and `orders`.

Closing (one transaction): the period's row is set to `closed` (created if missing) first,
which waits for the ledger writers that hold a shared lock on it and turns later writers to
the next open period (see `persistence.ledger`); then the statement is computed from the flows
booked in it, by SQL, and stored with the sha256 of its canonical JSON. A period can be closed
only once it is over (before today in the platform's time zone). Closing a closed period is
idempotent: it returns the stored statement unchanged (`created` False), so a retried close is
harmless and a statement is never recomputed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from typing import Any

from sqlalchemy import BigInteger, and_, case, cast, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from persistence.ledger import insert_ignore
from persistence.tables import flows, periods, statements

RECEIVABLE = "receivable"
SETTLEMENT = "settlement"
MAX_LISTED_VIOLATIONS = 100

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

CSV_COLUMNS = (
    "id",
    "order_id",
    "distributor_id",
    "supplier_id",
    "kind",
    "sign",
    "refund_no",
    "amount",
    "signed_amount",
    "currency",
    "basis_time",
    "basis_period",
    "booked_period",
    "created_at",
)

_PERIOD = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class BadPeriod(ValueError):
    """Not a period key (a calendar day, YYYY-MM-DD)."""


class PeriodNotOver(Exception):
    """The period is today or later in the platform's time zone: it cannot be closed yet."""


def parse_period(value: str) -> str:
    if not _PERIOD.match(value):
        raise BadPeriod(f"{value!r} is not a period (YYYY-MM-DD)")
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError as exc:
        raise BadPeriod(f"{value!r} is not a calendar day") from exc


# --------------------------------------------------------------------------- the shape


@dataclass(slots=True)
class PeriodFigures:
    """What a snapshot is made of, however it was summed."""

    flows: int = 0
    distributors: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # [+, -]
    suppliers: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # [+, -]
    to_date: dict[str, list[int]] = field(default_factory=dict)  # currency -> [rec, set] net
    violating_orders: list[str] = field(default_factory=list)  # sorted


def shape_snapshot(period: str, fig: PeriodFigures) -> dict[str, Any]:
    by_currency: dict[str, dict[str, int]] = {}

    def cur(code: str) -> dict[str, int]:
        return by_currency.setdefault(
            code,
            {
                "receivable_plus": 0,
                "receivable_minus": 0,
                "settlement_plus": 0,
                "settlement_minus": 0,
                "receivable_to_date": 0,
                "settlement_to_date": 0,
            },
        )

    def lines(
        parties: dict[tuple[str, str], list[int]], id_field: str, flow: str
    ) -> list[dict[str, Any]]:
        """One line per (party, currency), each added into its currency's totals."""
        out = []
        for (party_id, code), (plus, minus) in sorted(parties.items()):
            c = cur(code)
            c[f"{flow}_plus"] += plus
            c[f"{flow}_minus"] += minus
            out.append(
                {
                    id_field: party_id,
                    "currency": code,
                    f"{flow}_plus": plus,
                    f"{flow}_minus": minus,
                    "net": plus - minus,
                }
            )
        return out

    dist_lines = lines(fig.distributors, "distributor_id", "receivable")
    sup_lines = lines(fig.suppliers, "supplier_id", "settlement")
    for code, (rec, sett) in fig.to_date.items():
        c = cur(code)
        c["receivable_to_date"] = rec
        c["settlement_to_date"] = sett
    currencies: list[dict[str, Any]] = []
    for code, c in sorted(by_currency.items()):
        rec_net = c["receivable_plus"] - c["receivable_minus"]
        set_net = c["settlement_plus"] - c["settlement_minus"]
        currencies.append(
            {
                "currency": code,
                "receivable_plus": c["receivable_plus"],
                "receivable_minus": c["receivable_minus"],
                "receivable_net": rec_net,
                "settlement_plus": c["settlement_plus"],
                "settlement_minus": c["settlement_minus"],
                "settlement_net": set_net,
                "retained": rec_net - set_net,
                "receivable_to_date": c["receivable_to_date"],
                "settlement_to_date": c["settlement_to_date"],
                "retained_to_date": c["receivable_to_date"] - c["settlement_to_date"],
            }
        )
    period_ok = all(c["retained"] >= 0 for c in currencies)
    to_date_ok = all(c["retained_to_date"] >= 0 for c in currencies)
    orders_ok = not fig.violating_orders
    return {
        "period": period,
        "flows": fig.flows,
        "currencies": currencies,
        "distributors": dist_lines,
        "suppliers": sup_lines,
        "checks": {
            "period": period_ok,
            "to_date": to_date_ok,
            "orders": orders_ok,
            "violating_orders_count": len(fig.violating_orders),
            "violating_orders": fig.violating_orders[:MAX_LISTED_VIOLATIONS],
        },
        "holds": to_date_ok and orders_ok,
    }


def period_summary(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The line of a period in the periods list."""
    return {
        "period": snapshot["period"],
        "flows": snapshot["flows"],
        "currencies": [
            {
                "currency": c["currency"],
                "receivable_net": c["receivable_net"],
                "settlement_net": c["settlement_net"],
                "retained": c["retained"],
                "retained_to_date": c["retained_to_date"],
            }
            for c in snapshot["currencies"]
        ],
        "holds": snapshot["holds"],
    }


def canonical_json(body: dict[str, Any]) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest_of(body: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


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


def csv_lines(rows: Iterable[dict[str, Any]], tz: tzinfo) -> Iterable[list[str]]:
    yield list(CSV_COLUMNS)
    for m in rows:
        yield [
            (m[c].astimezone(tz).isoformat() if isinstance(m[c], datetime) else str(m[c]))
            for c in CSV_COLUMNS
        ]


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
    fig = PeriodFigures()
    for row in await sql_period_group_by(conn, period):
        kind, sign, code, did, sid, amount, n = tuple(row)
        fig.flows += int(n)
        lines = fig.distributors if kind == RECEIVABLE else fig.suppliers
        line = lines.setdefault((did if kind == RECEIVABLE else sid, code), [0, 0])
        line[0 if sign > 0 else 1] += int(amount)
    signed = flows.c.sign * flows.c.amount
    rec = _sum(case((flows.c.kind == RECEIVABLE, signed), else_=0))
    sett = _sum(case((flows.c.kind == SETTLEMENT, signed), else_=0))
    upto = flows.c.booked_period <= period
    q = select(flows.c.currency, rec, sett).where(upto).group_by(flows.c.currency)
    for code, r, s in (await conn.execute(q)).all():
        fig.to_date[code] = [int(r), int(s)]
    violators = (
        select(flows.c.order_id)
        .where(upto)
        .group_by(flows.c.order_id)
        .having(
            func.sum(case((flows.c.kind == RECEIVABLE, signed), else_=0))
            < func.sum(case((flows.c.kind == SETTLEMENT, signed), else_=0))
        )
        .order_by(flows.c.order_id)
    )
    fig.violating_orders = [r[0] for r in (await conn.execute(violators)).all()]
    return fig


async def sql_snapshot(engine: AsyncEngine, period: str) -> dict[str, Any]:
    """A period's snapshot recomputed from the flows table by SQL alone."""
    async with engine.connect() as conn:
        return shape_snapshot(period, await sql_figures(conn, period))


# --------------------------------------------------------------------------- periods


@dataclass(frozen=True, slots=True)
class Statement:
    period: str
    body: dict[str, Any]
    digest: str
    closed_at: datetime

    def view(self, tz: tzinfo) -> dict[str, Any]:
        return {
            **self.body,
            "closed": True,
            "closed_at": self.closed_at.astimezone(tz).isoformat(),
            "digest": self.digest,
        }


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


def period_is_over(period: str, *, tz: tzinfo, now: datetime) -> bool:
    return date.fromisoformat(period) < now.astimezone(tz).date()


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
        body = shape_snapshot(period, await sql_figures(conn, period))
        statement = Statement(period, body, digest_of(body), now)
        await conn.execute(
            statements.insert().values(
                period=period, body=body, digest=statement.digest, closed_at=now
            )
        )
    return statement, True
