"""A flash sale: many create attempts on one small tier, from many distributors at once.

    python -m bench.flash_sale [--attempts 20000] [--seats 2000] [--concurrency 64]
                               [--distributors 20] [--serve-replicas 1] [--profile DIR]

Against PostgreSQL, Redis and the sandbox supplier (a box office of its own with one tier of
`--seats` seats). Prints the wall time, how many attempts got seats (must be exactly the
seats), how many were refused `sold_out` (every other one) and any other answer (must be
none), the lock calls the supplier received, p50/p99 of the locks and of the refusals (all of
them, those after the first refusal, when the tier is known to be sold out, and those asked
after the last lock was answered), CPU per attempt by process, and as the baselines from the
same run the cheapest signed call (a GET of one order) and the cheapest call of all (an
unsigned `GET /healthz`, the floor of any answer through HAProxy and the replica) at the
same concurrency.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections import Counter

from bench.common import FastSignedClient, Stack, Timings, run_concurrently, stack
from bench.proc_cpu import cpu_lines
from bench.profiles import Profiler
from showdist.client import AsyncSignedClient
from tests.support.flash_sale import FlashSale, open_flash_sale


async def sale_run(
    s: Stack, sale: FlashSale, attempts: int, concurrency: int
) -> tuple[float, Counter[str], Timings, Timings, Timings, Timings, str]:
    clients = [
        FastSignedClient(s.world.base_url, c, max_connections=concurrency) for c in sale.sellers
    ]
    locks, refusals, known = Timings("lock (201)"), Timings("refusal (409)"), Timings("known")
    answers: Counter[str] = Counter()
    first_refusal: list[float] = []
    last_lock = 0.0  # when the last 201 was answered
    refused_at: list[tuple[float, float]] = []  # (started, ms) of each known refusal
    run = uuid.uuid4().hex[:6]
    some_order = ""

    async def one(i: int) -> None:
        nonlocal some_order, last_lock
        client = clients[i % len(clients)]
        started = time.perf_counter()
        r = await client.request("POST", "/v1/orders", sale.body(f"FS-{run}-{i}"))
        ms = (time.perf_counter() - started) * 1000.0
        if r.status_code == 201:
            locks.add(ms)
            last_lock = max(last_lock, time.perf_counter())
            answers["LOCKED"] += 1
            if i % len(clients) == 0 and not some_order:
                some_order = r.json()["id"]  # one of the first distributor's orders
            return
        code = r.json().get("error", {}).get("code", "?") if r.status_code < 500 else "5xx"
        answers[f"{r.status_code} {code}"] += 1
        if code == "sold_out":
            refusals.add(ms)
            if first_refusal and started > first_refusal[0]:
                known.add(ms)
                refused_at.append((started, ms))
            elif not first_refusal:
                first_refusal.append(time.perf_counter())

    try:
        elapsed = await run_concurrently(attempts, concurrency, one)
    finally:
        for c in clients:
            await c.aclose()
    known.name = "refusal, known sold out"
    # The same, asked after the last seat's lock was answered: no lock in flight any more.
    after = Timings("refusal, after the last lock")
    for started, ms in refused_at:
        if started > last_lock:
            after.add(ms)
    return elapsed, answers, locks, refusals, known, after, some_order


async def signed_get_baseline(s: Stack, sale: FlashSale, order_id: str, n: int, c: int) -> Timings:
    t = Timings("signed GET one order")
    client = FastSignedClient(s.world.base_url, sale.sellers[0], max_connections=c)

    async def one(_: int) -> None:
        started = time.perf_counter()
        r = await client.request("GET", f"/v1/orders/{order_id}")
        assert r.status_code == 200, r.status_code
        t.add((time.perf_counter() - started) * 1000.0)

    try:
        await run_concurrently(n, c, one)
    finally:
        await client.aclose()
    return t


async def healthz_baseline(s: Stack, sale: FlashSale, n: int, c: int) -> Timings:
    """The floor: an unsigned `GET /healthz` (no signature, no Redis, no database) through
    the same HAProxy and replica at the same concurrency."""
    t = Timings("unsigned GET /healthz")
    client = FastSignedClient(s.world.base_url, sale.sellers[0], max_connections=c)

    async def one(_: int) -> None:
        started = time.perf_counter()
        r = await client.get("/healthz")
        assert r.status_code == 200, r.status_code
        t.add((time.perf_counter() - started) * 1000.0)

    try:
        await run_concurrently(n, c, one)
    finally:
        await client.aclose()
    return t


async def main_async(
    s: Stack,
    attempts: int,
    seats: int,
    concurrency: int,
    sellers: int,
    profiler: Profiler | None = None,
) -> None:
    admin = AsyncSignedClient(s.world.base_url, s.world.admin)
    sale = await open_flash_sale(admin, stock=seats, sellers=sellers)
    try:
        calls_before = sale.box_office.counters()["lock"]
        before = s.cpu()
        if profiler is not None:
            profiler.start("sale")
        try:
            elapsed, answers, locks, refusals, known, after, some = await sale_run(
                s, sale, attempts, concurrency
            )
        finally:
            if profiler is not None:
                profiler.stop()
        spent = s.cpu().since(before)
        supplier_calls = sale.box_office.counters()["lock"] - calls_before
        inventory = next(iter(sale.box_office.inventory().values()))
        baseline = await signed_get_baseline(s, sale, some, min(attempts, 5000), concurrency)
        floor = await healthz_baseline(s, sale, min(attempts, 5000), concurrency)
    finally:
        await sale.retire(admin)
        await admin.aclose()
    print(
        f"flash sale: {attempts} attempts on {seats} seats, concurrency {concurrency}, "
        f"{sellers} distributors"
    )
    print(f"  wall time        : {elapsed:8.2f} s  ({attempts / elapsed:.0f} attempts/s)")
    print(f"  answers          : {dict(answers)}")
    exact = answers["LOCKED"] == seats and answers["409 sold_out"] == attempts - seats
    print(f"  exactly {seats} LOCKED, every other one sold_out: {'yes' if exact else 'NO'}")
    print(f"  supplier lock calls: {supplier_calls}  (box office now {inventory})")
    for t in (locks, refusals, known, after, baseline, floor):
        print("  " + t.line())
    if baseline.samples_ms and floor.samples_ms and known.samples_ms:
        print(
            f"  ratio: known refusals' p99 is {known.pct(0.99) / baseline.pct(0.99):.2f}x "
            f"the signed GET's p99 and {known.pct(0.99) / floor.pct(0.99):.2f}x "
            "the unsigned /healthz's (target p99 <= 20 ms)"
        )
    print("  CPU per attempt, by process (/proc):")
    print("\n".join(cpu_lines(spent, attempts, unit="attempt")))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--attempts", type=int, default=20_000)
    p.add_argument("--seats", type=int, default=2_000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--distributors", type=int, default=20)
    p.add_argument("--serve-replicas", type=int, default=1)
    p.add_argument("--profile", metavar="DIR", help="py-spy every platform process into DIR")
    args = p.parse_args()
    profiler = Profiler(args.profile) if args.profile else None
    with stack(serve_replicas=args.serve_replicas) as s:
        asyncio.run(
            main_async(s, args.attempts, args.seats, args.concurrency, args.distributors, profiler)
        )


if __name__ == "__main__":
    main()
