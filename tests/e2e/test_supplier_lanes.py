"""Locks of a pooled supplier go from the order hosts to the supplier (actors/supplier_lane.py),
while its actor keeps the statistics and the breaker."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

from actors.routing import running_supplier_actor
from showdist.client import AsyncSignedClient
from tests.e2e.test_lifecycle import oid
from tests.support.flash_sale import open_flash_sale
from tests.support.world import World


async def _healthy(world: World, client: AsyncSignedClient, n: int = 4) -> None:
    """A few good locks, and time for their outcomes to reach the actor: every lane is then
    calling the supplier directly."""
    for _ in range(n):
        r = await client.request("POST", "/v1/orders", world.order_body(oid(), quantity=1))
        assert r.status_code == 201, r.text
    await asyncio.sleep(1.0)


async def test_a_lock_does_not_wait_for_the_supplier_actor(
    world: World, client_a: AsyncSignedClient, platform: Any
) -> None:
    await _healthy(world, client_a)
    actor = running_supplier_actor(platform.config, world.supplier_id)
    pid = await actor.pid()
    os.kill(pid, signal.SIGSTOP)  # the supplier's host answers nothing now
    try:
        started = time.monotonic()
        replies = await asyncio.gather(
            *(
                client_a.request("POST", "/v1/orders", world.order_body(oid(), quantity=1))
                for _ in range(6)
            )
        )
        elapsed = time.monotonic() - started
    finally:
        os.kill(pid, signal.SIGCONT)
    assert [r.status_code for r in replies] == [201] * 6
    assert {r.json()["status"] for r in replies} == {"LOCKED"}
    assert elapsed < 5.0


async def test_a_lane_tells_the_actor_of_a_failed_lock_before_it_answers(
    world: World, admin_client: AsyncSignedClient
) -> None:
    sale = await open_flash_sale(admin_client, stock=10, sellers=1)
    seller = AsyncSignedClient(world.base_url, sale.sellers[0])
    path = f"/admin/v1/suppliers/{sale.supplier_id}"
    try:
        for _ in range(3):
            assert (await seller.request("POST", "/v1/orders", sale.body(oid()))).status_code == 201
        await asyncio.sleep(1.0)  # the outcomes have reached the actor: the lanes go direct
        before = (await admin_client.request("GET", path)).json()["stats"]
        sale.box_office.set_faults({"lock": {"error_rate": 1.0}})
        r = await seller.request("POST", "/v1/orders", sale.body(oid()))
        assert r.status_code == 503
        after = (await admin_client.request("GET", path)).json()["stats"]
        # Counted by the supplier's actor before the create answered (feeds never fail here).
        assert after["failed"] + after["unknown"] == before["failed"] + before["unknown"] + 1
        assert sale.box_office.counters()["lock"] == 4
    finally:
        sale.box_office.set_faults({})
        await seller.aclose()
        await sale.retire(admin_client)
