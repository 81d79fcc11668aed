"""A signed, grant-filtered GET /v1/shows/{id} against the same server's unsigned trivial
endpoint (GET /healthz), in the same run.

    python -m bench.catalog_read [--requests 5000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio

from bench.common import FastSignedClient, Stack, Timings, run_concurrently, stack, timed


async def rate(
    s: Stack, client: FastSignedClient, n: int, concurrency: int, signed: bool
) -> tuple[float, Timings]:
    t = Timings("signed GET /v1/shows/{id}" if signed else "unsigned GET /healthz")
    target = f"/v1/shows/{s.world.show_id}"

    async def one(_: int) -> None:
        if signed:
            r = await timed(t, client.request("GET", target))
        else:
            r = await timed(t, client.get("/healthz"))
        assert r.status_code == 200, r.content

    elapsed = await run_concurrently(n, concurrency, one)
    return n / elapsed, t


async def main_async(s: Stack, n: int, concurrency: int) -> None:
    client = FastSignedClient(s.world.base_url, s.world.a.creds, max_connections=concurrency)
    try:
        await rate(s, client, 300, concurrency, True)  # warm up caches and connections
        await rate(s, client, 300, concurrency, False)
        base, tb = await rate(s, client, n, concurrency, False)
        got, ts = await rate(s, client, n, concurrency, True)
        base2, _ = await rate(s, client, n, concurrency, False)
        baseline = (base + base2) / 2
        print(tb.line())
        print(ts.line())
        print(f"unsigned /healthz : {baseline:8.1f} req/s (mean of a run before and after)")
        print(f"signed show detail: {got:8.1f} req/s")
        print(f"ratio: {got / baseline:.3f} (target >= 0.80)")
    finally:
        await client.aclose()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--requests", type=int, default=5000)
    p.add_argument("--concurrency", type=int, default=16)
    args = p.parse_args()
    with stack() as s:
        asyncio.run(main_async(s, args.requests, args.concurrency))


if __name__ == "__main__":
    main()
