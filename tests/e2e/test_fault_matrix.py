"""The fault matrix: 300 orders through the real API while the sandbox supplier injects
every kind of fault at random, then the invariants a distributor and an auditor rely on."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from showdist.client import AsyncSignedClient
from suppliers.sandbox.process import SandboxAdmin, SandboxProcess
from tests.support.waiting import eventually
from tests.support.world import World, seed_world, world_catalog

AT_REST = {"LOCK_FAILED", "CANCELED", "FIXED", "REFUNDED", "REFUND_FAIL"}
ISSUED = {"FIXED", "REFUNDING", "REFUNDED", "REFUND_FAIL"}
ORDERS = 300

FAULTS: dict[str, Any] = {
    "seed": 20261125,
    "lock": {"error_rate": 0.08, "hang_rate": 0.05, "hang_ms": 2500},
    "release": {"error_rate": 0.1},
    "issue": {
        "error_rate": 0.1,
        "hang_rate": 0.08,
        "hang_ms": 2500,
        "lost_response_rate": 0.1,
        "refuse_rate": 0.08,
    },
    "query_issue": {"error_rate": 0.1},
    "refund": {"refuse_rate": 0.15, "error_rate": 0.05},
    "query_refund": {"error_rate": 0.1},
}


@dataclass
class Matrix:
    world: World
    admin: SandboxAdmin
    sandbox_url: str


@pytest.fixture(scope="module")
def own_sandbox() -> Iterator[SandboxProcess]:
    proc = SandboxProcess.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
async def matrix(platform: Any, own_sandbox: SandboxProcess) -> AsyncIterator[Matrix]:
    admin = SandboxAdmin(own_sandbox.url)
    admin.load_catalog(world_catalog(big_stock=10_000))
    world = await seed_world(platform.settings, own_sandbox.url, platform.base_url)
    ops = AsyncSignedClient(world.base_url, world.admin)
    r = await ops.request(
        "PUT", f"/admin/v1/suppliers/{world.supplier_id}/polling", {"interval_ms": 300}
    )
    assert r.status_code == 200
    await ops.aclose()
    yield Matrix(world, admin, own_sandbox.url)
    admin.close()


async def drive(client: AsyncSignedClient, world: World, rng: random.Random, i: int) -> str:
    cancel_show = rng.random() < 0.15
    body: dict[str, Any] = {"quantity": rng.randint(1, 3)}
    if cancel_show:
        body.update(
            session_id=world.extra["cancel_session_id"], tier_id=world.extra["cancel_tier_id"]
        )
    plan = rng.choices(["issue", "cancel", "expire", "refund"], weights=[55, 10, 10, 25])[0]
    if plan == "expire":
        body["lock_seconds"] = 1
    r = await client.request(
        "POST", "/v1/orders", world.order_body(f"FM-{i}-{uuid.uuid4().hex[:6]}", **body)
    )
    assert r.status_code in (201, 409, 503), r.text
    if r.status_code != 201:
        assert r.json()["order"]["status"] == "LOCK_FAILED"
        return str(r.json()["order"]["id"])
    order_id = str(r.json()["id"])
    if plan == "cancel":
        r = await client.request("POST", f"/v1/orders/{order_id}/cancel")
        assert r.status_code == 200
    elif plan in ("issue", "refund"):
        r = await client.request("POST", f"/v1/orders/{order_id}/issue")
        assert r.status_code in (200, 202, 409), r.text
        if plan == "refund" and r.status_code == 200:
            r = await client.request("POST", f"/v1/orders/{order_id}/refund", {"reason": "fm"})
            assert r.status_code in (200, 202), r.text
    return order_id


async def test_fault_matrix(matrix: Matrix) -> None:
    world, admin = matrix.world, matrix.admin
    client = AsyncSignedClient(world.base_url, world.a.creds)
    ops = AsyncSignedClient(world.base_url, world.admin)
    rng = random.Random(7)
    admin.set_faults(FAULTS)
    sem = asyncio.Semaphore(16)

    async def bounded(i: int) -> str:
        async with sem:
            return await drive(client, world, rng, i)

    ids = await asyncio.gather(*(bounded(i) for i in range(ORDERS)))
    admin.set_faults({})

    async def get(order_id: str) -> dict[str, Any]:
        resp = await ops.request("GET", f"/admin/v1/orders/{order_id}")
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        return body

    def settled(o: dict[str, Any]) -> bool:
        flagged = any(n["status"] == "flagged" for n in o["negotiations"])
        return o["status"] in AT_REST or flagged

    reading = asyncio.Semaphore(32)  # (the check's own reads: bounded, like an operator's)

    async def get_bounded(order_id: str) -> dict[str, Any]:
        async with reading:
            return await get(order_id)

    async def all_orders() -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(get_bounded(i) for i in ids)))

    orders = await eventually(
        all_orders, lambda os: all(settled(o) for o in os), timeout=90, every=1
    )

    # The supplier cancels a show: its issued orders are refunded by the supplier.
    on_cancel_show = {
        o["id"] for o in orders if o["session_id"] == world.extra["cancel_session_id"]
    }
    admin.cancel_show("e2e_show_to_cancel")
    to_refund = {o["id"] for o in orders if o["id"] in on_cancel_show and o["status"] == "FIXED"}

    async def refunded_by_supplier() -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(get(i) for i in to_refund)))

    await eventually(
        refunded_by_supplier, lambda os: all(o["status"] == "REFUNDED" for o in os), timeout=30
    )

    # Let pending releases drain, then check every invariant.
    async def no_pending_releases() -> list[dict[str, Any]]:
        return await all_orders()

    orders = await eventually(
        no_pending_releases,
        lambda os: all(o["release"] is None or o["release"]["status"] == "done" for o in os),
        timeout=60,
        every=1,
    )
    calls = admin.order_calls()
    statuses: dict[str, int] = {}
    async with httpx.AsyncClient(base_url=matrix.sandbox_url, trust_env=False) as http:
        for o in orders:
            statuses[o["status"]] = statuses.get(o["status"], 0) + 1
            assert settled(o), o
            assert calls.get(o["id"], {}).get("issue", 0) <= 1, (o["id"], calls.get(o["id"]))
            at_supplier = (await http.get(f"/issues/{o['id']}")).json()
            if o["status"] in ISSUED:
                assert at_supplier["state"] == "issued", o
                assert sorted(t["code"] for t in o["tickets"]) == sorted(
                    t["code"] for t in at_supplier["tickets"]
                )
            elif o["status"] != "FIXING":  # flagged FIXING orders are for a person to decide
                assert at_supplier["state"] == "not_issued", o
            if o["id"] in to_refund:
                assert o["supplier_refund"]["initiated_by"] == "supplier"

    # Inventory returns exactly: only seats of orders that kept their tickets stay sold.
    inventory = admin.inventory()
    for tier_ref, tier_id in (
        ("e2e_big", world.big_tier_id),
        ("e2e_cancel", world.extra["cancel_tier_id"]),
    ):
        kept = sum(
            o["quantity"]
            for o in orders
            if o["tier_id"] == tier_id and o["status"] in ("FIXED", "REFUND_FAIL")
        )
        assert inventory[tier_ref]["locked"] == 0, (tier_ref, inventory[tier_ref])
        if tier_ref == "e2e_big":
            assert inventory[tier_ref]["sold"] == kept, (tier_ref, inventory[tier_ref], kept)
            assert inventory[tier_ref]["available"] == inventory[tier_ref]["stock"] - kept
    # The run exercised the matrix: most kinds of outcome happened.
    assert {"LOCK_FAILED", "CANCELED", "FIXED", "REFUNDED", "REFUND_FAIL"} <= set(statuses), (
        statuses
    )
    print("fault matrix outcome:", statuses)
    await client.aclose()
    await ops.aclose()
