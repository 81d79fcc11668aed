"""Settlement aggregation against PostgreSQL: the in-memory book versus plain SQL.

    python -m bench.settlement [--flows 1000000] [--periods 30] [--distributors 50]
                               [--suppliers 10] [--snapshots 1000]

Bulk-loads synthetic flows (COPY) into a fresh PostgreSQL, then measures in one run:
- the rebuild of the settlement book from the table (what the settlement actor does on
  start): flows/s end to end, and the in-memory fold alone over rows already fetched;
- snapshot latency from memory (`SettlementBook.snapshot`, p50/p99 over many snapshots) and
  through `SettlementService.snapshot` (statement lookup + catch-up tail query + book);
- the baseline: a plain SQL GROUP BY over one period's flows, and the full SQL snapshot
  (GROUP BY + totals to date + per-order check) that the tests compare the book with.

No Ray and no platform: the actor is a thin host around the service measured here.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import resource
import statistics
import time
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from sqlalchemy import select

from actors.settlement_actor import SettlementService
from domain.flows import FlowKind
from domain.settlement import SettlementBook
from persistence.db import make_engine
from persistence.migrate import upgrade_async
from persistence.settlement import TAIL_COLUMNS, sql_period_group_by, sql_snapshot
from persistence.tables import flows
from tests.support.services import PostgresServer

TZ = ZoneInfo("Asia/Shanghai")
FIRST_DAY = date(2026, 10, 1)
COLUMNS = [c.name for c in flows.columns]  # the order the generated records follow


def rss_mib() -> float:
    """Resident memory now (not the peak), from /proc."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


def line(name: str, samples_ms: list[float]) -> str:
    return (
        f"{name:>34}: n={len(samples_ms):5d}  p50={pct(samples_ms, 0.5):9.3f} ms  "
        f"p99={pct(samples_ms, 0.99):9.3f} ms  mean={statistics.fmean(samples_ms):9.3f} ms"
    )


def synthetic_flows(
    n: int, periods: int, distributors: int, suppliers: int
) -> list[tuple[Any, ...]]:
    """About n flows of orders with realistic histories: 15% only locked, 10% cancelled,
    60% issued, 15% issued and refunded (supplier first, distributor up to a day later)."""
    rng = random.Random(7)
    start = datetime.combine(FIRST_DAY, datetime.min.time(), TZ)
    span = periods * 86400 - 3 * 86400
    out: list[tuple[Any, ...]] = []
    o = 0

    def add(oid: str, d: str, s: str, kind: FlowKind, sign: int, amount: int, at: datetime) -> None:
        day = at.astimezone(TZ).date().isoformat()
        out.append((len(out) + 1, oid, d, s, kind.value, sign, 0, amount, "CNY", at, day, day, at))

    while len(out) < n:
        o += 1
        oid = f"ord_bench_{o:08d}"
        d = f"dst_{rng.randrange(distributors):03d}"
        s = f"sup_{rng.randrange(suppliers):03d}"
        qty = rng.randint(1, 4)
        settle = rng.randrange(5_000, 200_000)
        rec = (settle + rng.randrange(0, 20_000)) * qty
        sett = settle * qty
        locked = start + timedelta(seconds=rng.randrange(span))
        add(oid, d, s, FlowKind.RECEIVABLE, 1, rec, locked)
        fate = rng.random()
        if fate < 0.15:
            continue
        if fate < 0.25:
            canceled = locked + timedelta(minutes=rng.randint(1, 900))
            add(oid, d, s, FlowKind.RECEIVABLE, -1, rec, canceled)
            continue
        fixed = locked + timedelta(seconds=rng.randint(5, 600))
        add(oid, d, s, FlowKind.SETTLEMENT, 1, sett, fixed)
        if fate < 0.85:
            continue
        supplier_refund = fixed + timedelta(hours=rng.randint(1, 36))
        add(oid, d, s, FlowKind.SETTLEMENT, -1, sett, supplier_refund)
        add(
            oid,
            d,
            s,
            FlowKind.RECEIVABLE,
            -1,
            rec,
            supplier_refund + timedelta(minutes=rng.randint(1, 1440)),
        )
    return out[:n]


async def load(server: PostgresServer, records: list[tuple[Any, ...]]) -> float:
    conn = await asyncpg.connect(server.dsn_for("bench"))
    try:
        # Synthetic flows name no real orders: drop the foreign key in this throw-away
        # database rather than insert a few hundred thousand order rows nobody reads.
        await conn.execute("ALTER TABLE flows DROP CONSTRAINT fk_flows_order_id_orders")
        started = time.perf_counter()
        await conn.copy_records_to_table("flows", records=records, columns=COLUMNS)
        await conn.execute("SELECT setval(pg_get_serial_sequence('flows', 'id'), $1)", len(records))
        await conn.execute("ANALYZE flows")
        return time.perf_counter() - started
    finally:
        await conn.close()


async def run(args: argparse.Namespace) -> None:
    server = PostgresServer.start()
    try:
        url = server.create_database("bench")
        await upgrade_async(url)
        t0 = time.perf_counter()
        records = synthetic_flows(args.flows, args.periods, args.distributors, args.suppliers)
        gen_s = time.perf_counter() - t0
        load_s = await load(server, records)
        period_keys = sorted({r[11] for r in records})
        del records
        print(
            f"{args.flows:,} flows over {len(period_keys)} periods, {args.distributors} "
            f"distributors, {args.suppliers} suppliers (generated in {gen_s:.1f}s, "
            f"COPY + ANALYZE {load_s:.1f}s)"
        )
        engine = make_engine(url, pool_size=2)
        try:
            await measure(engine, period_keys, args)
        finally:
            await engine.dispose()
    finally:
        server.stop()


async def measure(engine: Any, period_keys: list[str], args: argparse.Namespace) -> None:
    rng = random.Random(11)
    # 1. Rebuild from the table, end to end (what the actor does on every start).
    gc.collect()
    rss_before = rss_mib()
    service = SettlementService(engine)
    started = time.perf_counter()
    n = await service.rebuild()
    rebuild_s = time.perf_counter() - started
    assert n == args.flows, (n, args.flows)
    gc.collect()
    book_mib = rss_mib() - rss_before

    # 1b. The fold alone, over rows already in memory.
    async with engine.connect() as conn:
        rows = [tuple(r) for r in await conn.execute(select(*TAIL_COLUMNS).order_by(flows.c.id))]
    gc.disable()  # as the service's rebuild does
    started = time.perf_counter()
    SettlementBook().apply_rows(rows)
    fold_s = time.perf_counter() - started
    gc.enable()
    del rows

    # 2. Snapshots from memory, and through the service (tail query + statement lookup).
    book = service.book
    mem_ms: list[float] = []
    for _ in range(args.snapshots):
        p = rng.choice(period_keys)
        t = time.perf_counter()
        book.snapshot(p)
        mem_ms.append((time.perf_counter() - t) * 1000.0)
    svc_ms: list[float] = []
    for _ in range(max(50, args.snapshots // 5)):
        p = rng.choice(period_keys)
        t = time.perf_counter()
        await service.snapshot(p, tz=TZ)
        svc_ms.append((time.perf_counter() - t) * 1000.0)

    # 3. Baselines: plain SQL GROUP BY over one period, and the full SQL snapshot.
    gb_ms: list[float] = []
    for _ in range(max(30, args.snapshots // 10)):
        p = rng.choice(period_keys)
        t = time.perf_counter()
        async with engine.connect() as conn:
            await sql_period_group_by(conn, p)
        gb_ms.append((time.perf_counter() - t) * 1000.0)
    full_ms: list[float] = []
    checked = rng.sample(period_keys, min(len(period_keys), args.full_sql))
    for p in checked:
        t = time.perf_counter()
        from_sql = await sql_snapshot(engine, p)
        full_ms.append((time.perf_counter() - t) * 1000.0)
        assert from_sql == book.snapshot(p), f"book and SQL differ on {p}"

    print()
    print(f"{'rebuild from PostgreSQL':>34}: {rebuild_s:7.2f} s  = {n / rebuild_s:12,.0f} flows/s")
    print(f"{'fold alone (rows in memory)':>34}: {fold_s:7.2f} s  = {n / fold_s:12,.0f} flows/s")
    print(f"{'book in memory (RSS growth)':>34}: {book_mib:7.0f} MiB")
    print(line("snapshot from memory (book)", mem_ms))
    print(line("snapshot via service (+2 queries)", svc_ms))
    print(line("SQL GROUP BY of one period", gb_ms))
    print(line("full SQL snapshot (+to date, orders)", full_ms))
    print()
    mem50, gb50, full50 = pct(mem_ms, 0.5), pct(gb_ms, 0.5), pct(full_ms, 0.5)
    print(f"SQL GROUP BY p50 / book snapshot p50      = {gb50 / mem50:10,.0f}x")
    print(f"full SQL snapshot p50 / book snapshot p50 = {full50 / mem50:10,.0f}x")
    print(f"full SQL snapshot p50 / service snapshot p50 = {full50 / pct(svc_ms, 0.5):7,.0f}x")
    print(f"book and SQL snapshots equal on {len(checked)} periods checked")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--flows", type=int, default=1_000_000)
    p.add_argument("--periods", type=int, default=30)
    p.add_argument("--distributors", type=int, default=50)
    p.add_argument("--suppliers", type=int, default=10)
    p.add_argument("--snapshots", type=int, default=1000)
    p.add_argument("--full-sql", type=int, default=10, help="periods to recompute fully by SQL")
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
