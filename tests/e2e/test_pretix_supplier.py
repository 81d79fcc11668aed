"""A pretix event as a supplier, end to end: created through the admin API with gateway
"pretix", its catalog synced (minor-unit prices, quota stock), orders through the signed API
ending FIXED with pretix's own ticket secrets (its check-in takes them), sold out from a
quota, and the box office cancelling an order in pretix reaching the platform as a supplier
refund with exact flows."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from persistence.catalog import catalog_id
from showdist.client import AsyncSignedClient
from suppliers.pretix.mapping import order_code, session_ref, tier_ref
from tests.support.pretix import PretixAdmin, PretixServer, SeriesEvent
from tests.support.waiting import eventually
from tests.support.world import World


@dataclass
class PretixSupplier:
    supplier_id: str
    event: SeriesEvent
    admin: PretixAdmin  # the box office's side
    show_id: str

    def session_id(self, date: int = 0) -> str:
        return catalog_id(
            "ses", self.supplier_id, self.event.slug, session_ref(self.event.dates[date])
        )

    def tier_id(self, tier: str, date: int = 0) -> str:
        return catalog_id(
            "tir",
            self.supplier_id,
            self.event.slug,
            session_ref(self.event.dates[date]),
            tier,
        )

    @property
    def standing(self) -> str:
        return tier_ref(self.event.standing)

    @property
    def front(self) -> str:
        return tier_ref(self.event.seated, self.event.front)


@pytest.fixture(scope="module")
async def ops(world: World) -> AsyncIterator[AsyncSignedClient]:
    client = AsyncSignedClient(world.base_url, world.admin)
    yield client
    await client.aclose()


@pytest.fixture(scope="module")
async def supplier(pretix: PretixServer, ops: AsyncSignedClient) -> AsyncIterator[PretixSupplier]:
    """A supplier of our own (the shared world's supplier and grants are left alone): a
    fresh pretix series, distribution at 95 % and settlement at 90 % of pretix's price. It
    is retired at the end, so that its feeds are not read for the rest of the run."""
    admin = pretix.admin()
    event = admin.create_series(f"e2e-{uuid.uuid4().hex[:8]}", standing_size=20, seated_size=2)
    config = pretix.gateway_config(event.slug, distribution_bp=9500, settlement_bp=9000)
    r = await ops.request(
        "POST",
        "/admin/v1/suppliers",
        {"name": "pretix box office", "gateway": "pretix", "config": config},
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert pretix.token not in r.text
    sid = created["id"]
    r = await ops.request("POST", f"/admin/v1/suppliers/{sid}/sync")
    assert r.status_code == 200, r.text
    try:
        yield PretixSupplier(sid, event, admin, catalog_id("shw", sid, event.slug))
    finally:
        await ops.request("POST", f"/admin/v1/suppliers/{sid}/retire")
        admin.close()


def oid() -> str:
    return f"PX-{uuid.uuid4().hex[:12]}"


async def order_of(client: AsyncSignedClient, order_id: str) -> dict[str, Any]:
    r = await client.request("GET", f"/v1/orders/{order_id}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def fixed_order(
    world: World, client: AsyncSignedClient, supplier: PretixSupplier, quantity: int = 2
) -> dict[str, Any]:
    body = world.order_body(
        oid(),
        session_id=supplier.session_id(0),
        tier_id=supplier.tier_id(supplier.standing),
        quantity=quantity,
    )
    r = await client.request("POST", "/v1/orders", body)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "LOCKED"
    r = await client.request("POST", f"/v1/orders/{r.json()['id']}/issue")
    assert r.status_code == 200, r.text
    fixed: dict[str, Any] = r.json()
    assert fixed["status"] == "FIXED"
    return fixed


async def test_the_pretix_catalog_is_synced_with_minor_unit_prices_and_quota_stock(
    supplier: PretixSupplier, client_a: AsyncSignedClient, ops: AsyncSignedClient
) -> None:
    r = await client_a.request("GET", f"/v1/shows/{supplier.show_id}")
    assert r.status_code == 200, r.text
    show = r.json()
    assert show["title"] == f"Series {supplier.event.slug}"
    assert show["status"] == "online"
    assert [s["id"] for s in show["sessions"]] == [supplier.session_id(0), supplier.session_id(1)]
    first = {t["id"]: t for t in show["sessions"][0]["tiers"]}
    standing = first[supplier.tier_id(supplier.standing)]
    # pretix: 40.00 EUR on the first date; 95 % of it is what a distributor pays.
    assert (standing["face_value"], standing["price"], standing["currency"]) == (4000, 3800, "EUR")
    assert standing["available"] == 20
    front = first[supplier.tier_id(supplier.front)]
    assert (front["face_value"], front["price"], front["available"]) == (8000, 7600, 2)
    second = {t["id"]: t for t in show["sessions"][1]["tiers"]}
    assert second[supplier.tier_id(supplier.standing, 1)]["face_value"] == 3800
    detail = (await ops.request("GET", f"/admin/v1/suppliers/{supplier.supplier_id}")).json()
    assert detail["gateway"] == "pretix"
    assert "config" not in detail
    report = detail["catalog_sync"]
    # One show, two dates, three tiers on each (a product, and two variations of the other).
    assert (report["shows"], report["sessions"], report["tiers"]) == (1, 2, 6)
    assert report["tiers_refused"] == 0


async def test_an_order_ends_fixed_with_pretix_ticket_secrets_that_pretix_checks_in(
    world: World, supplier: PretixSupplier, client_a: AsyncSignedClient
) -> None:
    order = await fixed_order(world, client_a, supplier)
    assert (order["unit_price"], order["amount"], order["currency"]) == (3800, 7600, "EUR")
    pretix_order = supplier.admin.order(supplier.event.slug, order_code(order["id"]))
    assert pretix_order["status"] == "p"
    assert pretix_order["api_meta"] == {"showdist_order_id": order["id"]}
    secrets = sorted(p["secret"] for p in pretix_order["positions"])
    assert sorted(t["code"] for t in order["tickets"]) == secrets
    checkin = supplier.admin.checkin_list(supplier.event.slug)
    for ticket in order["tickets"]:
        assert supplier.admin.redeem(checkin, ticket["code"])["status"] == "ok"
    # The stock route reads pretix's quotas now.
    r = await client_a.request("GET", f"/v1/sessions/{supplier.session_id(0)}/stock")
    assert r.status_code == 200, r.text
    stock = {t["tier_id"]: t["available"] for t in r.json()["tiers"]}
    quota = supplier.admin.quota(
        supplier.event.slug, supplier.event.quotas[supplier.event.dates[0], "standing"]
    )
    assert stock[supplier.tier_id(supplier.standing)] == quota["available_number"]


async def test_sold_out_in_pretix_is_sold_out_for_the_distributor(
    world: World, supplier: PretixSupplier, client_a: AsyncSignedClient
) -> None:
    body = world.order_body(
        oid(), session_id=supplier.session_id(1), tier_id=supplier.tier_id(supplier.front, 1)
    )
    r = await client_a.request("POST", "/v1/orders", {**body, "quantity": 3})
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "sold_out"
    assert r.json()["order"]["status"] == "LOCK_FAILED"
    codes = {o["code"] for o in supplier.admin.orders(supplier.event.slug)}
    assert order_code(r.json()["order"]["id"]) not in codes


async def test_a_cancellation_in_pretix_becomes_a_supplier_refund_with_exact_flows(
    world: World,
    platform: Any,
    supplier: PretixSupplier,
    client_a: AsyncSignedClient,
    ops: AsyncSignedClient,
) -> None:
    order = await fixed_order(world, client_a, supplier, quantity=3)
    code = order_code(order["id"])
    supplier.admin.cancel_order(supplier.event.slug, code)  # the box office, in pretix
    cancelled_at = datetime.fromisoformat(
        supplier.admin.order(supplier.event.slug, code)["cancellation_date"]
    )
    refunded = await eventually(
        lambda: order_of(client_a, order["id"]), lambda o: o["status"] == "REFUNDED", timeout=30
    )
    assert [h["status"] for h in refunded["history"]][-2:] == ["REFUNDING", "REFUNDED"]
    detail = (await ops.request("GET", f"/admin/v1/orders/{order['id']}")).json()
    assert detail["supplier_refund"]["initiated_by"] == "supplier"
    assert datetime.fromisoformat(detail["supplier_refund"]["refunded_at"]) == cancelled_at

    # The flows: receivable booked and reversed at the distribution price, settlement booked
    # and reversed at the settlement price (90 % of 40.00 EUR), the reversal at pretix's time.
    amount, settlement = 3 * 3800, 3 * 3600
    tz = ZoneInfo(platform.settings.timezone)
    days = sorted(
        {
            datetime.fromisoformat(order["created_at"]).astimezone(tz).date().isoformat(),
            datetime.now(UTC).astimezone(tz).date().isoformat(),
        }
    )

    async def flows() -> list[dict[str, str]]:
        rows: list[dict[str, str]] = []
        for day in days:
            r = await ops.request("GET", f"/admin/v1/settlement/periods/{day}/flows.csv")
            assert r.status_code == 200, r.text
            rows += [
                row for row in csv.DictReader(io.StringIO(r.text)) if row["order_id"] == order["id"]
            ]
        return rows

    mine = await eventually(flows, lambda rows: len(rows) == 4, timeout=15)
    assert sorted((r["kind"], int(r["signed_amount"]), r["currency"]) for r in mine) == sorted(
        [
            ("receivable", amount, "EUR"),
            ("receivable", -amount, "EUR"),
            ("settlement", settlement, "EUR"),
            ("settlement", -settlement, "EUR"),
        ]
    )
    (reversal,) = [r for r in mine if r["kind"] == "settlement" and int(r["sign"]) < 0]
    assert datetime.fromisoformat(reversal["basis_time"]) == cancelled_at


async def test_a_refund_asked_through_the_api_cancels_and_refunds_in_pretix(
    world: World, supplier: PretixSupplier, client_a: AsyncSignedClient
) -> None:
    order = await fixed_order(world, client_a, supplier, quantity=1)
    r = await client_a.request("POST", f"/v1/orders/{order['id']}/refund", {"reason": "buyer"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "REFUNDED"
    pretix_order = supplier.admin.order(supplier.event.slug, order_code(order["id"]))
    assert pretix_order["status"] == "c"
    assert [(x["state"], x["amount"]) for x in pretix_order["refunds"]] == [("done", "40.00")]


async def test_a_pretix_config_is_checked_by_its_model_and_the_token_never_echoed(
    pretix: PretixServer, ops: AsyncSignedClient
) -> None:
    good = pretix.gateway_config("any-event")
    for bad, field in (
        ({**good, "settlement_bp": 9000, "distribution_bp": 8000}, "settlement_bp"),
        ({**good, "colour": "red"}, "colour"),
        ({**good, "hold_seconds": 5}, "hold_seconds"),
        ({**good, "organizer": "no spaces"}, "organizer"),
        ({k: v for k, v in good.items() if k != "token"}, "token"),
    ):
        body = {"name": "bad pretix", "gateway": "pretix", "config": bad}
        r = await ops.request("POST", "/admin/v1/suppliers", body)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "invalid_request"
        assert field in r.json()["error"]["message"]
        assert pretix.token not in r.text


async def test_a_date_cancelled_in_pretix_refunds_its_orders_on_the_platform(
    world: World,
    pretix: PretixServer,
    supplier: PretixSupplier,
    client_a: AsyncSignedClient,
    ops: AsyncSignedClient,
) -> None:
    # (The last test of the module: the second date is gone after it.)
    orders = []
    for _ in range(2):
        body = world.order_body(
            oid(),
            session_id=supplier.session_id(1),
            tier_id=supplier.tier_id(supplier.standing, 1),
            quantity=1,
        )
        r = await client_a.request("POST", "/v1/orders", body)
        assert r.status_code == 201, r.text
        r = await client_a.request("POST", f"/v1/orders/{r.json()['id']}/issue")
        assert r.json()["status"] == "FIXED", r.text
        orders.append(r.json())
    pretix.cancel_event(supplier.event.slug, supplier.event.dates[1])
    for order in orders:
        order_id: str = order["id"]

        async def probe(order_id: str = order_id) -> dict[str, Any]:
            return await order_of(client_a, order_id)

        done = await eventually(probe, lambda o: o["status"] == "REFUNDED", timeout=30)
        assert [h["status"] for h in done["history"]][-2:] == ["REFUNDING", "REFUNDED"]
        detail = (await ops.request("GET", f"/admin/v1/orders/{order['id']}")).json()
        assert detail["supplier_refund"]["initiated_by"] == "supplier"
