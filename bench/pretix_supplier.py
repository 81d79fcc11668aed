"""Signed lock + issue lifecycles over HTTP with a real pretix as the supplier.

    python -m bench.pretix_supplier [--orders N] [--concurrency C ...]

Starts what it needs: PostgreSQL, Redis, the sandbox, Ray and the platform (bench/common.py),
and a pretix of its own (tests/support/pretix.py: the pinned pretix on SQLite, gunicorn with
`--workers`, which `scripts/pretix-env` must have installed). It makes a pretix event series
with a large quota, a pretix supplier of it through the admin API (synced), and runs N
lifecycles (`POST /v1/orders`, then `POST /v1/orders/{id}/issue`) per concurrency. Printed for
each concurrency: lifecycles/s and p50/p99 of lock and issue, beside two baselines measured in
the same run at the same concurrency: the same lifecycle through the platform against the
sandbox supplier, and the pretix gateway called directly (lock + issue, no platform).
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from collections import Counter
from dataclasses import dataclass

from bench.common import FastSignedClient, Stack, Timings, run_concurrently, stack, timed
from persistence.catalog import catalog_id
from suppliers.pretix.gateway import PretixGateway
from suppliers.pretix.mapping import session_ref, tier_ref
from suppliers.registry import build_gateway
from tests.support.pretix import PretixServer, SeriesEvent


@dataclass
class Target:
    """A session and tier to order, and what to call it in the output."""

    name: str
    session_id: str
    tier_id: str


async def add_pretix_supplier(s: Stack, pretix: PretixServer, event: SeriesEvent) -> Target:
    ops = FastSignedClient(s.world.base_url, s.world.admin)
    try:
        config = pretix.gateway_config(event.slug)
        r = await ops.request(
            "POST",
            "/admin/v1/suppliers",
            {"name": "pretix bench", "gateway": "pretix", "config": config},
        )
        if r.status_code != 201:
            raise SystemExit(f"creating the pretix supplier: {r.status_code} {r.content!r}")
        sid = r.json()["id"]
        r = await ops.request("POST", f"/admin/v1/suppliers/{sid}/sync")
        if r.status_code != 200:
            raise SystemExit(f"syncing the pretix supplier: {r.status_code} {r.content!r}")
    finally:
        await ops.aclose()
    ses = session_ref(event.dates[0])
    return Target(
        "pretix",
        catalog_id("ses", sid, event.slug, ses),
        catalog_id("tir", sid, event.slug, ses, tier_ref(event.standing)),
    )


async def lifecycles(
    s: Stack, target: Target, n: int, concurrency: int
) -> tuple[float, Timings, Timings, Counter[str]]:
    lock_t, issue_t = Timings("lock (POST /orders)"), Timings("issue (POST …/issue)")
    client = FastSignedClient(s.world.base_url, s.world.a.creds, max_connections=concurrency)
    run = uuid.uuid4().hex[:8]
    failures: Counter[str] = Counter()

    async def one(i: int) -> None:
        body = s.world.order_body(
            f"P-{run}-{i}", session_id=target.session_id, tier_id=target.tier_id, quantity=1
        )
        r = await timed(lock_t, client.request("POST", "/v1/orders", body))
        if r.status_code != 201:
            reason = (r.json().get("order") or {}).get("failure_reason") if r.content else None
            failures[f"lock {r.status_code} {reason}"] += 1
            return
        r2 = await timed(issue_t, client.request("POST", f"/v1/orders/{r.json()['id']}/issue"))
        if r2.status_code != 200:
            failures[f"issue {r2.status_code}"] += 1

    try:
        elapsed = await run_concurrently(n, concurrency, one)
    finally:
        await client.aclose()
    return n / elapsed, lock_t, issue_t, failures


async def pretix_direct(
    pretix: PretixServer, event: SeriesEvent, n: int, concurrency: int
) -> tuple[float, Timings, Timings]:
    gw = build_gateway("pretix", pretix.gateway_config(event.slug))
    assert isinstance(gw, PretixGateway)
    lock_t, issue_t = Timings("gateway lock"), Timings("gateway issue")
    run = uuid.uuid4().hex[:8]
    ses, tier = session_ref(event.dates[0]), tier_ref(event.standing)

    async def one(i: int) -> None:
        await timed(lock_t, gw.lock(f"direct-{run}-{i}", ses, tier, 1))
        await timed(issue_t, gw.issue(f"direct-{run}-{i}"))

    try:
        elapsed = await run_concurrently(n, concurrency, one)
    finally:
        await gw.aclose()
    return n / elapsed, lock_t, issue_t


async def main_async(
    s: Stack, pretix: PretixServer, event: SeriesEvent, orders: int, concurrencies: list[int]
) -> None:
    pretix_target = await add_pretix_supplier(s, pretix, event)
    sandbox_target = Target("sandbox", s.world.session_id, s.world.big_tier_id)
    # Warm up: activations, connection pools, both supplier actors, pretix's workers.
    for target in (sandbox_target, pretix_target):
        await lifecycles(s, target, 10, 2)
    for c in concurrencies:
        print(f"\nconcurrency {c}, {orders} lifecycles each (lock + issue, quantity 1):")
        rates: dict[str, float] = {}
        for target in (pretix_target, sandbox_target):
            rate, lock_t, issue_t, failures = await lifecycles(s, target, orders, c)
            rates[target.name] = rate
            print(f"  {target.name:>8} through the platform: {rate:8.2f} lifecycles/s")
            print("  " + lock_t.line())
            print("  " + issue_t.line())
            if failures:
                print(f"  !! lifecycles that did not end FIXED: {dict(failures)}")
        direct, d_lock, d_issue = await pretix_direct(pretix, event, orders, c)
        print(f"    pretix gateway direct (no platform): {direct:8.2f} lifecycles/s")
        print("  " + d_lock.line())
        print("  " + d_issue.line())
        print(
            f"  ratio: pretix {rates['pretix'] / rates['sandbox']:.4f} of the sandbox's rate, "
            f"{rates['pretix'] / direct:.3f} of the pretix gateway's own"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--orders", type=int, default=100)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    p.add_argument("--pretix-workers", type=int, default=2)
    args = p.parse_args()
    pretix = PretixServer.start(workers=args.pretix_workers)
    try:
        admin = pretix.admin()
        try:
            event = admin.create_series(f"bench-{uuid.uuid4().hex[:8]}", standing_size=1_000_000)
        finally:
            admin.close()
        print(f"pretix {pretix.url}, {args.pretix_workers} gunicorn workers, SQLite")
        with stack() as s:
            asyncio.run(main_async(s, pretix, event, args.orders, args.concurrency))
    finally:
        pretix.stop()


if __name__ == "__main__":
    main()
