"""The settlement actor: aggregates receivable and settlement flows per period.

Two layers around `domain.settlement.SettlementBook` (the in-memory fold of flow rows that
snapshots come from in microseconds), both thin:
- `SettlementService` tails the `flows` table by id into a book (and rebuilds it from scratch),
  and answers with typed objects (`PeriodView`, `PeriodSummary`, `Statement`).
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
import os
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import ray
from sqlalchemy.ext.asyncio import AsyncEngine

from actors.config import PlatformConfig
from actors.interfaces import SettlementCalls
from actors.runtime import every
from domain.settlement import (
    PeriodSummary,
    PeriodView,
    SettlementBook,
    Statement,
    parse_period,
)
from persistence.db import make_engine
from persistence.settlement import (
    all_statements,
    close_period,
    flows_since,
    get_statement,
    list_periods,
)

log = logging.getLogger(__name__)


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

    async def snapshot(self, period: str, *, tz: tzinfo) -> PeriodView:
        """An open period's snapshot from the book; a closed one's statement."""
        statement = await get_statement(self.engine, period)
        if statement is not None:
            return statement.view(tz)
        await self.catch_up()
        return PeriodView(self.book.snapshot(period), as_of_flow_id=self.high_water)

    async def periods(self, *, tz: tzinfo) -> list[PeriodSummary]:
        await self.catch_up()
        rows = {p: status for p, status, _closed_at in await list_periods(self.engine)}
        stored = await all_statements(self.engine)
        out = []
        for key in sorted(set(rows) | set(self.book.periods())):
            statement = stored.get(key)
            if statement is not None:
                out.append(statement.summary(tz))
            else:
                status = rows.get(key, "open")
                out.append(PeriodSummary.of(self.book.snapshot(key), status=status, closed_at=None))
        return out

    async def close(self, period: str, *, tz: tzinfo, now: datetime) -> tuple[Statement, bool]:
        statement, created = await close_period(self.engine, period, tz=tz, now=now)
        await self.catch_up()
        return statement, created


class SettlementActor:
    """The Ray home of the platform's `SettlementService` (`SettlementCalls`); restarts
    rebuild it from the database."""

    async def __init__(self, platform: PlatformConfig) -> None:  # type: ignore[misc]
        settings = platform.settlement
        self._tz = ZoneInfo(platform.timezone)
        engine = make_engine(platform.database_url, pool_size=settings.db_pool_size)
        self._service = SettlementService(engine)
        started = time.perf_counter()
        n = await self._service.rebuild()
        gc.freeze()  # this process is the book's: keep the collector off its objects for good
        log.info("settlement book rebuilt: %d flows in %.2fs", n, time.perf_counter() - started)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(every(settings.tick_seconds, self._service.tail))]

    async def snapshot(self, period: str) -> PeriodView:
        return await self._service.snapshot(parse_period(period), tz=self._tz)

    async def periods(self) -> list[PeriodSummary]:
        return await self._service.periods(tz=self._tz)

    async def close(self, period: str) -> tuple[PeriodView, bool]:
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
        return os.getpid()

    async def node_id(self) -> str:
        return str(ray.get_runtime_context().get_node_id())


if TYPE_CHECKING:
    _implements: type[SettlementCalls] = SettlementActor

# The Ray actor class (restarted on failure, never retrying a call).
SettlementActorRemote = ray.remote(max_restarts=-1, max_task_retries=0)(SettlementActor)
