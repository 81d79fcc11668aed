"""The PostgreSQL pool serves its waiters in the order they came (persistence/fair_pool.py),
on a real server: with many more callers than connections, each checking out again as soon
as it checked in, no caller is served after callers that asked later (beyond the pool's first
connections being made), where SQLAlchemy's own pool lets some be passed over again and again."""

from __future__ import annotations

import asyncio
import itertools

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from persistence.db import make_engine
from persistence.fair_pool import FairAsyncPool
from tests.support.services import PostgresServer

CALLERS, ROUNDS = 32, 20


async def most_overtaken(engine: AsyncEngine) -> int:
    """The most checkouts that asked after one checkout and were served before it."""
    asked, served = itertools.count(), itertools.count()
    turns: list[tuple[int, int]] = []

    async def caller() -> None:
        for _ in range(ROUNDS):
            a = next(asked)  # (nothing awaits between this and joining the pool's line)
            async with engine.connect() as conn:
                turns.append((a, next(served)))
                assert (await conn.execute(text("SELECT 1"))).scalar() == 1

    try:
        await asyncio.gather(*(caller() for _ in range(CALLERS)))
    finally:
        await engine.dispose()
    assert len(turns) == CALLERS * ROUNDS
    return max(sum(1 for a2, s2 in turns if a2 > a and s2 < s) for a, s in turns)


async def test_the_platform_pool_serves_waiters_first_come_first_served(
    postgres: PostgresServer,
) -> None:
    engine = make_engine(postgres.create_database("fair_pool"), pool_size=4)
    assert isinstance(engine.sync_engine.pool, FairAsyncPool)
    # (a few may pass while the pool's connections are first made: at most one per connection)
    assert await most_overtaken(engine) <= 4 + 2


async def test_sqlalchemys_own_pool_passes_some_waiters_over_the_same_load(
    postgres: PostgresServer,
) -> None:
    """The control: the same load on SQLAlchemy's pool is served out of order (were it not,
    the test above would prove nothing and the fair pool would be needless)."""
    url = postgres.create_database("stock_pool")
    engine = create_async_engine(url, pool_size=4, max_overflow=2, poolclass=AsyncAdaptedQueuePool)
    assert await most_overtaken(engine) > 20
