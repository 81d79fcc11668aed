"""Sold out, known (domain/sold_out.py): once the supplier has said a tier is sold out, the
attempts after it are refused without a supplier call, for a view at most a couple of seconds
old; seats that come back are sold again once the view is that old."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from showdist.client import AsyncSignedClient
from tests.support.flash_sale import FlashSale, open_flash_sale
from tests.support.world import World


@pytest.fixture
async def sale(world: World) -> AsyncIterator[FlashSale]:
    admin = AsyncSignedClient(world.base_url, world.admin)
    opened = await open_flash_sale(admin, stock=3, sellers=2)
    try:
        yield opened
    finally:
        await opened.retire(admin)
        await admin.aclose()


def _oid() -> str:
    return f"F-{uuid.uuid4().hex[:12]}"


async def test_after_the_last_seat_attempts_are_refused_without_asking_the_supplier(
    world: World, sale: FlashSale
) -> None:
    first, second = (AsyncSignedClient(world.base_url, c) for c in sale.sellers)
    try:
        locked = await asyncio.gather(
            *(first.request("POST", "/v1/orders", sale.body(_oid())) for _ in range(3))
        )
        assert [r.status_code for r in locked] == [201, 201, 201]
        locks_asked = sale.box_office.counters()["lock"]

        # The supplier says it: sold out, and the order is recorded LOCK_FAILED.
        told = await second.request("POST", "/v1/orders", sale.body(_oid()))
        assert (told.status_code, told.json()["error"]["code"]) == (409, "sold_out")
        assert sale.box_office.counters()["lock"] == locks_asked + 1

        # Known now: twenty more attempts, from both distributors, get the same answer, the
        # supplier hears of none of them, and nothing is recorded for them.
        started = time.monotonic()
        bodies = [sale.body(_oid()) for _ in range(20)]
        refused = await asyncio.gather(
            *(
                (first if i % 2 else second).request("POST", "/v1/orders", b)
                for i, b in enumerate(bodies)
            )
        )
        assert time.monotonic() - started < 2.0  # (inside the view's 2 s)
        assert {(r.status_code, r.json()["error"]["code"]) for r in refused} == {(409, "sold_out")}
        assert all("order" not in r.json() for r in refused)
        assert sale.box_office.counters()["lock"] == locks_asked + 1
        listed = (await second.request("GET", "/v1/orders?limit=100")).json()["items"]
        assert {o["distributor_order_id"] for o in listed}.isdisjoint(
            b["distributor_order_id"] for b in bodies[0::2]
        )

        # A repeat of a create that got its seats still answers with its order.
        repeat_body = sale.body(locked[0].json()["distributor_order_id"])
        repeat = await first.request("POST", "/v1/orders", repeat_body)
        assert (repeat.status_code, repeat.json()["status"]) == (200, "LOCKED")
        assert repeat.json()["id"] == locked[0].json()["id"]
        assert sale.box_office.counters()["lock"] == locks_asked + 1

        # A seat comes back; once the view is older than 2 s the supplier is asked again,
        # and an attempt refused before may be made again with its own order id.
        canceled = await first.request("POST", f"/v1/orders/{locked[1].json()['id']}/cancel")
        assert canceled.status_code == 200
        await _inventory(sale, lambda inv: inv["available"] == 1)
        await asyncio.sleep(max(0.0, 2.2 - (time.monotonic() - started)))
        sold_again = await second.request("POST", "/v1/orders", bodies[0])
        assert (sold_again.status_code, sold_again.json()["status"]) == (201, "LOCKED")
        assert sale.box_office.counters()["lock"] == locks_asked + 2
    finally:
        await first.aclose()
        await second.aclose()


async def test_an_old_view_asks_the_supplier_once_while_the_others_are_still_refused(
    world: World, sale: FlashSale
) -> None:
    seller = AsyncSignedClient(world.base_url, sale.sellers[0])
    try:
        for _ in range(3):
            assert (
                await seller.request("POST", "/v1/orders", sale.body(_oid()))
            ).status_code == 201
        told = await seller.request("POST", "/v1/orders", sale.body(_oid()))
        assert told.status_code == 409
        asked = sale.box_office.counters()["lock"]
        await asyncio.sleep(2.2)  # the view is old now
        sale.box_office.set_faults({"lock": {"latency_ms": 400}})  # a slow probe
        burst = await asyncio.gather(
            *(seller.request("POST", "/v1/orders", sale.body(_oid())) for _ in range(12))
        )
        assert {r.status_code for r in burst} == {409}
        assert sale.box_office.counters()["lock"] == asked + 1  # one probe, not twelve
    finally:
        sale.box_office.set_faults({})
        await seller.aclose()


async def _inventory(sale: FlashSale, ok: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        inv = next(iter(sale.box_office.inventory().values()))
        if ok(inv) or time.monotonic() > deadline:
            assert ok(inv), inv
            return
        await asyncio.sleep(0.1)
