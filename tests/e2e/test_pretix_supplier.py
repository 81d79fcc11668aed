"""A pretix event as a supplier, end to end: created through the admin API with gateway
"pretix", its catalog synced (minor-unit prices, quota stock), orders through the signed API
ending FIXED with pretix's own ticket secrets (its check-in takes them), sold out from a
quota, and the box office cancelling an order in pretix reaching the platform as a supplier
refund with exact flows."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest

from persistence.catalog import catalog_id
from showdist.client import AsyncSignedClient, Credentials
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
    started: str  # the platform's day when the module began (YYYY-MM-DD)

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
async def supplier(
    platform: Any, pretix: PretixServer, ops: AsyncSignedClient
) -> AsyncIterator[PretixSupplier]:
    """A supplier of our own (the shared world's supplier and grants are left alone): a
    fresh pretix series, distribution at 95 % and settlement at 90 % of pretix's price, calls
    to pretix timing out after 6 s, and negotiations polling every second (never handed to a
    person while the module runs). It is retired at the end, so that its feeds are not read
    for the rest of the run."""
    started = today(platform.settings.timezone)
    admin = pretix.admin()
    event = admin.create_series(f"e2e-{uuid.uuid4().hex[:8]}", standing_size=20, seated_size=2)
    config = pretix.gateway_config(
        event.slug, distribution_bp=9500, settlement_bp=9000, timeout_s=6, connect_timeout_s=3
    )
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
    r = await ops.request(
        "PUT", f"/admin/v1/suppliers/{sid}/polling", {"interval_ms": 1000, "give_up_ms": 600_000}
    )
    assert r.status_code == 200, r.text
    try:
        yield PretixSupplier(sid, event, admin, catalog_id("shw", sid, event.slug), started)
    finally:
        await ops.request("POST", f"/admin/v1/suppliers/{sid}/retire")
        admin.close()


@dataclass
class Shop:
    distributor_id: str
    client: AsyncSignedClient


@pytest.fixture(scope="module")
async def shop_account(
    world: World, supplier: PretixSupplier, ops: AsyncSignedClient
) -> AsyncIterator[Shop]:
    """A distributor of this module's own, made through the admin API, with a grant to the
    pretix supplier alone: its lines in the settlement snapshot are exactly its orders'."""
    r = await ops.request("POST", "/admin/v1/distributors", {"name": "pretix e2e shop"})
    assert r.status_code == 201, r.text
    dist_id = r.json()["id"]
    r = await ops.request("POST", f"/admin/v1/distributors/{dist_id}/keys", {"type": "hmac"})
    assert r.status_code == 201, r.text
    creds = Credentials(r.json()["key_id"], secret=r.json()["secret"])
    r = await ops.request(
        "POST",
        f"/admin/v1/distributors/{dist_id}/grants",
        {"scope": "supplier", "value": supplier.supplier_id},
    )
    assert r.status_code == 201, r.text
    client = AsyncSignedClient(world.base_url, creds)
    yield Shop(dist_id, client)
    await client.aclose()


@pytest.fixture
def shop(shop_account: Shop) -> AsyncSignedClient:
    return shop_account.client


def today(tz: str) -> str:
    return datetime.now(UTC).astimezone(ZoneInfo(tz)).date().isoformat()


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
    supplier: PretixSupplier, shop: AsyncSignedClient, ops: AsyncSignedClient
) -> None:
    r = await shop.request("GET", f"/v1/shows/{supplier.show_id}")
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
    world: World, supplier: PretixSupplier, shop: AsyncSignedClient
) -> None:
    order = await fixed_order(world, shop, supplier)
    assert (order["unit_price"], order["amount"], order["currency"]) == (3800, 7600, "EUR")
    pretix_order = supplier.admin.order(supplier.event.slug, order_code(order["id"]))
    assert pretix_order["status"] == "p"
    assert pretix_order["api_meta"] == {"showdist_order_id": order["id"]}
    secrets = sorted(p["secret"] for p in pretix_order["positions"])
    assert sorted(t["code"] for t in order["tickets"]) == secrets
    checkin = supplier.admin.checkin_list(supplier.event.slug)
    for ticket in order["tickets"]:
        assert supplier.admin.redeem(checkin, ticket["code"])["status"] == "ok"
    # The stock route reads pretix's quotas, fresh to within its max age (an answer read a
    # moment before this order may be served until then).
    quota = supplier.admin.quota(
        supplier.event.slug, supplier.event.quotas[supplier.event.dates[0], "standing"]
    )

    async def standing_stock() -> int:
        r = await shop.request("GET", f"/v1/sessions/{supplier.session_id(0)}/stock")
        assert r.status_code == 200, r.text
        return int(
            {t["tier_id"]: t["available"] for t in r.json()["tiers"]}[
                supplier.tier_id(supplier.standing)
            ]
        )

    await eventually(standing_stock, lambda n: n == quota["available_number"], timeout=10)


async def test_sold_out_in_pretix_is_sold_out_for_the_distributor(
    world: World, supplier: PretixSupplier, shop: AsyncSignedClient
) -> None:
    body = world.order_body(
        oid(), session_id=supplier.session_id(1), tier_id=supplier.tier_id(supplier.front, 1)
    )
    r = await shop.request("POST", "/v1/orders", {**body, "quantity": 3})
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "sold_out"
    assert r.json()["order"]["status"] == "LOCK_FAILED"
    codes = {o["code"] for o in supplier.admin.orders(supplier.event.slug)}
    assert order_code(r.json()["order"]["id"]) not in codes


async def test_a_cancellation_in_pretix_becomes_a_supplier_refund_with_exact_flows(
    world: World,
    platform: Any,
    supplier: PretixSupplier,
    shop: AsyncSignedClient,
    ops: AsyncSignedClient,
) -> None:
    order = await fixed_order(world, shop, supplier, quantity=3)
    code = order_code(order["id"])
    supplier.admin.cancel_order(supplier.event.slug, code)  # the box office, in pretix
    cancelled_at = datetime.fromisoformat(
        supplier.admin.order(supplier.event.slug, code)["cancellation_date"]
    )
    refunded = await eventually(
        lambda: order_of(shop, order["id"]), lambda o: o["status"] == "REFUNDED", timeout=30
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
    world: World, supplier: PretixSupplier, shop: AsyncSignedClient
) -> None:
    order = await fixed_order(world, shop, supplier, quantity=1)
    r = await shop.request("POST", f"/v1/orders/{order['id']}/refund", {"reason": "buyer"})
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


def left(supplier: PretixSupplier, kind: str = "standing", date: int = 0) -> int:
    """What pretix's own REST API says a quota of our event has left now."""
    quota = supplier.event.quotas[supplier.event.dates[date], kind]
    return int(supplier.admin.quota(supplier.event.slug, quota)["available_number"])


def ours(supplier: PretixSupplier, order_id: str) -> list[Any]:
    """Every pretix order of our event that names this showdist order."""
    return [
        o
        for o in supplier.admin.orders(supplier.event.slug)
        if (o.get("api_meta") or {}).get("showdist_order_id") == order_id
    ]


async def locked_order(
    world: World,
    shop: AsyncSignedClient,
    supplier: PretixSupplier,
    quantity: int,
    **extra: Any,
) -> dict[str, Any]:
    body = world.order_body(
        oid(),
        session_id=supplier.session_id(0),
        tier_id=supplier.tier_id(supplier.standing),
        quantity=quantity,
        **extra,
    )
    r = await shop.request("POST", "/v1/orders", body)
    assert r.status_code == 201, r.text
    order: dict[str, Any] = r.json()
    assert order["status"] == "LOCKED"
    return order


async def test_a_lock_holds_seats_in_pretix_and_a_cancel_gives_them_back(
    world: World, supplier: PretixSupplier, shop: AsyncSignedClient
) -> None:
    before = left(supplier)
    order = await locked_order(world, shop, supplier, 2)
    assert left(supplier) == before - 2  # pretix's quota holds the lock's seats
    (pending,) = ours(supplier, order["id"])
    assert (pending["status"], len(pending["positions"])) == ("n", 2)
    r = await shop.request("POST", f"/v1/orders/{order['id']}/cancel")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "CANCELED"

    async def now_left() -> int:
        return left(supplier)

    await eventually(now_left, lambda n: n == before, timeout=30)
    assert [o["status"] for o in ours(supplier, order["id"])] == ["c"]


async def test_an_expired_lock_gives_its_seats_back_in_pretix(
    world: World, supplier: PretixSupplier, shop: AsyncSignedClient
) -> None:
    before = left(supplier)
    order = await locked_order(world, shop, supplier, 3, lock_seconds=2)
    assert left(supplier) == before - 3
    # Nobody cancels: the platform's sweep ends the lock, and its release reaches pretix.
    expired = await eventually(
        lambda: order_of(shop, order["id"]), lambda o: o["status"] == "CANCELED", timeout=30
    )
    assert expired["failure_reason"] == "lock_expired"

    async def now_left() -> int:
        return left(supplier)

    await eventually(now_left, lambda n: n == before, timeout=30)
    assert [o["status"] for o in ours(supplier, order["id"])] == ["c"]


async def test_concurrent_locks_on_the_last_seats_lock_exactly_as_many_as_there_are(
    world: World, supplier: PretixSupplier, shop: AsyncSignedClient
) -> None:
    slug, quota = supplier.event.slug, supplier.event.quotas[supplier.event.dates[0], "seated"]
    now = supplier.admin.quota(slug, quota)
    # The box office sizes the seated quota of the first date so that 3 seats are left.
    supplier.admin.set_quota_size(slug, quota, now["total_size"] - now["available_number"] + 3)
    assert left(supplier, "seated") == 3
    bodies = [
        world.order_body(
            oid(),
            session_id=supplier.session_id(0),
            tier_id=supplier.tier_id(supplier.front),
            quantity=1,
        )
        for _ in range(6)
    ]
    answers = await asyncio.gather(*(shop.request("POST", "/v1/orders", b) for b in bodies))
    assert all(a.status_code < 500 for a in answers), [a.text for a in answers]
    won = [a.json() for a in answers if a.status_code == 201]
    lost = [a.json() for a in answers if a.status_code != 201]
    assert [o["status"] for o in won] == ["LOCKED"] * 3, [a.text for a in answers]
    assert [(a["error"]["code"], a["order"]["status"]) for a in lost] == [
        ("sold_out", "LOCK_FAILED")
    ] * 3, [a.text for a in answers]
    assert left(supplier, "seated") == 0
    for order in won:
        assert [o["status"] for o in ours(supplier, order["id"])] == ["n"]
    for order in lost:
        assert ours(supplier, order["order"]["id"]) == []
    # Cancelled, the three seats are back in pretix.
    for order in won:
        r = await shop.request("POST", f"/v1/orders/{order['id']}/cancel")
        assert r.json()["status"] == "CANCELED", r.text

    async def seated_left() -> int:
        return left(supplier, "seated")

    await eventually(seated_left, lambda n: n == 3, timeout=30)


async def test_pretix_stopped_mid_issue_is_negotiated_to_fixed_with_one_paid_pretix_order(
    world: World,
    pretix: PretixServer,
    supplier: PretixSupplier,
    shop: AsyncSignedClient,
    ops: AsyncSignedClient,
) -> None:
    order = await locked_order(world, shop, supplier, 2)

    async def detail() -> dict[str, Any]:
        r = await ops.request("GET", f"/admin/v1/orders/{order['id']}")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    pretix.pause()  # every pretix process stopped: the issue waits in its socket, unanswered
    try:
        r = await shop.request("POST", f"/v1/orders/{order['id']}/issue")
        # The gateway's 6 s passed without an answer: unknown, so the platform negotiates.
        assert r.status_code == 202, r.text
        assert r.json()["status"] == "FIXING"
        negotiating = await detail()
        assert [(n["kind"], n["status"]) for n in negotiating["negotiations"]] == [
            ("issue", "active")
        ]
        # A poll while pretix is still stopped learns nothing: the order stays FIXING.
        polled = await eventually(
            detail, lambda d: d["negotiations"][0]["attempts"] >= 1, timeout=40, every=0.5
        )
        assert polled["status"] == "FIXING"
    finally:
        pretix.resume()
    fixed = await eventually(
        lambda: order_of(shop, order["id"]), lambda o: o["status"] == "FIXED", timeout=90
    )
    (paid,) = ours(supplier, order["id"])  # exactly one pretix order, paid once
    assert paid["status"] == "p"
    assert [p["state"] for p in paid["payments"]] == ["confirmed"]
    assert sorted(t["code"] for t in fixed["tickets"]) == sorted(
        p["secret"] for p in paid["positions"]
    )
    done = await detail()
    assert [(n["kind"], n["status"]) for n in done["negotiations"]] == [("issue", "resolved")]


async def test_a_date_cancelled_in_pretix_refunds_its_orders_on_the_platform(
    world: World,
    pretix: PretixServer,
    supplier: PretixSupplier,
    shop: AsyncSignedClient,
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
        r = await shop.request("POST", "/v1/orders", body)
        assert r.status_code == 201, r.text
        r = await shop.request("POST", f"/v1/orders/{r.json()['id']}/issue")
        assert r.json()["status"] == "FIXED", r.text
        orders.append(r.json())
    pretix.cancel_event(supplier.event.slug, supplier.event.dates[1])
    for order in orders:
        order_id: str = order["id"]

        async def probe(order_id: str = order_id) -> dict[str, Any]:
            return await order_of(shop, order_id)

        done = await eventually(probe, lambda o: o["status"] == "REFUNDED", timeout=30)
        assert [h["status"] for h in done["history"]][-2:] == ["REFUNDING", "REFUNDED"]
        detail = (await ops.request("GET", f"/admin/v1/orders/{order['id']}")).json()
        assert detail["supplier_refund"]["initiated_by"] == "supplier"


AT_REST = {"LOCK_FAILED", "CANCELED", "FIXED", "REFUNDED", "REFUND_FAIL"}


async def test_the_settlement_snapshot_matches_the_modules_orders_to_the_minor_unit(
    platform: Any, supplier: PretixSupplier, shop_account: Shop, ops: AsyncSignedClient
) -> None:
    """(After every other test of the module.) Every order of the pretix supplier, each
    order's flows as its history implies them, and the snapshot's lines of the supplier and
    of our distributor, summed over the days the module ran in."""
    sid = supplier.supplier_id

    async def every_order() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        query: dict[str, str] = {"supplier_id": sid, "limit": "500"}
        while True:
            r = await ops.request("GET", f"/admin/v1/orders?{urlencode(query)}")
            assert r.status_code == 200, r.text
            items += r.json()["items"]
            if not r.json()["next_cursor"] or not r.json()["items"]:
                return list({o["id"]: o for o in items}.values())
            query["cursor"] = r.json()["next_cursor"]

    orders = await eventually(
        every_order, lambda os: all(o["status"] in AT_REST for o in os), timeout=60, every=0.5
    )
    assert {o["distributor_id"] for o in orders} == {shop_account.distributor_id}
    assert {"LOCK_FAILED", "CANCELED", "FIXED", "REFUNDED"} <= {o["status"] for o in orders}

    # pretix's prices (minor units) of the tiers sold, and what 95 % and 90 % of them are.
    face = {
        supplier.tier_id(supplier.standing, 0): 4000,
        supplier.tier_id(supplier.standing, 1): 3800,
        supplier.tier_id(supplier.front, 0): 8000,
        supplier.tier_id(supplier.front, 1): 8000,
    }
    implied: dict[str, list[tuple[str, int]]] = {}
    for order in orders:
        detail = (await ops.request("GET", f"/admin/v1/orders/{order['id']}")).json()
        price, settle = face[order["tier_id"]] * 95 // 100, face[order["tier_id"]] * 90 // 100
        assert (order["unit_price"], detail["settlement_price"]) == (price, settle)
        amount, settlement = price * order["quantity"], settle * order["quantity"]
        assert order["amount"] == amount
        seen = {h["status"] for h in order["history"]}
        flows: list[tuple[str, int]] = []
        if "LOCKED" in seen:
            flows.append(("receivable", amount))
        if order["status"] in ("CANCELED", "REFUNDED"):
            flows.append(("receivable", -amount))
        if "FIXED" in seen:
            flows.append(("settlement", settlement))
        if order["status"] == "REFUNDED":
            assert detail["supplier_refund"] is not None
            flows.append(("settlement", -settlement))
        implied[order["id"]] = sorted(flows)

    tz = ZoneInfo(platform.settings.timezone)
    first, last = date.fromisoformat(supplier.started), date.fromisoformat(today(tz.key))
    days = [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]

    # Each order's flows in flows.csv are the ones its history implies.
    booked: dict[str, list[tuple[str, int]]] = {o: [] for o in implied}
    for day in days:
        r = await ops.request("GET", f"/admin/v1/settlement/periods/{day}/flows.csv")
        assert r.status_code == 200, r.text
        for row in csv.DictReader(io.StringIO(r.text)):
            if row["supplier_id"] == sid:
                assert row["currency"] == "EUR"
                booked.setdefault(row["order_id"], []).append(
                    (row["kind"], int(row["signed_amount"]))
                )
    assert {o: sorted(f) for o, f in booked.items()} == implied

    # The snapshot's lines: the supplier's settlement and our distributor's receivable.
    def plus_minus(kind: str) -> tuple[int, int]:
        signed = [a for flows in implied.values() for k, a in flows if k == kind]
        return sum(a for a in signed if a > 0), -sum(a for a in signed if a < 0)

    got_supplier, got_distributor = [0, 0, 0], [0, 0, 0]
    for day in days:
        r = await ops.request("GET", f"/admin/v1/settlement/periods/{day}")
        assert r.status_code == 200, r.text
        snap = r.json()
        for line in snap["suppliers"]:
            if line["supplier_id"] == sid:
                assert line["currency"] == "EUR"
                got_supplier[0] += line["settlement_plus"]
                got_supplier[1] += line["settlement_minus"]
                got_supplier[2] += line["net"]
        for line in snap["distributors"]:
            if line["distributor_id"] == shop_account.distributor_id:
                assert line["currency"] == "EUR"
                got_distributor[0] += line["receivable_plus"]
                got_distributor[1] += line["receivable_minus"]
                got_distributor[2] += line["net"]
        assert not set(snap["checks"]["violating_orders"]) & set(implied)
    s_plus, s_minus = plus_minus("settlement")
    r_plus, r_minus = plus_minus("receivable")
    assert got_supplier == [s_plus, s_minus, s_plus - s_minus]
    assert got_distributor == [r_plus, r_minus, r_plus - r_minus]
    assert min(s_plus, s_minus, r_minus) > 0
