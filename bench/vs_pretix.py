"""showdist and pretix side by side: the same client, the same concurrency, one machine.

    python -m bench.vs_pretix [--orders 1500] [--pretix-orders 300] [--concurrency 8 16]
                              [--pretix-workers 4] [--order-hosts 2]

Starts PostgreSQL, Redis, the sandbox supplier and the platform (bench.common.stack), and a
pretix (as the test command installs it: scripts/pretix-env) on a database of the same
PostgreSQL server, migrated here, served by `--pretix-workers` gunicorn workers. Then, at each
concurrency, with one aiohttp client:
- pretix: create a pending order of one ticket (`POST orders/`), then mark it paid
  (`POST orders/{code}/mark_paid/`), through its REST API with a team token;
- showdist: lock (`POST /v1/orders`), then issue (`POST /v1/orders/{id}/issue`), signed.
Prints both rates (full lifecycles a second), p50/p99 per call, CPU per lifecycle by process,
and the ratio showdist / pretix (target >= 25). `--order-hosts` is the platform's order hosts
(two by default, as the platform's own default; one host is the cheaper shape on one
two-core machine, see docs/design.md, "Measured figures").
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections import Counter
from typing import Any

from bench.common import Stack, Timings, run_concurrently, stack
from bench.lifecycle import platform_lifecycles
from bench.proc_cpu import cpu_lines
from tests.support.pretix import PretixPostgres, PretixServer
from tests.support.services import HOST, PG_USER


class PretixClient:
    """pretix's REST API for one event, on aiohttp (as the showdist client is)."""

    def __init__(self, server: PretixServer, event: str, max_connections: int) -> None:
        import aiohttp

        self._session = aiohttp.ClientSession(
            base_url=f"{server.url}/",
            headers={"Authorization": f"Token {server.token}", "Accept-Language": "en"},
            connector=aiohttp.TCPConnector(limit=max_connections),
            timeout=aiohttp.ClientTimeout(total=120),
        )
        self._path = f"api/v1/organizers/{server.organizer}/events/{event}/"

    async def post(self, path: str, body: Any) -> tuple[int, Any]:
        async with self._session.post(self._path + path, json=body) as r:
            return r.status, await r.json(content_type=None)

    async def aclose(self) -> None:
        await self._session.close()


async def pretix_lifecycles(
    server: PretixServer, event: str, item: int, n: int, concurrency: int
) -> tuple[float, Timings, Timings]:
    create_t, paid_t = Timings("create pending order"), Timings("mark paid")
    client = PretixClient(server, event, concurrency)
    failures: Counter[str] = Counter()

    async def one(_: int) -> None:
        body = {
            "status": "n",
            "sales_channel": "web",
            "send_email": False,
            "email": "buyer@example.com",
            "positions": [{"item": item}],
        }
        started = time.perf_counter()
        status, order = await client.post("orders/", body)
        create_t.add((time.perf_counter() - started) * 1000.0)
        if status != 201:
            failures[f"create {status}"] += 1
            return
        started = time.perf_counter()
        status, _ = await client.post(f"orders/{order['code']}/mark_paid/", {"send_email": False})
        paid_t.add((time.perf_counter() - started) * 1000.0)
        if status != 200:
            failures[f"mark_paid {status}"] += 1

    try:
        elapsed = await run_concurrently(n, concurrency, one)
    finally:
        await client.aclose()
    if failures:
        print(f"  !! pretix lifecycles that did not end paid: {dict(failures)}")
    return n / elapsed, create_t, paid_t


async def main_async(
    s: Stack, pretix: PretixServer, orders: int, pretix_orders: int, concurrencies: list[int]
) -> None:
    admin = pretix.admin()
    try:
        event = f"bench{uuid.uuid4().hex[:6]}"
        item = admin.create_single(event, size=pretix_orders * len(concurrencies) + 100)
    finally:
        admin.close()
    await pretix_lifecycles(pretix, event, item, 20, 4)  # warm up
    await platform_lifecycles(s, 50, 4)
    for c in concurrencies:
        before = s.cpu()
        p_rate, create_t, paid_t = await pretix_lifecycles(pretix, event, item, pretix_orders, c)
        p_cpu = s.cpu().since(before)
        before = s.cpu()
        rate, lock_t, issue_t = await platform_lifecycles(s, orders, c)
        s_cpu = s.cpu().since(before)
        print(f"\nconcurrency {c}")
        print(f"  pretix  : {p_rate:8.1f} lifecycles/s (create pending order + mark paid)")
        print("  " + create_t.line())
        print("  " + paid_t.line())
        print("   CPU per pretix lifecycle, by process:")
        print("\n".join(cpu_lines(p_cpu, pretix_orders, platform_total=False)))
        print(f"  showdist: {rate:8.1f} lifecycles/s (lock + issue)")
        print("  " + lock_t.line())
        print("  " + issue_t.line())
        print("   CPU per showdist lifecycle, by process:")
        print("\n".join(cpu_lines(s_cpu, orders, target_ms=8)))
        print(f"  ratio showdist / pretix: {rate / p_rate:.1f}x  (target >= 25)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--orders", type=int, default=1500)
    p.add_argument("--pretix-orders", type=int, default=300)
    p.add_argument("--concurrency", type=int, nargs="+", default=[8, 16])
    p.add_argument("--pretix-workers", type=int, default=4)
    p.add_argument("--order-hosts", type=int, default=2)
    args = p.parse_args()
    with stack(order_hosts=args.order_hosts) as s:
        s.pg.create_database("pretix")
        started = time.monotonic()
        pretix = PretixServer.start(
            workers=args.pretix_workers,
            timeout=180.0,
            postgres=PretixPostgres(HOST, s.pg.port, PG_USER, "pretix"),
        )
        print(
            f"pretix on PostgreSQL, {args.pretix_workers} workers, up in "
            f"{time.monotonic() - started:.0f} s (migrations included)"
        )
        try:
            asyncio.run(main_async(s, pretix, args.orders, args.pretix_orders, args.concurrency))
        finally:
            pretix.stop()


if __name__ == "__main__":
    main()
