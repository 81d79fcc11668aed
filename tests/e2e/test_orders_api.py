"""The platform end to end over real HTTP: Ray Serve, order hosts, supplier actors,
PostgreSQL and the sandbox supplier process."""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from typing import Any

import httpx

from domain.signing import new_nonce, sign_request
from showdist.client import AsyncSignedClient, Credentials, encode_body
from tests.support.waiting import eventually
from tests.support.world import World


def oid() -> str:
    return f"D-{uuid.uuid4().hex[:12]}"


async def test_health_and_platform_key_need_no_signature(world: World) -> None:
    async with httpx.AsyncClient(base_url=world.base_url, trust_env=False) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        key = (await http.get("/v1/platform-key")).json()
        assert key["key_id"] == "platform"
        assert key["algorithm"] == "ed25519"
        assert len(key["public_key"]) == 44


async def test_lock_then_issue_gives_fixed_with_the_suppliers_tickets(
    world: World, client_a: AsyncSignedClient, sandbox_admin: Any
) -> None:
    r = await client_a.request("POST", "/v1/orders", world.order_body(oid()))
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["status"] == "LOCKED"
    assert order["amount"] == 2 * 36000
    assert order["unit_price"] == 36000
    assert order["currency"] == "CNY"
    assert order["lock_expires_at"] is not None

    r = await client_a.request("POST", f"/v1/orders/{order['id']}/issue")
    assert r.status_code == 200, r.text
    fixed = r.json()
    assert fixed["status"] == "FIXED"
    assert fixed["delivery_status"] == "DELIVERED"
    assert len(fixed["tickets"]) == 2
    assert [h["status"] for h in fixed["history"]] == ["NEW", "LOCKED", "FIXING", "FIXED"]

    # The tickets are the ones the supplier issued for this order.
    async with httpx.AsyncClient(trust_env=False) as http:
        at_supplier = (await http.get(f"{sandbox_admin.base_url}/issues/{order['id']}")).json()
    assert at_supplier["state"] == "issued"
    assert sorted(t["code"] for t in at_supplier["tickets"]) == sorted(
        t["code"] for t in fixed["tickets"]
    )

    r = await client_a.request("GET", f"/v1/orders/{order['id']}")
    assert r.status_code == 200
    assert r.json()["tickets"] == fixed["tickets"]


async def test_ed25519_key_signs_too(world: World) -> None:
    assert world.a.ed25519 is not None
    client = AsyncSignedClient(world.base_url, world.a.ed25519)
    try:
        r = await client.request("POST", "/v1/orders", world.order_body(oid(), quantity=1))
        assert r.status_code == 201, r.text
    finally:
        await client.aclose()


async def test_create_is_idempotent_on_the_distributors_order_id(
    world: World, client_a: AsyncSignedClient, sandbox_admin: Any
) -> None:
    body = world.order_body(oid())
    before = sandbox_admin.counters()["lock"]
    first = await client_a.request("POST", "/v1/orders", body)
    again = await client_a.request("POST", "/v1/orders", body)
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert sandbox_admin.counters()["lock"] - before == 1

    changed = dict(body, quantity=3)
    r = await client_a.request("POST", "/v1/orders", changed)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "idempotency_conflict"


async def test_concurrent_issue_reaches_the_supplier_once(
    world: World, client_a: AsyncSignedClient, sandbox_admin: Any
) -> None:
    order = (await client_a.request("POST", "/v1/orders", world.order_body(oid()))).json()
    before = sandbox_admin.counters()
    replies = await asyncio.gather(
        *(client_a.request("POST", f"/v1/orders/{order['id']}/issue") for _ in range(50))
    )
    after = sandbox_admin.counters()
    assert {r.status_code for r in replies} == {200}
    bodies = [r.json() for r in replies]
    assert {b["status"] for b in bodies} == {"FIXED"}
    assert len({json.dumps(b["tickets"], sort_keys=True) for b in bodies}) == 1
    assert after["issue"] - before["issue"] == 1
    assert after["issue_effects"] - before["issue_effects"] == 1


async def test_sold_out_is_fast_and_final(world: World, client_a: AsyncSignedClient) -> None:
    body = world.order_body(oid(), tier_id=world.small_tier_id, quantity=4)
    r = await client_a.request("POST", "/v1/orders", body)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "sold_out"
    assert r.json()["order"]["status"] == "LOCK_FAILED"


async def test_supplier_error_on_lock_is_503_and_recorded_as_lock_failed(
    world: World, client_a: AsyncSignedClient, sandbox_admin: Any
) -> None:
    sandbox_admin.set_faults({"lock": {"error_rate": 1.0}})
    body = world.order_body(oid())
    r = await client_a.request("POST", "/v1/orders", body)
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "supplier_unavailable"
    order_id = r.json()["order"]["id"]
    got = (await client_a.request("GET", f"/v1/orders/{order_id}")).json()
    assert got["status"] == "LOCK_FAILED"


async def test_issue_refused_by_supplier_cancels_and_returns_the_seats(
    world: World, client_a: AsyncSignedClient, sandbox_admin: Any
) -> None:
    order = (await client_a.request("POST", "/v1/orders", world.order_body(oid()))).json()
    sandbox_admin.set_faults({"issue": {"refuse_rate": 1.0}})
    held = sandbox_admin.inventory()["e2e_big"]["locked"]
    r = await client_a.request("POST", f"/v1/orders/{order['id']}/issue")
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "issue_failed"
    assert r.json()["order"]["status"] == "CANCELED"

    async def locked() -> int:
        return int(sandbox_admin.inventory()["e2e_big"]["locked"])

    await eventually(locked, lambda n: n == held - 2)  # the scheduled release ran


async def test_lost_issue_response_keeps_the_order_fixing(
    world: World, client_a: AsyncSignedClient, sandbox_admin: Any
) -> None:
    order = (await client_a.request("POST", "/v1/orders", world.order_body(oid()))).json()
    sandbox_admin.set_faults({"issue": {"lost_response_rate": 1.0}})
    r = await client_a.request("POST", f"/v1/orders/{order['id']}/issue")
    assert r.status_code == 202
    assert r.json()["status"] == "FIXING"
    # A repeat does not issue again: the answer is read from the order's state.
    before = sandbox_admin.counters()["issue"]
    again = await client_a.request("POST", f"/v1/orders/{order['id']}/issue")
    assert again.status_code in (200, 202)  # 200 once the negotiation found it issued
    assert sandbox_admin.counters()["issue"] == before


async def test_other_distributors_orders_are_not_found(
    world: World, client_a: AsyncSignedClient, client_b: AsyncSignedClient
) -> None:
    order = (await client_a.request("POST", "/v1/orders", world.order_body(oid()))).json()
    for method, path in [("GET", ""), ("POST", "/issue")]:
        r = await client_b.request(method, f"/v1/orders/{order['id']}{path}")
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "not_found"
    still = (await client_a.request("GET", f"/v1/orders/{order['id']}")).json()
    assert still["status"] == "LOCKED"


async def test_malformed_body_is_422_naming_the_field_and_creates_nothing(
    world: World, client_a: AsyncSignedClient
) -> None:
    doid = oid()
    bad = world.order_body(doid, quantity="two")
    r = await client_a.request("POST", "/v1/orders", bad)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_request"
    assert "quantity" in r.json()["error"]["message"]
    r = await client_a.request("POST", "/v1/orders", b"{not json")
    assert r.status_code == 422
    # The id was never used: a valid create with it now is a fresh 201.
    r = await client_a.request("POST", "/v1/orders", world.order_body(doid))
    assert r.status_code == 201


async def test_price_fields_set_by_the_distributor_are_refused_and_create_nothing(
    world: World, client_a: AsyncSignedClient
) -> None:
    """A distributor cannot set a price or a status: such a field is refused by name (it used
    to be ignored, which also hid typos), and nothing is created."""
    distributor_order_id = oid()
    for field, value in (("unit_price", 1), ("amount", 1), ("status", "FIXED")):
        body = world.order_body(distributor_order_id, **{field: value})
        r = await client_a.request("POST", "/v1/orders", body)
        assert r.status_code == 422
        assert r.json()["error"]["code"] == "invalid_request"
        assert field in r.json()["error"]["message"]
    r = await client_a.request("POST", "/v1/orders", world.order_body(distributor_order_id))
    assert r.status_code == 201  # the first create of this id: nothing was made before
    assert r.json()["unit_price"] == 36000
    assert r.json()["status"] == "LOCKED"


async def _raw(
    world: World,
    creds: Credentials,
    method: str,
    target: str,
    data: Any = None,
    *,
    timestamp: int | None = None,
    tamper_body: bytes | None = None,
    headers_override: dict[str, str] | None = None,
) -> httpx.Response:
    body = encode_body(data)
    headers = creds.headers(method, target, body, timestamp=timestamp)
    headers.update(headers_override or {})
    async with httpx.AsyncClient(base_url=world.base_url, trust_env=False) as http:
        return await http.request(
            method,
            target,
            content=tamper_body if tamper_body is not None else body,
            headers=headers,
        )


async def test_a_tampered_body_is_refused(world: World) -> None:
    body = world.order_body(oid())
    tampered = encode_body(dict(body, quantity=3))
    r = await _raw(world, world.a.creds, "POST", "/v1/orders", body, tamper_body=tampered)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "signature_invalid"


async def test_a_wrong_key_is_refused(world: World) -> None:
    unknown = Credentials("dk_doesnotexist", secret="sk_whatever")
    r = await _raw(world, unknown, "GET", "/v1/orders/ord_x")
    assert (r.status_code, r.json()["error"]["code"]) == (401, "key_unknown")
    wrong_secret = Credentials(world.a.creds.key_id, secret="sk_not_the_secret")
    r = await _raw(world, wrong_secret, "GET", "/v1/orders/ord_x")
    assert (r.status_code, r.json()["error"]["code"]) == (401, "signature_invalid")


async def test_a_stale_timestamp_is_refused(world: World) -> None:
    now = time.time()
    for skew in (-301, 301, -3600):
        # Whole seconds on the wire: round away from now, so the server's sub-second lead
        # cannot pull a refused case back inside the window.
        sent = (math.ceil(now) if skew > 0 else math.floor(now)) + skew
        r = await _raw(world, world.a.creds, "GET", "/v1/orders/ord_x", timestamp=sent)
        assert (r.status_code, r.json()["error"]["code"]) == (401, "timestamp_out_of_window")
    r = await _raw(world, world.a.creds, "GET", "/v1/orders/ord_x", timestamp=int(now) - 290)
    assert r.status_code == 404  # inside the window: signed fine, the order does not exist


async def test_a_replayed_request_is_refused(world: World) -> None:
    target = "/v1/orders/ord_replay"
    assert world.a.creds.secret is not None
    headers = sign_request(
        method="GET",
        target=target,
        body=b"",
        key_id=world.a.creds.key_id,
        key_type=world.a.creds.key_type,
        secret=world.a.creds.secret,
        timestamp=int(time.time()),
        nonce=new_nonce(),
    )
    async with httpx.AsyncClient(base_url=world.base_url, trust_env=False) as http:
        first = await http.get(target, headers=headers)
        second = await http.get(target, headers=headers)
    assert first.status_code == 404
    assert (second.status_code, second.json()["error"]["code"]) == (401, "nonce_replayed")


async def test_missing_or_malformed_headers_are_refused(world: World) -> None:
    async with httpx.AsyncClient(base_url=world.base_url, trust_env=False) as http:
        r = await http.get("/v1/orders/ord_x")
    assert (r.status_code, r.json()["error"]["code"]) == (401, "signature_missing")
    r = await _raw(
        world, world.a.creds, "GET", "/v1/orders/ord_x", headers_override={"X-Showdist-Nonce": "x"}
    )
    assert (r.status_code, r.json()["error"]["code"]) == (401, "signature_malformed")


async def test_an_admin_key_cannot_call_the_distributor_api(world: World) -> None:
    r = await _raw(world, world.admin, "GET", "/v1/orders/ord_x")
    assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden")


async def test_catalog_reads_show_the_world(world: World, client_a: AsyncSignedClient) -> None:
    r = await client_a.request("GET", "/v1/shows")
    assert r.status_code == 200
    assert world.show_id in {s["id"] for s in r.json()["items"]}
    r = await client_a.request("GET", f"/v1/shows/{world.show_id}")
    assert r.status_code == 200
    tiers = {t["id"]: t for s in r.json()["sessions"] for t in s["tiers"]}
    assert tiers[world.big_tier_id]["price"] == 36000


async def test_a_repeated_create_answers_the_order_after_its_grant_lapsed(
    world: World, admin_client: AsyncSignedClient
) -> None:
    """(A distributor of its own: the world's are shared by every e2e test.)"""
    r = await admin_client.request("POST", "/admin/v1/distributors", {"name": "lapsing"})
    dist_id = r.json()["id"]
    key = (
        await admin_client.request(
            "POST", f"/admin/v1/distributors/{dist_id}/keys", {"type": "hmac"}
        )
    ).json()
    grant = await admin_client.request(
        "POST", f"/admin/v1/distributors/{dist_id}/grants", {"scope": "all"}
    )
    assert grant.status_code == 201
    client = AsyncSignedClient(world.base_url, Credentials(key["key_id"], secret=key["secret"]))
    try:
        body = world.order_body("lapse-1")
        first = await client.request("POST", "/v1/orders", body)
        assert first.status_code == 201
        r = await admin_client.request("DELETE", f"/admin/v1/grants/{grant.json()['id']}")
        assert r.status_code == 200
        again = await client.request("POST", "/v1/orders", body)
        assert again.status_code == 200
        assert again.json()["id"] == first.json()["id"]
        other = await client.request("POST", "/v1/orders", world.order_body("lapse-1", quantity=1))
        assert other.status_code == 409
        assert other.json()["error"]["code"] == "idempotency_conflict"
        new = await client.request("POST", "/v1/orders", world.order_body("lapse-2"))
        assert new.status_code == 403
        assert new.json()["error"]["code"] == "forbidden"
    finally:
        await client.aclose()
