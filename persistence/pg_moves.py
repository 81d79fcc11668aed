"""An order move as one PostgreSQL statement: one round trip, prepared once per connection.

A `MovePlan` (persistence/order_rows.py) whose rows are all inserts (history, tickets,
releases, supplier-refund records, callbacks, flows) is written as data-modifying CTEs gated
on the order row's write:

    WITH p AS (SELECT period FROM periods WHERE period = ANY($P) AND status = 'open'
               ORDER BY period FOR SHARE),                      -- only with flows
         moved AS (UPDATE orders SET … WHERE id = $1 AND version = $2
                   AND (SELECT count(*) FROM p) = cardinality($P) RETURNING id),
         t0 AS (INSERT INTO order_history (…) SELECT $5::…, $6::… FROM moved),
         t1 AS (INSERT INTO tickets (…) SELECT u.… FROM moved,
                unnest($9::…[], …) WITH ORDINALITY AS u(…, n) ORDER BY u.n),
         …
    SELECT (SELECT count(*) FROM moved), (SELECT count(*) FROM p)

(a NEW order's `moved` is its INSERT). A table's one row goes as a parameter per value, more
rows as an array per column: asyncpg encodes an array of one in about 3 µs, a scalar in well
under one, and a move has a dozen to thirty such columns.

Every CTE sees the same snapshot, so no CTE reads another's rows: the inserts take the
order's id from `moved`, which has no row when the version check fails, and then nothing at
all is written. Flows are booked into their basis days, which `p` holds with a shared lock
taken in day order, as `booked_period` does; when a day is closed or has no row yet, nothing
is written and the move is left to the transaction of SQLAlchemy statements (which books
into the next open day, or makes the day's row).

The SQL of each shape (which tables, which columns) is built once; asyncpg prepares it once
per connection and keeps it in its statement cache. It runs on the raw asyncpg connection
of the engine's own pool, outside any explicit transaction: one statement is its own
transaction. Any error (a duplicate NEW, a dropped connection, a value a column refuses)
hands the move to the SQLAlchemy transaction, which fails (or succeeds) exactly as it always
has, with its messages redacted by persistence/db.py; a dropped connection is invalidated
first, as SQLAlchemy would.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import Column, Dialect, Table
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.ext.asyncio import AsyncEngine

from persistence.order_rows import MovePlan, TableRows
from persistence.pg_raw import raw_asyncpg, raw_capable
from persistence.tables import flows, metadata, orders

log = logging.getLogger(__name__)


class Outcome(enum.Enum):
    MOVED = "moved"  # written
    STALE = "stale"  # the order is not at the expected version: nothing written
    PERIOD = "period"  # a flow's day is closed or has no row yet: nothing written
    FAILED = "failed"  # the statement failed: nothing written


def fits_one_statement(plan: MovePlan) -> bool:
    """Plans of inserts only: negotiations (replaced or closed) and documents (claimed one
    slot at a time, or freed) stay in the transaction; so do a NEW order's flows (a NEW
    order has none)."""
    return (
        not plan.negotiations
        and not plan.claims_documents
        and not plan.frees_documents
        and (plan.expected_version is not None or not plan.flows)
    )


@dataclass(frozen=True, slots=True)
class _Shape:
    """What a statement's SQL depends on: equal shapes share one prepared statement."""

    insert: bool
    order_columns: tuple[str, ...]
    # (table, columns, ignore duplicates, one row): one row goes as scalar parameters, more
    # as one array per column (see `_statement`)
    tables: tuple[tuple[str, tuple[str, ...], bool, bool], ...]
    periods: bool


@dataclass(frozen=True, slots=True)
class _Statement:
    sql: str
    shape: _Shape


def _tables(plan: MovePlan) -> list[TableRows]:
    out = list(plan.inserts)
    if plan.flows:  # every day is open when this is written (the statement checks)
        rows = [{**f, "booked_period": f["basis_period"]} for f in plan.flows]
        out.append(TableRows(flows, rows, ignore_duplicates=True))
    return out


def _shape(plan: MovePlan, tables: list[TableRows]) -> _Shape:
    return _Shape(
        insert=plan.expected_version is None,
        order_columns=tuple(plan.order_row),
        tables=tuple(
            (t.table.name, tuple(t.rows[0]), t.ignore_duplicates, len(t.rows) == 1) for t in tables
        ),
        periods=bool(plan.flows),
    )


_DIALECT = PGDialect()  # type: ignore[no-untyped-call]
_LENGTH = re.compile(r"\(\d+\)")


def _unbounded_type(column: Column[Any]) -> str:
    # Unbounded types: a cast to VARCHAR(n) would cut a long value where the column itself
    # refuses it.
    return _LENGTH.sub("", column.type.compile(dialect=_DIALECT))


@cache
def _statement(shape: _Shape) -> _Statement:
    q = _DIALECT.identifier_preparer.quote
    n = 0

    def param() -> str:
        nonlocal n
        n += 1
        return f"${n}"

    ctes: list[str] = []
    gate = ""
    if shape.periods:
        periods = param()
        ctes.append(
            f"p AS (SELECT period FROM periods WHERE period = ANY({periods}::VARCHAR[]) "
            "AND status = 'open' ORDER BY period FOR SHARE)"
        )
        gate = f"(SELECT count(*) FROM p) = cardinality({periods}::VARCHAR[])"
    if shape.insert:
        columns = ", ".join(q(c) for c in shape.order_columns)
        values = ", ".join(param() for _ in shape.order_columns)
        ctes.append(f"moved AS (INSERT INTO orders ({columns}) VALUES ({values}) RETURNING id)")
    else:
        where = f"id = {param()} AND version = {param()}" + (f" AND {gate}" if gate else "")
        sets = ", ".join(f"{q(c)} = {param()}" for c in shape.order_columns)
        ctes.append(f"moved AS (UPDATE orders SET {sets} WHERE {where} RETURNING id)")
    for i, (name, cols, ignore, single) in enumerate(shape.tables):
        table = metadata.tables[name]
        names = ", ".join(q(c) for c in cols)
        if single:  # a parameter per value: cheaper to encode than arrays of one
            values = ", ".join(f"{param()}::{_unbounded_type(table.c[c])}" for c in cols)
            source = f"SELECT {values} FROM moved"
        else:
            arrays = ", ".join(f"{param()}::{_unbounded_type(table.c[c])}[]" for c in cols)
            picked = ", ".join(f"u.{q(c)}" for c in cols)
            source = (
                f"SELECT {picked} FROM moved, "
                f"unnest({arrays}) WITH ORDINALITY AS u({names}, n) ORDER BY u.n"
            )
        ctes.append(
            f"t{i} AS (INSERT INTO {q(name)} ({names}) {source}"
            + (" ON CONFLICT DO NOTHING)" if ignore else ")")
        )
    open_days = "(SELECT count(*) FROM p)" if shape.periods else "0"
    sql = f"WITH {', '.join(ctes)} SELECT (SELECT count(*) FROM moved), {open_days}"
    return _Statement(sql, shape)


class OneStatementMoves:
    """Writes fitting plans as one statement each on the engine's PostgreSQL (asyncpg)."""

    def __init__(self, engine: AsyncEngine) -> None:
        assert raw_capable(engine)
        self._engine = engine
        self._dialect: Dialect = engine.dialect
        self._processors: dict[tuple[str, str], Callable[[Any], Any] | None] = {}

    def _processor(self, table: Table, column: str) -> Callable[[Any], Any] | None:
        """The column type's own conversion of a value (UTC times, JSON text), as
        SQLAlchemy applies it to a statement's parameters."""
        key = (table.name, column)
        if key not in self._processors:
            self._processors[key] = table.c[column].type.bind_processor(self._dialect)
        return self._processors[key]

    def _args(self, plan: MovePlan, tables: list[TableRows], shape: _Shape) -> list[Any]:
        args: list[Any] = []
        if plan.flows:
            args.append(plan.basis_periods)
        if plan.expected_version is not None:
            args += [plan.order_id, plan.expected_version]
        for c, v in plan.order_row.items():
            fn = self._processor(orders, c)
            args.append(v if fn is None or v is None else fn(v))
        for t, (_, _, _, single) in zip(tables, shape.tables, strict=True):
            for c in t.rows[0]:
                fn = self._processor(t.table, c)
                values = [r[c] for r in t.rows]
                if fn is not None:
                    values = [None if v is None else fn(v) for v in values]
                args.append(values[0] if single else values)
        return args

    async def write(self, plan: MovePlan) -> Outcome:
        tables = _tables(plan)
        statement = _statement(_shape(plan, tables))
        try:
            args = self._args(plan, tables, statement.shape)
        except Exception:  # a value its column refuses: the transaction says how
            return Outcome.FAILED
        # The pool's connection itself, without a SQLAlchemy Connection around it (which
        # cost more CPU than the statement): checked out, used once, checked in.
        async with raw_asyncpg(self._engine) as driver:
            try:
                moved, open_days = await driver.fetchrow(statement.sql, *args)
            except Exception as exc:
                # Nothing was written (or, if the reply was lost, the transaction's version
                # check or duplicate key will say so). The kind only: a message may carry the
                # row's values.
                log.warning("one-statement move failed (%s); the transaction writes it", type(exc))
                return Outcome.FAILED
        if moved == 1:
            return Outcome.MOVED
        if plan.flows and open_days < len(plan.basis_periods):
            return Outcome.PERIOD
        return Outcome.STALE
