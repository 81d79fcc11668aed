"""Accounts, keys, grants and catalog distribution over the real HTTP API, against a supplier
created and synced through the admin API (its own sandbox process and catalog)."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from persistence.catalog import catalog_id
from showdist.client import AsyncSignedClient, Credentials
from suppliers.sandbox.process import SandboxAdmin, SandboxProcess
from tests.support.waiting import eventually
from tests.support.world import World


def _tier(ref: str, stock: int = 100) -> dict[str, Any]:
    return {
        "ref": ref,
        "name": ref,
        "face_value": 50000,
        "price": 45000,
        "settlement_price": 40000,
        "currency": "CNY",
        "stock": stock,
    }


def _show(
    ref: str, city: str, category: str, sessions: list[str], title: str = ""
) -> dict[str, Any]:
    return {
        "ref": ref,
        "title": title or f"show {ref}",
        "city": city,
        "category": category,
        "venue": "venue",
        "starts_at": "2027-01-10T19:30:00+08:00",
        "status": "online",
        "sessions": [
            {
                "ref": s,
                "starts_at": "2027-01-10T19:30:00+08:00",
                "status": "online",
                "tiers": [_tier(f"{s}_t1")],
            }
            for s in sessions
        ],
    }


def catalog(**titles: str) -> dict[str, Any]:
    return {
        "shows": [
            _show("A", "上海", "concert", ["A1", "A2"], titles.get("A", "")),
            _show("B", "北京", "theatre", ["B1"], titles.get("B", "")),
            _show("C", "上海", "theatre", ["C1"], titles.get("C", "")),
        ]
    }


@dataclass
class Shop:
    supplier_id: str
    sandbox: SandboxAdmin
    admin: AsyncSignedClient
    base_url: str

    def show(self, ref: str) -> str:
        return catalog_id("shw", self.supplier_id, ref)

    def session(self, show: str, ses: str) -> str:
        return catalog_id("ses", self.supplier_id, show, ses)

    def tier(self, show: str, ses: str) -> str:
        return catalog_id("tir", self.supplier_id, show, ses, f"{ses}_t1")

    async def distributor(
        self, *grants: dict[str, Any], rate_limit: int | None = None
    ) -> tuple[str, AsyncSignedClient]:
        body: dict[str, Any] = {"name": f"dist-{uuid.uuid4().hex[:6]}"}
        if rate_limit:
            body["rate_limit_per_s"] = rate_limit
        r = await self.admin.request("POST", "/admin/v1/distributors", body)
        assert r.status_code == 201, r.text
        dist_id = r.json()["id"]
        r = await self.admin.request(
            "POST", f"/admin/v1/distributors/{dist_id}/keys", {"type": "hmac"}
        )
        assert r.status_code == 201, r.text
        key = r.json()
        for g in grants:
            r = await self.admin.request("POST", f"/admin/v1/distributors/{dist_id}/grants", g)
            assert r.status_code == 201, r.text
        return dist_id, AsyncSignedClient(
            self.base_url, Credentials(key["key_id"], secret=key["secret"])
        )

    async def sync(self) -> None:
        r = await self.admin.request("POST", f"/admin/v1/suppliers/{self.supplier_id}/sync")
        assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def shop_sandbox() -> Iterator[SandboxProcess]:
    proc = SandboxProcess.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
async def shop(world: World, shop_sandbox: SandboxProcess) -> AsyncIterator[Shop]:
    admin_sb = SandboxAdmin(shop_sandbox.url)
    admin_sb.load_catalog(catalog())
    admin = AsyncSignedClient(world.base_url, world.admin)
    r = await admin.request(
        "POST",
        "/admin/v1/suppliers",
        {
            "name": "Grant Test Box Office",
            "gateway": "sandbox",
            "config": {"base_url": shop_sandbox.url},
        },
    )
    assert r.status_code == 201, r.text
    shop = Shop(r.json()["id"], admin_sb, admin, world.base_url)
    await shop.sync()
    yield shop
    await admin.aclose()
    admin_sb.close()


async def visible(client: AsyncSignedClient, shop: Shop) -> set[str]:
    r = await client.request("GET", "/v1/shows?limit=500")
    assert r.status_code == 200, r.text
    mine = {shop.show(x): x for x in "ABC"}
    return {mine[s["id"]] for s in r.json()["items"] if s["id"] in mine}


def order(shop: Shop, show: str, ses: str) -> dict[str, Any]:
    return {
        "distributor_order_id": f"G-{uuid.uuid4().hex[:10]}",
        "session_id": shop.session(show, ses),
        "tier_id": shop.tier(show, ses),
        "quantity": 1,
        "buyer": {"name": "李四", "phone": "13900000000"},
        "delivery": {"method": "ETICKET"},
    }


# -- grants ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("grant", "expected"),
    [
        ({"scope": "all"}, {"A", "B", "C"}),
        ({"scope": "city", "value": "上海"}, {"A", "C"}),
        ({"scope": "category", "value": "theatre"}, {"B", "C"}),
    ],
)
async def test_each_scope_shows_what_it_names(
    shop: Shop, grant: dict[str, Any], expected: set[str]
) -> None:
    _, client = await shop.distributor(grant)
    try:
        assert await visible(client, shop) == expected
    finally:
        await client.aclose()


async def test_supplier_show_and_session_scopes(shop: Shop, world: World) -> None:
    _, by_supplier = await shop.distributor({"scope": "supplier", "value": shop.supplier_id})
    _, by_show = await shop.distributor({"scope": "show", "value": shop.show("B")})
    _, by_session = await shop.distributor({"scope": "session", "value": shop.session("A", "A2")})
    try:
        assert await visible(by_supplier, shop) == {"A", "B", "C"}
        r = await by_supplier.request("GET", "/v1/shows?limit=500")
        assert world.show_id not in {s["id"] for s in r.json()["items"]}  # another supplier's
        assert await visible(by_show, shop) == {"B"}
        assert await visible(by_session, shop) == {"A"}
        detail = (await by_session.request("GET", f"/v1/shows/{shop.show('A')}")).json()
        assert [s["id"] for s in detail["sessions"]] == [shop.session("A", "A2")]
        r = await by_session.request("POST", "/v1/orders", order(shop, "A", "A1"))
        assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden")
        r = await by_session.request("POST", "/v1/orders", order(shop, "A", "A2"))
        assert r.status_code == 201, r.text
        r = await by_show.request("GET", f"/v1/shows/{shop.show('A')}")
        assert r.status_code == 404
    finally:
        for c in (by_supplier, by_show, by_session):
            await c.aclose()


async def test_a_grant_not_yet_started_or_already_ended_hides_and_refuses(shop: Shop) -> None:
    now = datetime.now(UTC)
    later = {"scope": "all", "valid_from": (now + timedelta(hours=1)).isoformat()}
    ended = {
        "scope": "all",
        "valid_from": (now - timedelta(hours=2)).isoformat(),
        "valid_until": (now - timedelta(hours=1)).isoformat(),
    }
    for grant in (later, ended):
        _, client = await shop.distributor(grant)
        try:
            assert await visible(client, shop) == set()
            r = await client.request("POST", "/v1/orders", order(shop, "A", "A1"))
            assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden")
        finally:
            await client.aclose()


async def test_a_grant_that_ends_hides_the_catalog_when_it_ends(shop: Shop) -> None:
    until = datetime.now(UTC) + timedelta(seconds=2)
    _, client = await shop.distributor({"scope": "all", "valid_until": until.isoformat()})
    try:
        assert await visible(client, shop) == {"A", "B", "C"}
        await eventually(lambda: visible(client, shop), lambda v: v == set(), timeout=10)
        r = await client.request("POST", "/v1/orders", order(shop, "A", "A1"))
        assert r.status_code == 403
    finally:
        await client.aclose()


# -- suspension and keys ------------------------------------------------------------------------


async def test_a_suspended_distributor_is_refused_on_every_call(shop: Shop) -> None:
    dist_id, client = await shop.distributor({"scope": "all"})
    try:
        placed = (await client.request("POST", "/v1/orders", order(shop, "A", "A1"))).json()
        r = await shop.admin.request("POST", f"/admin/v1/distributors/{dist_id}/suspend")
        assert r.json()["status"] == "suspended"
        calls = [
            ("GET", "/v1/shows", None),
            ("GET", f"/v1/shows/{shop.show('A')}", None),
            ("GET", f"/v1/sessions/{shop.session('A', 'A1')}/stock", None),
            ("GET", "/v1/orders", None),
            ("GET", f"/v1/orders/{placed['id']}", None),
            ("POST", "/v1/orders", order(shop, "A", "A1")),
            ("POST", f"/v1/orders/{placed['id']}/issue", None),
            ("POST", f"/v1/orders/{placed['id']}/cancel", None),
            ("POST", f"/v1/orders/{placed['id']}/refund", {"reason": "x"}),
        ]
        for method, path, body in calls:
            r = await client.request(method, path, body)
            assert (r.status_code, r.json()["error"]["code"]) == (403, "account_suspended"), path
        await shop.admin.request("POST", f"/admin/v1/distributors/{dist_id}/activate")
        r = await client.request("GET", f"/v1/orders/{placed['id']}")
        assert r.status_code == 200
        assert r.json()["status"] == "LOCKED"  # nothing happened while suspended
    finally:
        await client.aclose()


async def test_key_rotation_and_revocation(shop: Shop) -> None:
    dist_id, first = await shop.distributor({"scope": "all"})
    r = await shop.admin.request("POST", f"/admin/v1/distributors/{dist_id}/keys", {"type": "hmac"})
    second_key = r.json()
    second = AsyncSignedClient(
        shop.base_url, Credentials(second_key["key_id"], secret=second_key["secret"])
    )
    private = Ed25519PrivateKey.generate()
    public = base64.b64encode(private.public_key().public_bytes_raw()).decode()
    r = await shop.admin.request(
        "POST", f"/admin/v1/distributors/{dist_id}/keys", {"type": "ed25519", "public_key": public}
    )
    assert "secret" not in r.json()
    third = AsyncSignedClient(shop.base_url, Credentials(r.json()["key_id"], private_key=private))
    try:
        for c in (first, second, third):
            assert (await c.request("GET", "/v1/orders")).status_code == 200
        detail = (await shop.admin.request("GET", f"/admin/v1/distributors/{dist_id}")).json()
        assert len(detail["keys"]) == 3
        assert all("secret" not in k for k in detail["keys"])  # shown once, at creation
        r = await shop.admin.request("DELETE", f"/admin/v1/keys/{first.creds.key_id}")
        assert r.status_code == 200
        r = await first.request("GET", "/v1/orders")
        assert (r.status_code, r.json()["error"]["code"]) == (401, "key_revoked")
        assert (await second.request("GET", "/v1/orders")).status_code == 200
        assert (await third.request("GET", "/v1/orders")).status_code == 200
    finally:
        for c in (first, second, third):
            await c.aclose()


async def test_an_expired_key_is_refused(shop: Shop) -> None:
    dist_id, client = await shop.distributor({"scope": "all"})
    expires = datetime.now(UTC) + timedelta(seconds=1)
    r = await shop.admin.request(
        "POST",
        f"/admin/v1/distributors/{dist_id}/keys",
        {"type": "hmac", "expires_at": expires.isoformat()},
    )
    short = AsyncSignedClient(
        shop.base_url, Credentials(r.json()["key_id"], secret=r.json()["secret"])
    )
    try:
        assert (await short.request("GET", "/v1/orders")).status_code == 200
        await asyncio.sleep(1.2)
        r = await short.request("GET", "/v1/orders")
        assert (r.status_code, r.json()["error"]["code"]) == (401, "key_expired")
    finally:
        await short.aclose()
        await client.aclose()


# -- isolation ----------------------------------------------------------------------------------


async def test_another_distributors_objects_are_not_found(shop: Shop) -> None:
    _, owner = await shop.distributor({"scope": "all"})
    _, other = await shop.distributor({"scope": "show", "value": shop.show("B")})
    try:
        placed = (await owner.request("POST", "/v1/orders", order(shop, "A", "A1"))).json()
        for method, path, body in [
            ("GET", f"/v1/orders/{placed['id']}", None),
            ("POST", f"/v1/orders/{placed['id']}/issue", None),
            ("POST", f"/v1/orders/{placed['id']}/cancel", None),
            ("POST", f"/v1/orders/{placed['id']}/refund", {"reason": "x"}),
            ("GET", f"/v1/shows/{shop.show('A')}", None),
            ("GET", f"/v1/sessions/{shop.session('A', 'A1')}/stock", None),
        ]:
            r = await other.request(method, path, body)
            assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found"), path
        listed = (await other.request("GET", "/v1/orders?limit=500")).json()["items"]
        assert placed["id"] not in {o["id"] for o in listed}
        assert (await owner.request("GET", f"/v1/orders/{placed['id']}")).json()[
            "status"
        ] == "LOCKED"
    finally:
        await owner.aclose()
        await other.aclose()


# -- incremental sync and stock -----------------------------------------------------------------


async def test_incremental_sync_with_changes_during_the_walk(shop: Shop) -> None:
    dist_id, client = await shop.distributor({"scope": "all"})
    try:
        start = quote((datetime.now(UTC) - timedelta(days=1)).isoformat())
        first = await client.request("GET", f"/v1/shows?updated_since={start}&limit=1")
        page = first.json()
        seen = [page["items"][0]["id"]]
        cursor = page["next_cursor"]
        assert cursor is not None
        # During the walk the supplier renames show C; nothing else changes.
        shop.sandbox.load_catalog(catalog(C="renamed C"))
        await shop.sync()
        while cursor:
            r = await client.request(
                "GET", f"/v1/shows?updated_since={start}&limit=1&cursor={cursor}"
            )
            body = r.json()
            seen += [s["id"] for s in body["items"]]
            cursor = body["next_cursor"]
        mine = [s for s in seen if s in {shop.show(x) for x in "ABC"}]
        unchanged = [shop.show("A"), shop.show("B")]
        for sid in unchanged:
            assert mine.count(sid) == 1, mine  # neither skipped nor repeated
        assert shop.show("C") in mine

        # Later changes: a show goes offline, and a grant ends; both show up as deltas.
        mark = quote(datetime.now(UTC).isoformat())
        await asyncio.sleep(0.05)
        shop.sandbox.load_catalog({"shows": [s for s in catalog()["shows"] if s["ref"] != "B"]})
        await shop.sync()
        r = await client.request("GET", f"/v1/shows?updated_since={mark}&limit=500")
        delta = {s["id"]: s["status"] for s in r.json()["items"]}
        assert delta.get(shop.show("B")) == "offline"
        assert shop.show("B") not in {
            s["id"] for s in (await client.request("GET", "/v1/shows?limit=500")).json()["items"]
        }
        grants = (
            await shop.admin.request("GET", f"/admin/v1/distributors/{dist_id}/grants")
        ).json()
        mark = quote(datetime.now(UTC).isoformat())
        await asyncio.sleep(0.05)
        await shop.admin.request("DELETE", f"/admin/v1/grants/{grants['items'][0]['id']}")
        r = await client.request("GET", f"/v1/shows?updated_since={mark}&limit=500")
        withdrawn = {s["id"]: s["status"] for s in r.json()["items"]}
        assert withdrawn.get(shop.show("A")) == "withdrawn"
        assert withdrawn.get(shop.show("C")) == "withdrawn"
    finally:
        shop.sandbox.load_catalog(catalog())
        await shop.sync()
        await client.aclose()


async def test_stock_is_fresh_within_a_few_seconds(shop: Shop) -> None:
    _, client = await shop.distributor({"scope": "all"})
    try:
        session = shop.session("C", "C1")
        before = (await client.request("GET", f"/v1/sessions/{session}/stock")).json()
        start = before["tiers"][0]["available"]
        body = dict(order(shop, "C", "C1"), quantity=3)
        assert (await client.request("POST", "/v1/orders", body)).status_code == 201

        async def available() -> int:
            got = (await client.request("GET", f"/v1/sessions/{session}/stock")).json()
            return int(got["tiers"][0]["available"])

        await eventually(available, lambda n: n == start - 3, timeout=5)
    finally:
        await client.aclose()


async def test_admin_validation_and_unknown_ids(shop: Shop) -> None:
    r = await shop.admin.request("POST", "/admin/v1/distributors/dst_nope/grants", {"scope": "all"})
    assert r.status_code == 404
    dist_id, client = await shop.distributor()
    await client.aclose()
    for bad in (
        {"scope": "city"},
        {"scope": "all", "value": "x"},
        {"scope": "galaxy", "value": "x"},
        {"scope": "all", "valid_from": "2026-01-02T00:00:00", "valid_until": "2026-01-03T00:00:00"},
    ):
        r = await shop.admin.request("POST", f"/admin/v1/distributors/{dist_id}/grants", bad)
        assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_request"), bad
    r = await shop.admin.request(
        "POST", f"/admin/v1/distributors/{dist_id}/keys", {"type": "ed25519", "public_key": "AAAA"}
    )
    assert r.status_code == 422
    r = await shop.admin.request("POST", "/admin/v1/suppliers", {"name": "x", "gateway": "nope"})
    assert r.status_code == 422
