"""1,000 concurrent identical issue requests for one order: how many reach the supplier, and
their latency against a lone issue measured in the same run.

    python -m bench.idempotent_issue [--requests 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import uuid

from bench.common import FastSignedClient, Stack, Timings, stack, timed


async def lone_issues(s: Stack, client: FastSignedClient, n: int) -> Timings:
    t = Timings("lone issue")
    for i in range(n):
        r = await client.request(
            "POST", "/v1/orders", s.world.order_body(f"IL-{uuid.uuid4().hex[:8]}-{i}", quantity=1)
        )
        assert r.status_code == 201, r.content
        reply = await timed(t, client.request("POST", f"/v1/orders/{r.json()['id']}/issue"))
        assert reply.status_code == 200
    return t


async def stampede(
    s: Stack, client: FastSignedClient, requests: int
) -> tuple[Timings, int, set[int]]:
    r = await client.request(
        "POST", "/v1/orders", s.world.order_body(f"IS-{uuid.uuid4().hex[:8]}", quantity=1)
    )
    order_id = r.json()["id"]
    before = s.admin.order_calls().get(order_id, {}).get("issue", 0)
    t = Timings(f"{requests} identical issues")
    replies = await asyncio.gather(
        *(timed(t, client.request("POST", f"/v1/orders/{order_id}/issue")) for _ in range(requests))
    )
    calls = s.admin.order_calls()[order_id]["issue"] - before
    return t, calls, {x.status_code for x in replies}


async def main_async(s: Stack, requests: int, rounds: int) -> None:
    client = FastSignedClient(s.world.base_url, s.world.a.creds, max_connections=requests)
    try:
        await lone_issues(s, client, 20)  # warm up
        lone = await lone_issues(s, client, 100)
        print(lone.line())
        for k in range(rounds):
            t, calls, codes = await stampede(s, client, requests)
            print(t.line())
            print(
                f"  round {k + 1}: supplier issue calls = {calls} (target 1); "
                f"statuses {sorted(codes)}; p99 ratio to a lone issue = "
                f"{t.pct(0.99) / lone.pct(0.99):.2f} (target <= 2.0)"
            )
    finally:
        await client.aclose()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    with stack() as s:
        asyncio.run(main_async(s, args.requests, args.rounds))


if __name__ == "__main__":
    main()
