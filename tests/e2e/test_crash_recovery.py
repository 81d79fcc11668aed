"""SIGKILL an order host, and a supplier actor, while orders are FIXING: after Ray restarts
them every order reaches the right state, and nothing is issued twice."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from typing import Any

import httpx

from actors.interfaces import OrderHostCalls, SupplierActorCalls
from actors.routing import running_supplier_actor
from showdist.client import AsyncSignedClient
from tests.support.database import terminate_connections
from tests.support.waiting import eventually
from tests.support.world import World

IN_FLIGHT = 8


async def _locked_orders(world: World, client: AsyncSignedClient, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        r = await client.request(
            "POST", "/v1/orders", world.order_body(f"K-{uuid.uuid4().hex[:10]}")
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    return ids


async def _issue_all(client: AsyncSignedClient, ids: list[str]) -> list[httpx.Response]:
    return list(
        await asyncio.gather(*(client.request("POST", f"/v1/orders/{i}/issue") for i in ids))
    )


async def _all_fixed(client: AsyncSignedClient, ids: list[str]) -> list[dict[str, Any]]:
    async def probe() -> list[dict[str, Any]]:
        replies = await asyncio.gather(*(client.request("GET", f"/v1/orders/{i}") for i in ids))
        return [r.json() for r in replies]

    return await eventually(probe, lambda os: all(o["status"] == "FIXED" for o in os), timeout=60)


async def _issues_reached_the_supplier(sandbox_admin: Any, ids: list[str]) -> None:
    """Every order FIXING, its issue call hanging at the supplier (which counts a call as it
    arrives)."""

    def arrived() -> bool:
        calls = sandbox_admin.order_calls()
        return all(calls.get(i, {}).get("issue", 0) == 1 for i in ids)

    await eventually(lambda: asyncio.to_thread(arrived), bool, timeout=5, every=0.05)


async def _wait_alive(actor: OrderHostCalls | SupplierActorCalls) -> None:
    async def ping() -> bool:
        try:
            return bool(await asyncio.wait_for(actor.ping(), 5))
        except Exception:
            return False

    await eventually(ping, bool, timeout=60, every=0.5)


async def test_sigkill_of_the_order_hosts_during_fixing(
    world: World, client_a: AsyncSignedClient, sandbox_admin: Any, platform: Any
) -> None:
    ids = await _locked_orders(world, client_a, IN_FLIGHT)
    # The supplier takes 1.5 s to issue (within the gateway's 2 s timeout).
    sandbox_admin.set_faults({"issue": {"hang_rate": 1.0, "hang_ms": 1500}})
    hosts = platform.hosts
    pids = [await h.pid() for h in hosts]
    issuing = asyncio.ensure_future(_issue_all(client_a, ids))
    await asyncio.sleep(0.5)  # every order is FIXING, its issue call hanging at the supplier
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    replies = await issuing
    assert {r.status_code for r in replies} <= {503, 202, 200}
    assert any(r.status_code == 503 for r in replies)  # the hosts died under them
    for h in hosts:
        await _wait_alive(h)
    assert [await h.pid() for h in hosts] != pids
    fixed = await _all_fixed(client_a, ids)
    calls = sandbox_admin.order_calls()
    for o in fixed:
        assert len(o["tickets"]) == 2
        assert calls[o["id"]]["issue"] == 1, calls[o["id"]]


async def test_sigkill_of_the_supplier_pool_host_leaves_issues_in_flight_alone(
    world: World, client_a: AsyncSignedClient, sandbox_admin: Any, platform: Any
) -> None:
    """A pooled supplier's issues go from the order hosts' lanes straight to the supplier
    (actors/supplier_lane.py): its actor's host dying under them changes nothing."""
    ids = await _locked_orders(world, client_a, IN_FLIGHT)
    sandbox_admin.set_faults({"issue": {"hang_rate": 1.0, "hang_ms": 1500}})
    actor = running_supplier_actor(platform.config, world.supplier_id)
    pid = await actor.pid()
    issuing = asyncio.ensure_future(_issue_all(client_a, ids))
    await _issues_reached_the_supplier(sandbox_admin, ids)
    os.kill(pid, signal.SIGKILL)
    replies = await issuing
    sandbox_admin.set_faults({})
    assert {(r.status_code, r.json()["status"]) for r in replies} == {(200, "FIXED")}
    await _wait_alive(actor)
    assert await actor.pid() != pid
    calls = sandbox_admin.order_calls()
    for i in ids:
        assert calls[i]["issue"] == 1, calls[i]


async def test_sigkill_of_the_supplier_actor_during_fixing(
    world: World,
    client_a: AsyncSignedClient,
    admin_client: AsyncSignedClient,
    sandbox_admin: Any,
    platform: Any,
) -> None:
    """A supplier scaled to dedicated replicas is called through them: a replica dying
    under an issue loses its answer, and the order negotiates to FIXED, issued once."""

    async def scale(n: int) -> None:
        resp = await admin_client.request(
            "PUT", f"/admin/v1/suppliers/{world.supplier_id}/replicas", {"replicas": n}
        )
        assert resp.status_code == 200, resp.text

    await scale(2)
    try:
        await asyncio.sleep(1.5)  # past the order hosts' routing cache (1 s): no lane now
        ids = await _locked_orders(world, client_a, IN_FLIGHT)
        sandbox_admin.set_faults({"issue": {"hang_rate": 1.0, "hang_ms": 1500}})
        replicas = [running_supplier_actor(platform.config, world.supplier_id, r) for r in (0, 1)]
        pids = [await a.pid() for a in replicas]
        issuing = asyncio.ensure_future(_issue_all(client_a, ids))
        await _issues_reached_the_supplier(sandbox_admin, ids)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        replies = await issuing
        sandbox_admin.set_faults({})
        # The hosts survived: each order answers FIXING (outcome unknown, negotiating).
        assert {r.status_code for r in replies} == {202}
        for a in replicas:
            await _wait_alive(a)
        fixed = await _all_fixed(client_a, ids)
        calls = sandbox_admin.order_calls()
        for o in fixed:
            assert calls[o["id"]]["issue"] == 1, calls[o["id"]]
    finally:
        sandbox_admin.set_faults({})
        await scale(1)  # back to the pool, as the other tests expect it

    def gone() -> bool:
        for r in (0, 1):
            try:
                running_supplier_actor(platform.config, world.supplier_id, r)
            except ValueError:
                continue
            return False
        return True

    await eventually(lambda: asyncio.sleep(0, gone()), bool, timeout=30)


async def test_database_dropping_every_connection_costs_retryable_503s_never_500s(
    world: World, client_a: AsyncSignedClient, platform: Any
) -> None:
    """Every process's pooled connections are cut by the server (as in a restart or a
    failover). Requests that meet a dead connection answer 503 (nothing was changed); the
    pools replace their connections, and within a few requests everything answers again."""
    ids = await _locked_orders(world, client_a, 2)
    dropped = await terminate_connections(platform.settings.database_url)
    assert dropped >= 2
    await asyncio.sleep(1.1)  # past the API's 1 s caches, so requests reach the database
    statuses: list[int] = []
    for _ in range(40):
        listed = await client_a.request("GET", "/v1/orders?limit=5")
        created = await client_a.request(
            "POST", "/v1/orders", world.order_body(f"K-{uuid.uuid4().hex[:10]}")
        )
        statuses += [listed.status_code, created.status_code]
        if listed.status_code == 200 and created.status_code == 201:
            break
    assert set(statuses) <= {200, 201, 503}, statuses
    assert statuses[-2:] == [200, 201], statuses
    for i in ids:  # the orders made before are all there, unchanged
        r = await client_a.request("GET", f"/v1/orders/{i}")
        assert (r.status_code, r.json()["status"]) == (200, "LOCKED")
