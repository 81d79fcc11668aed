"""The fair PostgreSQL pool (`make_engine(..., fair=True)`, the API replicas') serves its
waiters in the order they came (persistence/fair_pool.py), on a real server: with many more
callers than connections, each checking out again as soon as it checked in, no caller is
served after callers that asked later (once the pool's connections are made), where
SQLAlchemy's own pool lets some be passed over again and again. And the raw connections of
the hot path (persistence/pg_raw.py) go back to either pool as SQLAlchemy's own do: an
overflow connection it has no room for is closed, not left open with an error."""

from __future__ import annotations

import asyncio
import itertools
import logging
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from persistence.db import make_engine
from persistence.fair_pool import FairAsyncPool
from persistence.pg_raw import raw_asyncpg
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
    # From the second round on: the first round's callers include those the pool makes its
    # connections for, one at a time, while the first connections already serve the line.
    return max(sum(1 for a2, s2 in turns if a2 > a and s2 < s) for a, s in turns if a >= CALLERS)


async def test_the_platform_pool_serves_waiters_first_come_first_served(
    postgres: PostgresServer,
) -> None:
    engine = make_engine(postgres.create_database("fair_pool"), pool_size=4, fair=True)
    assert isinstance(engine.sync_engine.pool, FairAsyncPool)
    assert await most_overtaken(engine) <= 1  # (a caller resumed a step late, at most)


async def test_sqlalchemys_own_pool_passes_some_waiters_over_the_same_load(
    postgres: PostgresServer,
) -> None:
    """The control: the same load on SQLAlchemy's pool is served out of order (were it not,
    the test above would prove nothing and the fair pool would be needless)."""
    url = postgres.create_database("stock_pool")
    engine = create_async_engine(url, pool_size=4, max_overflow=2, poolclass=AsyncAdaptedQueuePool)
    assert await most_overtaken(engine) > 20


@pytest.mark.parametrize("fair", [False, True])
async def test_raw_overflow_connections_are_closed_when_they_come_back(
    postgres: PostgresServer, caplog: pytest.LogCaptureFixture, fair: bool
) -> None:
    """A pool with overflow (not `make_engine`'s any more: it keeps what it opens) closes the
    connections past its size as they come back, raw ones too."""
    url = postgres.create_database(f"raw_overflow_{int(fair)}")
    pool_class = FairAsyncPool if fair else AsyncAdaptedQueuePool
    engine = create_async_engine(url, pool_size=2, max_overflow=2, poolclass=pool_class)
    name = url.rsplit("/", 1)[1]
    watcher = await asyncpg.connect(url.replace("+asyncpg", ""))

    async def open_here() -> int:
        n = await watcher.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        return int(n)

    held = asyncio.Event()
    inside = 0

    async def hold() -> None:
        nonlocal inside
        async with raw_asyncpg(engine) as conn:
            assert await conn.fetchval("SELECT 1") == 1
            inside += 1
            await held.wait()

    caplog.set_level(logging.ERROR)
    try:
        holders = [asyncio.ensure_future(hold()) for _ in range(4)]
        while inside < 4:
            await asyncio.sleep(0.01)
        assert await open_here() == 4
        held.set()
        await asyncio.gather(*holders)
        assert await open_here() == 2  # the two overflow ones closed; the pool's two kept
        assert [r.getMessage() for r in caplog.records] == []
    finally:
        await watcher.close()
        await engine.dispose()


async def test_the_api_replicas_engine_is_fair_and_an_order_hosts_is_not(
    tmp_path: Path,
) -> None:
    """The API replica's state builds its engine fair; an order host's (`make_engine` as
    actors/order_actor.py calls it) keeps SQLAlchemy's pool. (Building an engine connects to
    nothing: no server is needed here.)"""
    from serve_app.state import PlatformState
    from showdist.settings import Settings

    url = "postgresql+asyncpg://showdist@127.0.0.1:9/none"
    state = PlatformState(Settings(data_dir=tmp_path, database_url=url))
    try:
        assert type(state.engine.sync_engine.pool) is FairAsyncPool
    finally:
        await state.aclose()
    host_engine = make_engine(url, pool_size=4)
    assert type(host_engine.sync_engine.pool) is AsyncAdaptedQueuePool
    await host_engine.dispose()


@pytest.mark.parametrize("fair", [False, True])
async def test_the_platforms_pool_keeps_every_connection_it_opens_and_opens_no_more(
    postgres: PostgresServer, fair: bool
) -> None:
    """`make_engine(pool_size=2)` opens at most 2 + 2 connections and keeps them: a fifth
    caller waits for one, and a second burst starts no PostgreSQL backend (SQLAlchemy's
    overflow closed two of them each time and opened them again)."""
    url = postgres.create_database(f"keeps_{int(fair)}")
    name = url.rsplit("/", 1)[1]
    engine = make_engine(url, pool_size=2, fair=fair)
    watcher = await asyncpg.connect(url.replace("+asyncpg", ""))

    async def open_here() -> int:
        n = await watcher.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        return int(n)

    async def burst() -> set[int]:
        """Five callers at once, each holding its connection until four are in."""
        four_in = asyncio.Event()
        inside, pids = 0, set()

        async def hold() -> None:
            nonlocal inside
            async with engine.connect() as conn:
                pids.add(int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()))
                inside += 1
                if inside == 4:
                    four_in.set()
                await four_in.wait()

        callers = [asyncio.ensure_future(hold()) for _ in range(5)]
        await asyncio.wait_for(four_in.wait(), 10)
        assert await open_here() == 4  # the fifth waits
        await asyncio.gather(*callers)
        assert inside == 5
        return pids

    try:
        first = await burst()
        assert len(first) == 4  # five callers on four connections: one waited for another's
        assert await open_here() == 4  # all kept
        assert await burst() == first  # the same four backends served the second burst
    finally:
        await watcher.close()
        await engine.dispose()
