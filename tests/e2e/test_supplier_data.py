"""Supplier data checked at the door, and no supplier event ever dropped, over the real HTTP
API with a real sandbox supplier of this module's own (its catalog carries bad tiers; its
feeds report refunds the platform learns while an order is FIXING or REFUND_FAIL, and events
naming another supplier's order)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select

from persistence.catalog import catalog_id
from persistence.db import make_engine
from persistence.tables import flows, supplier_events
from showdist.client import AsyncSignedClient
from showdist.platform import RunningPlatform
from suppliers.sandbox.process import SandboxAdmin, SandboxProcess
from tests.support.waiting import eventually
from tests.support.world import World, seed_world, world_catalog

BAD_SHOW, BAD_SESSION = "bad_show", "bad_session"


def _tier(ref: str, price: int, settlement: int, currency: str = "CNY") -> dict[str, Any]:
    return {
        "ref": ref,
        "name": ref,
        "face_value": 38000,
        "price": price,
        "settlement_price": settlement,
        "currency": currency,
        "stock": 100,
    }


def shop_catalog() -> dict[str, Any]:
    """The e2e world's catalog plus a show whose tiers a faulty integration sent."""
    catalog = world_catalog(big_stock=10_000)
    catalog["check_prices"] = False  # the sandbox keeps the bad prices as given
    catalog["shows"].append(
        {
            "ref": BAD_SHOW,
            "title": "价格有误的演出",
            "city": "上海",
            "category": "concert",
            "venue": "测试剧场",
            "starts_at": "2026-12-21T19:30:00+08:00",
            "status": "online",
            "sessions": [
                {
                    "ref": BAD_SESSION,
                    "starts_at": "2026-12-21T19:30:00+08:00",
                    "status": "online",
                    "tiers": [
                        _tier("bad_negative", -100, -200),
                        _tier("bad_settlement_above", 36000, 40000),
                        _tier("bad_rmb", 36000, 32400, "RMB"),
                        _tier("lowercase_cny", 36000, 32400, "cny"),
                    ],
                }
            ],
        }
    )
    return catalog


@dataclass
class Shop:
    world: World
    sandbox: SandboxAdmin
    client: AsyncSignedClient
    admin: AsyncSignedClient
    database_url: str

    def bad_tier(self, ref: str) -> tuple[str, str]:
        sid = self.world.supplier_id
        return (
            catalog_id("ses", sid, BAD_SHOW, BAD_SESSION),
            catalog_id("tir", sid, BAD_SHOW, BAD_SESSION, ref),
        )

    async def order(self, **overrides: Any) -> dict[str, Any]:
        body = self.world.order_body(f"SD-{uuid.uuid4().hex[:12]}", **overrides)
        r = await self.client.request("POST", "/v1/orders", body)
        assert r.status_code == 201, r.text
        got: dict[str, Any] = r.json()
        return got

    async def admin_view(self, order_id: str) -> dict[str, Any]:
        r = await self.admin.request("GET", f"/admin/v1/orders/{order_id}")
        assert r.status_code == 200, r.text
        got: dict[str, Any] = r.json()
        return got

    async def wait_status(self, order_id: str, status: str) -> dict[str, Any]:
        return await eventually(
            lambda: self.admin_view(order_id), lambda o: o["status"] == status, timeout=30
        )

    async def rows(self, table: Any, order_id: str) -> list[dict[str, Any]]:
        engine = make_engine(self.database_url, pool_size=1)
        try:
            async with engine.connect() as conn:
                q = select(table).where(table.c.order_id == order_id).order_by(table.c.id)
                return [dict(r._mapping) for r in await conn.execute(q)]
        finally:
            await engine.dispose()

    async def flows_of(self, order_id: str) -> list[tuple[str, int, int, datetime]]:
        return [
            (f["kind"], f["sign"], f["amount"], f["basis_time"])
            for f in await self.rows(flows, order_id)
        ]


@pytest.fixture(scope="module")
def shop_sandbox() -> Iterator[SandboxProcess]:
    with SandboxProcess.start() as proc:
        yield proc


@pytest.fixture(scope="module")
async def shop(platform: RunningPlatform, shop_sandbox: SandboxProcess) -> AsyncIterator[Shop]:
    sandbox = SandboxAdmin(shop_sandbox.url)
    sandbox.load_catalog(shop_catalog())
    world = await seed_world(platform.settings, shop_sandbox.url, platform.base_url)
    client = AsyncSignedClient(world.base_url, world.a.creds)
    admin = AsyncSignedClient(world.base_url, world.admin)
    r = await admin.request(
        "PUT", f"/admin/v1/suppliers/{world.supplier_id}/polling", {"interval_ms": 300}
    )
    assert r.status_code == 200, r.text
    yield Shop(world, sandbox, client, admin, platform.settings.resolved_database_url())
    sandbox.set_faults({})
    await client.aclose()
    await admin.aclose()
    sandbox.close()


@pytest.fixture(autouse=True)
def _shop_without_faults(shop: Shop) -> Iterator[None]:
    shop.sandbox.set_faults({})
    yield
    shop.sandbox.set_faults({})


def _money(got: list[tuple[str, int, int, datetime]]) -> list[tuple[str, int, int]]:
    return sorted((kind, sign, amount) for kind, sign, amount, _ in got)


# 2 tickets at 360.00 (distribution) and 324.00 (settlement)
REFUNDED_MONEY = [
    ("receivable", -1, 72000),
    ("receivable", 1, 72000),
    ("settlement", -1, 64800),
    ("settlement", 1, 64800),
]


# -- (a) checked at the door -----------------------------------------------------------------
async def test_bad_tiers_are_refused_reported_and_never_locked_the_lowercase_one_is_sold(
    shop: Shop,
) -> None:
    sid = shop.world.supplier_id
    r = await shop.admin.request("POST", f"/admin/v1/suppliers/{sid}/sync")
    assert r.status_code == 200, r.text
    r = await shop.admin.request("GET", f"/admin/v1/suppliers/{sid}")
    assert r.status_code == 200, r.text
    report = r.json()["catalog_sync"]
    assert report["synced_at"] is not None
    assert (report["shows"], report["sessions"], report["tiers"]) == (4, 5, 9)
    assert (report["tiers_refused"], report["tiers_normalised"]) == (3, 1)
    assert {t["tier_ref"]: t["reason"].split(":")[0] for t in report["refused"]} == {
        "bad_negative": "negative_price",
        "bad_settlement_above": "settlement_above_price",
        "bad_rmb": "bad_currency",
    }
    assert [(t["tier_ref"], t["currency_given"], t["currency"]) for t in report["normalised"]] == [
        ("lowercase_cny", "cny", "CNY")
    ]

    # Distributors see only the sellable tier of that show, in upper case.
    r = await shop.client.request("GET", f"/v1/shows/{catalog_id('shw', sid, BAD_SHOW)}")
    assert r.status_code == 200, r.text
    listed = r.json()["sessions"][0]["tiers"]
    assert [(t["id"], t["currency"]) for t in listed] == [
        (shop.bad_tier("lowercase_cny")[1], "CNY")
    ]

    locks_before = shop.sandbox.counters()["lock"]
    for ref in ("bad_negative", "bad_settlement_above", "bad_rmb"):
        session_id, tier_id = shop.bad_tier(ref)
        body = shop.world.order_body(f"SD-{ref}", session_id=session_id, tier_id=tier_id)
        r = await shop.client.request("POST", "/v1/orders", body)
        assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found"), r.text
    assert shop.sandbox.counters()["lock"] == locks_before  # the supplier never heard of them
    inventory = shop.sandbox.inventory()
    assert [inventory[ref]["locked"] for ref in ("bad_negative", "bad_settlement_above")] == [0, 0]

    session_id, tier_id = shop.bad_tier("lowercase_cny")
    body = shop.world.order_body("SD-lower", session_id=session_id, tier_id=tier_id)
    r = await shop.client.request("POST", "/v1/orders", body)
    assert r.status_code == 201, r.text
    order = r.json()
    assert (order["currency"], order["amount"]) == ("CNY", 72000)
    again = await shop.client.request("POST", "/v1/orders", body)  # a replay answers the same
    assert (again.status_code, again.json()["currency"]) == (200, "CNY")
    r = await shop.client.request("GET", f"/v1/orders/{order['id']}")
    assert (r.status_code, r.json()["currency"]) == (200, "CNY")
    r = await shop.client.request("POST", f"/v1/orders/{order['id']}/issue")
    assert (r.status_code, r.json()["status"]) == (200, "FIXED"), r.text
    assert shop.sandbox.inventory()["lowercase_cny"]["sold"] == 2


# -- (b) a refund learnt while FIXING ----------------------------------------------------------
async def test_a_supplier_refund_while_fixing_ends_refunded_with_exact_flows(shop: Shop) -> None:
    order = await shop.order()
    # The supplier issues but the reply is lost, and it cannot be asked for now.
    shop.sandbox.set_faults(
        {"issue": {"lost_response_rate": 1.0}, "query_issue": {"error_rate": 1.0}}
    )
    r = await shop.client.request("POST", f"/v1/orders/{order['id']}/issue")
    assert (r.status_code, r.json()["status"]) == (202, "FIXING"), r.text
    # Then the show is cancelled at the supplier: it refunds the order on its own.
    event = shop.sandbox.supplier_refund(order["id"])

    async def kept() -> list[dict[str, Any]]:
        return await shop.rows(supplier_events, order["id"])

    rows = await eventually(kept, lambda rs: bool(rs) and rs[0]["attempts"] >= 2, timeout=20)
    assert [(r["feed"], r["seq"], r["status"]) for r in rows] == [
        ("refund", event["seq"], "pending")
    ]
    assert (await shop.admin_view(order["id"]))["status"] == "FIXING"

    shop.sandbox.set_faults({})  # the poll finds it issued; then the kept refund applies
    refunded = await shop.wait_status(order["id"], "REFUNDED")
    statuses = [h["status"] for h in refunded["history"]]
    assert statuses[-4:] == ["FIXING", "FIXED", "REFUNDING", "REFUNDED"]
    assert len(refunded["tickets"]) == 2
    assert refunded["supplier_refund"]["initiated_by"] == "supplier"
    got = await shop.flows_of(order["id"])
    assert _money(got) == REFUNDED_MONEY
    [minus] = [t for kind, sign, _, t in got if (kind, sign) == ("settlement", -1)]
    assert minus == datetime.fromisoformat(event["refunded_at"])
    rows = await shop.rows(supplier_events, order["id"])
    assert [r["status"] for r in rows] == ["applied"]


# -- (c) a refund after REFUND_FAIL ------------------------------------------------------------
async def test_a_supplier_refund_after_refund_fail_ends_refunded_with_its_flows(
    shop: Shop,
) -> None:
    order = await shop.order()
    r = await shop.client.request("POST", f"/v1/orders/{order['id']}/issue")
    assert r.status_code == 200, r.text
    shop.sandbox.set_faults({"refund": {"refuse_rate": 1.0}})
    r = await shop.client.request("POST", f"/v1/orders/{order['id']}/refund", {"reason": "x"})
    assert (r.status_code, r.json()["status"]) == (200, "REFUND_FAIL"), r.text
    assert _money(await shop.flows_of(order["id"])) == [
        ("receivable", 1, 72000),
        ("settlement", 1, 64800),
    ]
    shop.sandbox.set_faults({})
    shop.sandbox.supplier_refund(order["id"])  # the supplier refunds after all
    refunded = await shop.wait_status(order["id"], "REFUNDED")
    assert [h["status"] for h in refunded["history"]][-3:] == [
        "REFUNDING",
        "REFUND_FAIL",
        "REFUNDED",
    ]
    assert refunded["failure_reason"] is None
    assert refunded["supplier_refund"]["initiated_by"] == "supplier"
    assert _money(await shop.flows_of(order["id"])) == REFUNDED_MONEY


# -- (d) only the feed's own supplier's orders -------------------------------------------------
async def test_feed_events_naming_another_suppliers_order_are_refused_and_change_nothing(
    shop: Shop, world: World, client_a: AsyncSignedClient
) -> None:
    # An order of the e2e world's supplier, issued; this module's supplier then reports it.
    r = await client_a.request("POST", "/v1/orders", world.order_body(f"SD-{uuid.uuid4().hex}"))
    assert r.status_code == 201, r.text
    order_id = r.json()["id"]
    r = await client_a.request("POST", f"/v1/orders/{order_id}/issue")
    assert r.status_code == 200, r.text
    before = await shop.admin_view(order_id)
    flows_before = await shop.flows_of(order_id)
    shop.sandbox.inject_refund_event(order_id)
    shop.sandbox.inject_delivery_event(order_id, "SHIPPED")

    async def refused() -> list[dict[str, Any]]:
        rows = await shop.rows(supplier_events, order_id)
        return [r for r in rows if r["status"] == "refused"]

    rows = await eventually(refused, lambda rs: len(rs) == 2, timeout=20)
    assert {(r["supplier_id"], r["feed"]) for r in rows} == {
        (shop.world.supplier_id, "refund"),
        (shop.world.supplier_id, "delivery"),
    }
    assert {r["last_error"] for r in rows} == {"the order is another supplier's"}
    after = await shop.admin_view(order_id)
    assert (after["status"], after["delivery_status"], after["history"]) == (
        "FIXED",
        "DELIVERED",
        before["history"],
    )
    assert after["supplier_refund"] is None
    assert await shop.flows_of(order_id) == flows_before
    assert _money(flows_before) == [("receivable", 1, 72000), ("settlement", 1, 64800)]
