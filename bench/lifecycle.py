"""Signed lock + issue lifecycles over HTTP against PostgreSQL and the sandbox supplier.

    python -m bench.lifecycle [--orders N] [--concurrency C ...]

Prints orders/s and p50/p99 per call for each concurrency, beside two baselines measured in
the same run: the sandbox supplier called directly (lock + issue, no platform), and the
same API server's unsigned GET /healthz (the HTTP layer alone).
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from collections import Counter

from bench.common import FastSignedClient, Stack, Timings, run_concurrently, stack, timed
from bench.proc_cpu import cpu_lines
from bench.profiles import Profiler


async def platform_lifecycles(s: Stack, n: int, concurrency: int) -> tuple[float, Timings, Timings]:
    lock_t, issue_t = Timings("lock (POST /orders)"), Timings("issue (POST …/issue)")
    client = FastSignedClient(s.world.base_url, s.world.a.creds, max_connections=concurrency)
    run = uuid.uuid4().hex[:8]
    failures: Counter[str] = Counter()

    async def one(i: int) -> None:
        body = s.world.order_body(f"B-{run}-{i}", quantity=1)
        r = await timed(lock_t, client.request("POST", "/v1/orders", body))
        if r.status_code != 201:
            failures[f"lock {r.status_code}"] += 1
            return
        r2 = await timed(issue_t, client.request("POST", f"/v1/orders/{r.json()['id']}/issue"))
        if r2.status_code != 200:
            failures[f"issue {r2.status_code}"] += 1

    try:
        elapsed = await run_concurrently(n, concurrency, one)
    finally:
        await client.aclose()
    if failures:
        print(f"  !! lifecycles that did not end FIXED: {dict(failures)}")
    return n / elapsed, lock_t, issue_t


async def sandbox_direct(s: Stack, n: int, concurrency: int) -> float:
    from suppliers.sandbox.gateway import SandboxGateway
    from tests.support.world import SESSION_REF

    gw = SandboxGateway(s.sandbox.url)
    run = uuid.uuid4().hex[:8]

    async def one(i: int) -> None:
        await gw.lock(f"direct-{run}-{i}", SESSION_REF, "e2e_big", 1)
        await gw.issue(f"direct-{run}-{i}")

    try:
        elapsed = await run_concurrently(n, concurrency, one)
    finally:
        await gw.aclose()
    return n / elapsed


async def healthz_rate(s: Stack, n: int, concurrency: int) -> float:
    http = FastSignedClient(s.world.base_url, s.world.a.creds, max_connections=concurrency)

    async def one(_: int) -> None:
        await http.get("/healthz")

    try:
        elapsed = await run_concurrently(n, concurrency, one)
    finally:
        await http.aclose()
    return n / elapsed


async def main_async(
    s: Stack, orders: int, concurrencies: list[int], profiler: Profiler | None = None
) -> None:
    # Warm up: activations, connection pools, supplier actor.
    await platform_lifecycles(s, 50, 4)
    direct = await sandbox_direct(s, orders, max(concurrencies))
    health = await healthz_rate(s, orders * 2, max(concurrencies))
    print(f"baseline sandbox direct lock+issue : {direct:8.1f} lifecycles/s")
    print(f"baseline unsigned GET /healthz     : {health:8.1f} req/s")
    for c in concurrencies:
        before = s.cpu()
        if profiler is not None:
            profiler.start(f"c{c}")
        rate, lock_t, issue_t = await platform_lifecycles(s, orders, c)
        if profiler is not None:
            profiler.stop()
        spent = s.cpu().since(before)
        print(f"\nconcurrency {c}: {rate:.1f} orders/s (lock+issue), {2 * rate:.1f} signed calls/s")
        print(lock_t.line())
        print(issue_t.line())
        print(
            f"  ratio: {rate / direct:.3f} of sandbox-direct lifecycles/s; "
            f"{2 * rate / health:.3f} of the /healthz request rate"
        )
        print("  CPU per lifecycle, by process (/proc):")
        print("\n".join(cpu_lines(spent, orders, target_ms=8)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--orders", type=int, default=1000)
    p.add_argument("--concurrency", type=int, nargs="+", default=[8, 16])
    p.add_argument("--order-hosts", type=int, default=2)
    p.add_argument("--serve-replicas", type=int, default=1)
    p.add_argument("--profile", metavar="DIR", help="py-spy every platform process into DIR")
    args = p.parse_args()
    profiler = Profiler(args.profile) if args.profile else None
    with stack(order_hosts=args.order_hosts, serve_replicas=args.serve_replicas) as s:
        asyncio.run(main_async(s, args.orders, args.concurrency, profiler))


if __name__ == "__main__":
    main()
