"""Order hosts that scale while orders flow (docs/design.md, "Order hosts that scale"): ops
change the number of hosts through the admin API, 2 -> 4 -> 1 -> 3, while 2,000 lifecycles
(lock, then issue) go through the signed API at concurrency 16. Every order ends FIXED, each
was issued once at the supplier, and after each step every running host owns exactly the
partitions the database's assignment gives it.

This runs on the test run's platform (its API answers on /), and leaves it as it found it: two
hosts (host 1 is a new process by then: the handles the other tests hold are renewed)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx

from actors.interfaces import OrderHostCalls
from actors.remote import ActorRole, typed
from actors.routing import find_actor, order_host_name
from domain.partitions import PARTITIONS
from showdist.client import AsyncSignedClient
from showdist.platform import RunningPlatform
from tests.support.world import World

LIFECYCLES = 2_000
CONCURRENCY = 16
STEPS = (4, 1, 3)  # from the platform's 2; then back to 2
RETRIES = 20  # a distributor retrying 503s (the same idempotent request)
UNAVAILABLE: list[tuple[float, str]] = []  # when each 503 came, and for what


async def _retrying(
    client: AsyncSignedClient, method: str, path: str, body: Any, seen: dict[str, int]
) -> httpx.Response:
    for _ in range(RETRIES):
        r = await client.request(method, path, body)
        seen[str(r.status_code)] = seen.get(str(r.status_code), 0) + 1
        if r.status_code != 503:
            return r
        assert r.json()["error"]["code"] == "order_host_unavailable", r.text
        UNAVAILABLE.append((time.monotonic(), path))
        await asyncio.sleep(0.2)
    return r


async def _lifecycles(
    world: World, client: AsyncSignedClient, done: list[str], seen: dict[str, int]
) -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(LIFECYCLES):
        queue.put_nowait(i)
    run = uuid.uuid4().hex[:8]

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            body = world.order_body(f"SCALE-{run}-{i}")
            r = await _retrying(client, "POST", "/v1/orders", body, seen)
            assert r.status_code in (200, 201), r.text
            assert r.json()["status"] == "LOCKED", r.text
            oid = r.json()["id"]
            r = await _retrying(client, "POST", f"/v1/orders/{oid}/issue", None, seen)
            assert (r.status_code, r.json()["status"]) == (200, "FIXED"), r.text
            done.append(oid)

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


async def _scale(admin: AsyncSignedClient, hosts: int) -> dict[str, Any]:
    started = time.monotonic()
    r = await admin.request("PUT", "/admin/v1/order-hosts", {"hosts": hosts})
    assert r.status_code == 200, r.text  # every handover done within the call's bound
    view: dict[str, Any] = r.json()
    view["took_s"] = time.monotonic() - started
    view["began"] = started
    return view


def _check_view(view: dict[str, Any], hosts: int) -> None:
    assert (view["hosts"], view["settled"], view["moving"]) == (hosts, True, 0), view
    rows = {row["host"]: row for row in view["assignment"]}
    # Exactly `hosts` hosts, balanced, each holding what the assignment gives it.
    assert sorted(rows) == list(range(hosts)), view
    counts = [rows[h]["partitions"] for h in range(hosts)]
    assert sum(counts) == PARTITIONS, counts
    assert max(counts) - min(counts) <= 1, counts
    assert all(rows[h]["held"] == rows[h]["partitions"] for h in range(hosts)), view


async def _hosts_hold(platform: RunningPlatform, view: dict[str, Any]) -> None:
    """What each host says it owns, asked directly (not through the API's report)."""
    config = platform.config
    for row in view["assignment"]:
        host = typed(
            find_actor(config, order_host_name(config.instance, row["host"])),
            OrderHostCalls,
            ActorRole.ORDER_HOST,
        )
        stats = await host.stats()
        assert (stats["partitions"], stats["leaving"]) == (row["partitions"], 0), (row, stats)
        assert stats["assignment_version"] == view["version"], (row, stats)


async def test_order_hosts_scale_2_4_1_3_while_2000_lifecycles_flow(
    world: World,
    platform: RunningPlatform,
    client_a: AsyncSignedClient,
    admin_client: AsyncSignedClient,
    sandbox_admin: Any,
) -> None:
    r = await admin_client.request("GET", "/admin/v1/order-hosts")
    assert r.status_code == 200, r.text
    _check_view(r.json(), 2)
    done: list[str] = []
    seen: dict[str, int] = {}
    flowing = asyncio.ensure_future(_lifecycles(world, client_a, done, seen))
    steps: list[tuple[int, int, float, list[int]]] = []
    try:
        for n, hosts in enumerate(STEPS, start=1):
            # Each step while orders flow: after a share of the lifecycles, before the end.
            while len(done) < n * LIFECYCLES // (len(STEPS) + 1) and not flowing.done():
                await asyncio.sleep(0.05)
            assert not flowing.done(), "the lifecycles ended before the scaling did"
            view = await _scale(admin_client, hosts)
            _check_view(view, hosts)
            await _hosts_hold(platform, view)
            steps.append((hosts, len(done), view["took_s"], view["stopped"]))
            print(f"step to {hosts}: began {view['began']:.2f}, took {view['took_s']:.2f}")
        await flowing
    finally:
        if not flowing.done():
            flowing.cancel()
        back = await _scale(admin_client, 2)
        _check_view(back, 2)
        # The other tests' handles to the hosts, renewed (host 1 was stopped and started).
        platform.hosts[:] = [
            typed(
                find_actor(platform.config, order_host_name(platform.config.instance, i)),
                OrderHostCalls,
                ActorRole.ORDER_HOST,
            )
            for i in range(2)
        ]
    print(
        f"\n{LIFECYCLES} lifecycles at c={CONCURRENCY}; steps (hosts, lifecycles done,"
        f" seconds, hosts stopped): {steps}; answers {seen}"
    )
    print("503s:", [(round(t, 2), p) for t, p in UNAVAILABLE])
    assert len(done) == len(set(done)) == LIFECYCLES
    assert steps[1][3] == [1, 2, 3]  # 4 -> 1 stopped three hosts
    # Every order FIXED (as the API reads it now) and issued once at the supplier.
    calls = sandbox_admin.order_calls()
    sem = asyncio.Semaphore(CONCURRENCY)

    async def status(oid: str) -> str:
        async with sem:
            r = await client_a.request("GET", f"/v1/orders/{oid}")
            assert r.status_code == 200, r.text
            return str(r.json()["status"])

    statuses = await asyncio.gather(*(status(o) for o in done))
    assert set(statuses) == {"FIXED"}
    assert all(calls[o]["issue"] == 1 for o in done), [
        calls[o] for o in done if calls[o]["issue"] != 1
    ][:5]
