"""Order moves straight against the repository on PostgreSQL: one statement per move versus
the transaction of SQLAlchemy statements, in the same process and the same database.

    python -m bench.order_moves [--lifecycles 500] [--rounds 2] [--pool 16]

A lifecycle is the hot path's four moves with the facts a real one has: `insert_new` (NEW),
then `save` of LOCKED (lock ref and expiry, a receivable flow, a callback), FIXING (a
callback) and FIXED (two tickets, a settlement flow, a callback). Each round runs N
lifecycles at concurrency 1 and at 16, first with every move forced through the transaction
(the baseline), then with the one-statement path, and prints moves/s, p50/p99 per move, the
client's CPU per lifecycle (`time.process_time`), PostgreSQL's (from /proc of the server's
processes) and the ratios. The day's period row exists, as it does after the day's first
flow (that first flow takes the transaction on either path).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.common import Timings, run_concurrently
from bench.proc_cpu import CpuSnapshot
from domain.order import IssuedTicket, Order
from persistence.db import make_engine
from persistence.migrate import upgrade_async
from persistence.orders import OrderRepository
from persistence.tables import distributors, periods, suppliers
from tests.integration import test_persistence
from tests.support.services import PostgresServer

NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
DIST, SUP = "dst_bench", "sup_bench"
_refs = itertools.count()


@dataclass
class Run:
    path: str
    concurrency: int
    lifecycles: int
    seconds: float
    client_cpu_s: float
    pg_cpu_s: float
    moves: Timings

    @property
    def moves_per_s(self) -> float:
        return 4 * self.lifecycles / self.seconds

    def per_lifecycle_ms(self, seconds: float) -> float:
        return 1000.0 * seconds / self.lifecycles

    def line(self) -> str:
        return (
            f"  {self.path:>13} c={self.concurrency:<2}: {self.moves_per_s:7.0f} moves/s  "
            f"p50 {self.moves.pct(0.5):5.2f} ms  p99 {self.moves.pct(0.99):6.2f} ms  "
            f"client CPU {self.per_lifecycle_ms(self.client_cpu_s):5.2f} ms/lifecycle  "
            f"PostgreSQL CPU {self.per_lifecycle_ms(self.pg_cpu_s):5.2f} ms/lifecycle"
        )


def new_order() -> Order:
    """A NEW order with a callback URL, as the tests build it."""
    return test_persistence.new_order(DIST, SUP, f"B-{next(_refs)}", NOW)


async def lifecycle(repo: OrderRepository, timings: Timings) -> None:
    order = new_order()
    t = NOW + timedelta(seconds=1)

    async def timed_move(move: Awaitable[object]) -> None:
        started = time.perf_counter()
        await move
        timings.add((time.perf_counter() - started) * 1000.0)

    await timed_move(repo.insert_new(order))
    order.mark_locked(t, "LOCK-1", t + timedelta(minutes=15))
    await timed_move(repo.save(order))
    order.start_fixing(t)
    await timed_move(repo.save(order))
    order.mark_fixed(t, (IssuedTicket("C-1", "A-1"), IssuedTicket("C-2", "A-2")))
    await timed_move(repo.save(order))


def pg_cpu_seconds(postmaster: int) -> float:
    by_role = CpuSnapshot.take(extra_roots=(postmaster,)).since(CpuSnapshot({}, {}))
    return by_role.get("PostgreSQL", 0.0)


async def measure(
    repo: OrderRepository, path: str, n: int, concurrency: int, postmaster: int
) -> Run:
    await run_concurrently(2 * concurrency, concurrency, lambda _: lifecycle(repo, Timings("w")))
    timings = Timings("move")
    pg0, cpu0 = pg_cpu_seconds(postmaster), time.process_time()
    seconds = await run_concurrently(n, concurrency, lambda _: lifecycle(repo, timings))
    client, pg = time.process_time() - cpu0, pg_cpu_seconds(postmaster) - pg0
    return Run(path, concurrency, n, seconds, client, pg, timings)


async def seed(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            insert(distributors).values(id=DIST, name="bench", created_at=NOW, updated_at=NOW)
        )
        await conn.execute(
            insert(suppliers).values(
                id=SUP, name="bench", gateway="sandbox", config={}, created_at=NOW, updated_at=NOW
            )
        )
        await conn.execute(insert(periods).values(period=NOW.date().isoformat(), status="open"))


async def main_async(pg: PostgresServer, n: int, rounds: int, pool: int) -> None:
    url = pg.create_database("order_moves")
    await upgrade_async(url)
    engine = make_engine(url, pool_size=pool)
    try:
        await seed(engine)
        repos = {
            "transaction": OrderRepository(engine, one_statement=False),
            "one statement": OrderRepository(engine),
        }
        postmaster = pg.postmaster_pid()
        for r in range(1, rounds + 1):
            print(f"round {r}: {n} lifecycles ({4 * n} moves) per line, pool {pool}")
            for concurrency in (1, 16):
                runs = [
                    await measure(repo, path, n, concurrency, postmaster)
                    for path, repo in repos.items()
                ]
                for run in runs:
                    print(run.line())
                slow, fast = runs
                print(
                    f"  {'ratio':>13} c={concurrency:<2}: "
                    f"{fast.moves_per_s / slow.moves_per_s:5.2f}x moves/s, "
                    f"client CPU {slow.client_cpu_s / fast.client_cpu_s:5.2f}x less, "
                    f"PostgreSQL CPU {slow.pg_cpu_s / max(fast.pg_cpu_s, 1e-9):5.2f}x less"
                )
        for path, repo in repos.items():
            print(f"  paths taken ({path} repository): {dict(repo.paths)}")
    finally:
        await engine.dispose()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--lifecycles", type=int, default=500)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--pool", type=int, default=16)
    args = p.parse_args()
    pg = PostgresServer.start()
    try:
        asyncio.run(main_async(pg, args.lifecycles, args.rounds, args.pool))
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
