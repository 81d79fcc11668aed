"""The settlement actor: aggregates receivable and settlement flows per period.

Three layers, the outer ones thin:
- `SettlementBook`, a plain in-memory fold of flow rows: per booked period, per distributor
  (receivable +, -, net) and per supplier (settlement +, -, net), per currency; per order the
  flows it has, for the receivable >= settlement check. Snapshots come from it in microseconds.
- `SettlementService` tails the `flows` table by id into a book (and rebuilds it from scratch).
- `SettlementActor`, one named Ray actor per platform instance, hosts a service: rebuilds on
  (re)start, tails on a timer, and tails once more before answering, so that a snapshot counts
  every flow committed before the request arrived.

The database is the truth: the book is a cache that a restart rebuilds exactly (the fold only
depends on the set of rows, not on the order they are read in). Money is int minor units.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any, NamedTuple
from zoneinfo import ZoneInfo

import ray
from sqlalchemy.ext.asyncio import AsyncEngine

from actors.runtime import every, named_actor
from domain.flows import Flow, period_of
from persistence.settlement import (
    RECEIVABLE,
    PeriodFigures,
    Statement,
    all_statements,
    close_period,
    flows_since,
    get_statement,
    list_periods,
    parse_period,
    period_summary,
    shape_snapshot,
)

if TYPE_CHECKING:
    from showdist.settings import Settings

log = logging.getLogger(__name__)


class FlowRow(NamedTuple):
    """A flow as the book needs it; the column order of `persistence.settlement.TAIL_COLUMNS`,
    so database rows can be folded without conversion."""

    id: int
    order_id: str
    distributor_id: str
    supplier_id: str
    kind: str
    sign: int
    refund_no: int
    amount: int
    currency: str
    booked_period: str


def rows_from_flows(flows: Iterable[Flow], tz: tzinfo, *, first_id: int = 1) -> list[FlowRow]:
    """Flows as rows booked into their basis period (no period closed), numbered from first_id."""
    return [
        FlowRow(
            first_id + i,
            f.order_id,
            f.distributor_id,
            f.supplier_id,
            f.kind.value,
            f.sign,
            f.refund_no,
            f.amount,
            f.currency,
            period_of(f.basis_time, tz).isoformat(),
        )
        for i, f in enumerate(flows)
    ]


class _Period:
    __slots__ = ("distributors", "flows", "suppliers", "to_date_delta")

    def __init__(self) -> None:
        self.flows = 0
        self.distributors: dict[tuple[str, str], list[int]] = {}
        self.suppliers: dict[tuple[str, str], list[int]] = {}
        self.to_date_delta: dict[str, list[int]] = {}  # currency -> [receivable, settlement] net


# An order's flows: (kind, sign, refund_no, booked_period, signed amount)
_OrderFlow = tuple[str, int, int, str, int]


def _has_key(mine: list[_OrderFlow], kind: str, sign: int, refund_no: int) -> bool:
    # A plain loop: any() over a generator costs twice as much on the rebuild's hot path.
    for f in mine:  # noqa: SIM110
        if f[0] == kind and f[1] == sign and f[2] == refund_no:
            return True
    return False


def _period_of_flow(f: _OrderFlow) -> str:
    return f[3]


class SettlementBook:
    """Per-period totals of a set of flows; adding a flow twice (same key) counts it once."""

    def __init__(self) -> None:
        self._periods: dict[str, _Period] = {}
        self._orders: dict[str, list[_OrderFlow]] = {}
        # Orders whose receivable < settlement over their flows up to some periods:
        # order id -> [(from period, until period exclusive or None)].
        self._violations: dict[str, list[tuple[str, str | None]]] = {}
        self.flow_count = 0

    def apply_rows(self, rows: Iterable[Sequence[Any]]) -> int:
        """Fold rows (FlowRow or TAIL_COLUMNS tuples); returns how many were new."""
        periods = self._periods
        orders = self._orders
        touched: set[str] = set()
        added = 0
        for _id, oid, did, sid, kind, sign, refund_no, amount, code, booked in rows:
            mine = orders.get(oid)
            if mine is None:
                mine = orders[oid] = []
            elif _has_key(mine, kind, sign, refund_no):
                continue  # the ledger's unique key: already counted
            signed = amount if sign > 0 else -amount
            mine.append((kind, sign, refund_no, booked, signed))
            p = periods.get(booked)
            if p is None:
                p = periods[booked] = _Period()
            p.flows += 1
            if kind == RECEIVABLE:
                key = (did, code)
                line = p.distributors.get(key)
                if line is None:
                    line = p.distributors[key] = [0, 0]
                which = 0
            else:
                key = (sid, code)
                line = p.suppliers.get(key)
                if line is None:
                    line = p.suppliers[key] = [0, 0]
                which = 1
            line[0 if sign > 0 else 1] += amount
            delta = p.to_date_delta.get(code)
            if delta is None:
                delta = p.to_date_delta[code] = [0, 0]
            delta[which] += signed
            # A receivable + alone never breaks the order check: skip the common first flow.
            if len(mine) > 1 or which or sign < 0:
                touched.add(oid)
            added += 1
        for oid in touched:
            self._check_order(oid)
        self.flow_count += added
        return added

    def add_flows(self, flows: Iterable[Flow], tz: tzinfo) -> int:
        return self.apply_rows(rows_from_flows(flows, tz))

    def _check_order(self, oid: str) -> None:
        """Record the periods over which the order's flows up to then have
        receivable net < settlement net (each span runs to the order's next period)."""
        mine = self._orders[oid]
        ordered = sorted(mine, key=_period_of_flow) if len(mine) > 1 else mine
        n = len(ordered)
        rec = sett = 0
        spans: list[tuple[str, str | None]] = []
        for i, (kind, _sign, _refund_no, booked, signed) in enumerate(ordered):
            if kind == RECEIVABLE:
                rec += signed
            else:
                sett += signed
            following = ordered[i + 1][3] if i + 1 < n else None
            if following != booked and rec < sett:
                spans.append((booked, following))
        if spans:
            self._violations[oid] = spans
        else:
            self._violations.pop(oid, None)

    # -- reading -----------------------------------------------------------------------------
    def periods(self) -> list[str]:
        return sorted(self._periods)

    def figures(self, period: str) -> PeriodFigures:
        fig = PeriodFigures()
        p = self._periods.get(period)
        if p is not None:
            fig.flows = p.flows
            fig.distributors = {k: list(v) for k, v in p.distributors.items()}
            fig.suppliers = {k: list(v) for k, v in p.suppliers.items()}
        for key, q in self._periods.items():
            if key <= period:
                for code, (rec, sett) in q.to_date_delta.items():
                    acc = fig.to_date.setdefault(code, [0, 0])
                    acc[0] += rec
                    acc[1] += sett
        fig.violating_orders = sorted(
            oid
            for oid, spans in self._violations.items()
            if any(start <= period and (end is None or period < end) for start, end in spans)
        )
        return fig

    def snapshot(self, period: str) -> dict[str, Any]:
        return shape_snapshot(period, self.figures(period))

    def order_nets(self, order_id: str) -> tuple[int, int]:
        """(receivable net, settlement net) of an order over all its flows."""
        rec = sett = 0
        for kind, _s, _r, _p, signed in self._orders.get(order_id, ()):
            if kind == RECEIVABLE:
                rec += signed
            else:
                sett += signed
        return rec, sett


class SettlementService:
    """A book kept up to date with the `flows` table.

    Tailing by autoincrement id: on SQLite one writer at a time means ids become visible in
    order. On PostgreSQL an id is taken from the sequence at INSERT but becomes visible at
    COMMIT, so a reader can see id n+1 before n (and `ON CONFLICT DO NOTHING` and rollbacks
    burn ids for good). We therefore keep a high-water mark (the highest id seen) plus the ids
    below it not seen yet, each with the time we first noticed it missing, and re-ask for those
    ids on every tail until they turn up or have been missing for `gap_grace_seconds`
    (a transaction that holds a flow id longer than that is taken as rolled back). Asking by
    id set is cheap and exact, where re-reading a window of recent ids would re-read thousands
    of rows per tail under load, and the book dedupes by the ledger's unique key anyway. A row
    that commits after its gap expired is not lost for good: the next rebuild counts it.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        gap_grace_seconds: float = 60.0,
        batch: int = 50_000,
        max_gaps: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.book = SettlementBook()
        self.high_water = 0
        self._gaps: dict[int, float] = {}
        self._grace = gap_grace_seconds
        self._batch = batch
        self._max_gaps = max_gaps
        self._clock = clock
        self._lock = asyncio.Lock()
        self._last_tail_started = float("-inf")

    @property
    def gaps(self) -> list[int]:
        return sorted(self._gaps)

    async def rebuild(self) -> int:
        async with self._lock:
            self.book = SettlementBook()
            self.high_water = 0
            self._gaps.clear()
            # The book is millions of small long-lived objects made in one go: the cyclic
            # collector, triggered by the allocations, would rescan them over and over
            # (measured: 3x the rebuild time at 500k flows). Nothing here makes cycles.
            collecting = gc.isenabled()
            gc.disable()
            try:
                return await self._tail()
            finally:
                if collecting:
                    gc.enable()

    async def tail(self) -> int:
        async with self._lock:
            return await self._tail()

    async def catch_up(self) -> None:
        """Make the book count every flow committed before this call; a tail that started
        after the call was made (by someone else, while we waited) is as good as our own."""
        asked = self._clock()
        async with self._lock:
            if self._last_tail_started < asked:
                await self._tail()

    async def _tail(self) -> int:
        self._last_tail_started = self._clock()
        added = 0
        while True:
            rows = await flows_since(
                self.engine, self.high_water, also_ids=list(self._gaps), limit=self._batch
            )
            now = self._clock()
            fresh: list[Sequence[Any]] = []
            for found in rows:
                row = tuple(found)  # plain tuples fold faster than Rows
                fid = row[0]
                if fid > self.high_water:
                    if fid > self.high_water + 1:
                        start = max(self.high_water + 1, fid - self._max_gaps)
                        for missing in range(start, fid):
                            self._gaps[missing] = now
                    self.high_water = fid
                    fresh.append(row)
                elif self._gaps.pop(fid, None) is not None:
                    fresh.append(row)
            added += self.book.apply_rows(fresh)
            if len(rows) < self._batch:
                break
        self._expire_gaps(self._clock())
        return added

    def _expire_gaps(self, now: float) -> None:
        for fid in [f for f, seen in self._gaps.items() if now - seen > self._grace]:
            del self._gaps[fid]
        if len(self._gaps) > self._max_gaps:
            # The oldest ids are the likeliest to be gone for good (burnt by a conflict).
            for fid in sorted(self._gaps)[: len(self._gaps) - self._max_gaps]:
                del self._gaps[fid]

    async def snapshot(self, period: str, *, tz: tzinfo) -> dict[str, Any]:
        """An open period's snapshot from the book; a closed one's statement."""
        statement = await get_statement(self.engine, period)
        if statement is not None:
            return statement.view(tz)
        await self.catch_up()
        return {**self.book.snapshot(period), "closed": False, "as_of_flow_id": self.high_water}

    async def periods(self, *, tz: tzinfo) -> list[dict[str, Any]]:
        await self.catch_up()
        rows = {p: (status, closed_at) for p, status, closed_at in await list_periods(self.engine)}
        stored = await all_statements(self.engine)
        out = []
        for key in sorted(set(rows) | set(self.book.periods())):
            statement = stored.get(key)
            if statement is not None:
                line = period_summary(statement.body)
                line.update(
                    status="closed", closed_at=statement.closed_at.astimezone(tz).isoformat()
                )
            else:
                line = period_summary(self.book.snapshot(key))
                line.update(status=rows.get(key, ("open", None))[0], closed_at=None)
            out.append(line)
        return out

    async def close(self, period: str, *, tz: tzinfo, now: datetime) -> tuple[Statement, bool]:
        statement, created = await close_period(self.engine, period, tz=tz, now=now)
        await self.catch_up()
        return statement, created


@dataclass(frozen=True, slots=True)
class SettlementConfig:
    instance: str
    namespace: str
    database_url: str
    timezone: str
    tick_seconds: float = 1.0


@ray.remote(max_restarts=-1, max_task_retries=0)
class SettlementActor:
    """The Ray home of the platform's `SettlementService`; restarts rebuild it from the DB."""

    async def __init__(self, config: SettlementConfig) -> None:  # type: ignore[misc]
        from persistence.db import make_engine

        self._tz = ZoneInfo(config.timezone)
        self._service = SettlementService(make_engine(config.database_url, pool_size=2))
        started = time.perf_counter()
        n = await self._service.rebuild()
        gc.freeze()  # this process is the book's: keep the collector off its objects for good
        log.info("settlement book rebuilt: %d flows in %.2fs", n, time.perf_counter() - started)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(every(config.tick_seconds, self._service.tail))]

    async def snapshot(self, period: str) -> dict[str, Any]:
        return await self._service.snapshot(parse_period(period), tz=self._tz)

    async def periods(self) -> list[dict[str, Any]]:
        return await self._service.periods(tz=self._tz)

    async def close(self, period: str) -> tuple[dict[str, Any], bool]:
        statement, created = await self._service.close(period, tz=self._tz, now=datetime.now(UTC))
        return statement.view(self._tz), created

    async def stats(self) -> dict[str, Any]:
        return {
            "flows": self._service.book.flow_count,
            "high_water": self._service.high_water,
            "gaps": len(self._service.gaps),
        }

    async def ping(self) -> bool:
        return True

    async def pid(self) -> int:
        import os

        return os.getpid()


def settlement_actor_name(instance: str) -> str:
    return f"{instance}:settlement"


def settlement_config(settings: Settings) -> SettlementConfig:
    return SettlementConfig(
        instance=settings.instance,
        namespace=settings.ray_namespace,
        database_url=settings.resolved_database_url(),
        timezone=settings.timezone,
    )


def settlement_actor_handle(settings: Settings) -> Any:
    """Get the platform's settlement actor, creating it if this is the first caller."""
    config = settlement_config(settings)
    return named_actor(
        SettlementActor,
        settlement_actor_name(config.instance),
        config.namespace,
        max_concurrency=1000,
    ).remote(config)
