"""Ops scale a supplier's actors up and down while orders flow: no call or negotiation is
lost, orders route to replicas consistently, and retired replicas go away."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from typing import Any

from actors.routing import running_supplier_actor
from showdist.client import AsyncSignedClient
from tests.support.waiting import eventually
from tests.support.world import World


def _alive(platform: Any, supplier_id: str, replica: int) -> bool:
    try:
        running_supplier_actor(platform.config, supplier_id, replica)
    except ValueError:
        return False
    return True


async def test_scaling_a_supplier_while_orders_flow(
    world: World,
    client_a: AsyncSignedClient,
    admin_client: AsyncSignedClient,
    sandbox_admin: Any,
    platform: Any,
) -> None:
    # One order is negotiating (its issue's answer was lost) while the replicas change.
    negotiating = (
        await client_a.request("POST", "/v1/orders", world.order_body(f"S-{uuid.uuid4().hex[:8]}"))
    ).json()
    sandbox_admin.set_faults({"issue": {"lost_response_rate": 1.0}})
    r = await client_a.request("POST", f"/v1/orders/{negotiating['id']}/issue")
    assert r.status_code == 202
    sandbox_admin.set_faults({})

    results: list[tuple[str, int, int]] = []

    async def lifecycle(i: int) -> None:
        r = await client_a.request(
            "POST", "/v1/orders", world.order_body(f"S-{i}-{uuid.uuid4().hex[:6]}", quantity=1)
        )
        if r.status_code != 201:
            results.append(("", r.status_code, 0))
            return
        issued = await client_a.request("POST", f"/v1/orders/{r.json()['id']}/issue")
        results.append((r.json()["id"], 201, issued.status_code))

    async def stream() -> None:
        sem = asyncio.Semaphore(6)

        async def bounded(i: int) -> None:
            async with sem:
                await lifecycle(i)

        await asyncio.gather(*(bounded(i) for i in range(150)))

    async def scale(n: int) -> dict[str, Any]:
        resp = await admin_client.request(
            "PUT", f"/admin/v1/suppliers/{world.supplier_id}/replicas", {"replicas": n}
        )
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        return body

    async def ops() -> None:
        await asyncio.sleep(0.5)
        up = await scale(3)  # out of the pool: three dedicated hosts
        assert (up["before"], up["placement"], up["leaves_pool"]) == (1, "dedicated", True)
        await asyncio.sleep(1.5)
        down = await scale(1)  # back to the pool: every dedicated host retires
        assert (down["placement"], down["retiring"]) == ("pool", [0, 1, 2])
        await asyncio.sleep(1.0)
        assert (await scale(2))["retiring"] == []  # (the pooled actor is let go)

    await asyncio.gather(stream(), ops())
    assert len(results) == 150
    assert {(c, i) for _, c, i in results} == {(201, 200)}, results

    calls = sandbox_admin.order_calls()
    for order_id, _, _ in results:
        assert calls[order_id]["issue"] == 1
        assert calls[order_id]["lock"] == 1
    fixed = await eventually(
        lambda: client_a.request("GET", f"/v1/orders/{negotiating['id']}"),
        lambda resp: resp.json()["status"] == "FIXED",
        timeout=30,
    )
    assert len(fixed.json()["tickets"]) == 2
    assert calls[negotiating["id"]]["issue"] == 1

    # Replicas 0 and 1 serve; replica 2 retired and is gone.
    await eventually(
        lambda: asyncio.sleep(0, _alive(platform, world.supplier_id, 2)),
        lambda a: not a,
        timeout=15,
    )
    assert _alive(platform, world.supplier_id, 0)
    assert _alive(platform, world.supplier_id, 1)
    detail = (await admin_client.request("GET", f"/admin/v1/suppliers/{world.supplier_id}")).json()
    assert detail["replicas"] == 2

    # The operator's command does the same.
    assert world.admin.secret is not None
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "showdist.cli", "supplier", "scale", world.supplier_id, "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={
            **os.environ,
            "SHOWDIST_URL": world.base_url,
            "SHOWDIST_ADMIN_KEY_ID": world.admin.key_id,
            "SHOWDIST_ADMIN_SECRET": world.admin.secret,
        },
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert (answer["replicas"], answer["placement"], answer["retiring"]) == (1, "pool", [0, 1])
    await eventually(
        lambda: asyncio.sleep(0, [_alive(platform, world.supplier_id, r) for r in (0, 1)]),
        lambda alive: alive == [False, False],
        timeout=15,
    )
    # Back in the pool, the supplier serves again from its pool host.
    pooled = running_supplier_actor(platform.config, world.supplier_id)
    assert await pooled.ping() == world.supplier_id
    r = await client_a.request("POST", "/v1/orders", world.order_body(f"S-{uuid.uuid4().hex[:8]}"))
    assert r.status_code == 201, r.text
