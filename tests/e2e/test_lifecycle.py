"""Every arrow of the order status machine over the real HTTP API, with the real sandbox
supplier's faults; background work (timers, negotiations, releases, feeds) is awaited."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx

from showdist.client import AsyncSignedClient
from showdist.platform import RunningPlatform
from tests.support.waiting import eventually
from tests.support.world import World


def oid() -> str:
    return f"L-{uuid.uuid4().hex[:12]}"


async def status_of(client: AsyncSignedClient, order_id: str) -> dict[str, Any]:
    r = await client.request("GET", f"/v1/orders/{order_id}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def wait_status(
    client: AsyncSignedClient, order_id: str, statuses: set[str], timeout: float = 20.0
) -> dict[str, Any]:
    return await eventually(
        lambda: status_of(client, order_id), lambda o: o["status"] in statuses, timeout=timeout
    )


def inv(sandbox_admin: Any, tier: str = "e2e_big") -> dict[str, int]:
    got: dict[str, int] = sandbox_admin.inventory()[tier]
    return got


async def wait_inventory(
    sandbox_admin: Any, expected: dict[str, int], tier: str = "e2e_big"
) -> None:
    async def probe() -> dict[str, int]:
        return inv(sandbox_admin, tier)

    await eventually(probe, lambda got: all(got[k] == v for k, v in expected.items()))


async def locked_order(world: World, client: AsyncSignedClient, **overrides: Any) -> dict[str, Any]:
    r = await client.request("POST", "/v1/orders", world.order_body(oid(), **overrides))
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def fixed_order(world: World, client: AsyncSignedClient, **overrides: Any) -> dict[str, Any]:
    order = await locked_order(world, client, **overrides)
    r = await client.request("POST", f"/v1/orders/{order['id']}/issue")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


# -- cancel and expiry ---------------------------------------------------------------------


async def test_cancel_releases_the_seats_and_repeats_answer_the_same(
    world: World, client_a: AsyncSignedClient, sandbox_admin: Any
) -> None:
    before = inv(sandbox_admin)
    order = await locked_order(world, client_a)
    assert inv(sandbox_admin)["available"] == before["available"] - 2
    replies = await asyncio.gather(
        *(client_a.request("POST", f"/v1/orders/{order['id']}/cancel") for _ in range(10))
    )
    assert {r.status_code for r in replies} == {200}
    assert {r.json()["status"] for r in replies} == {"CANCELED"}
    await wait_inventory(sandbox_admin, {"available": before["available"]})
    r = await client_a.request("POST", f"/v1/orders/{order['id']}/issue")
    assert (r.status_code, r.json()["error"]["code"]) == (409, "invalid_transition")


async def test_a_fixed_order_cannot_be_canceled(world: World, client_a: AsyncSignedClient) -> None:
    order = await fixed_order(world, client_a)
    r = await client_a.request("POST", f"/v1/orders/{order['id']}/cancel")
    assert (r.status_code, r.json()["error"]["code"]) == (409, "invalid_transition")
    assert (await status_of(client_a, order["id"]))["status"] == "FIXED"


async def test_an_expired_lock_is_canceled_by_the_timer_and_the_seats_return(
    world: World, client_a: AsyncSignedClient, sandbox_admin: Any
) -> None:
    before = inv(sandbox_admin)
    order = await locked_order(world, client_a, lock_seconds=1)
    canceled = await wait_status(client_a, order["id"], {"CANCELED"})
    assert canceled["failure_reason"] == "lock_expired"
    await wait_inventory(sandbox_admin, {"available": before["available"]})
    r = await client_a.request("POST", f"/v1/orders/{order['id']}/issue")
    assert (r.status_code, r.json()["error"]["code"]) == (409, "lock_expired")


# -- idempotency under concurrency ---------------------------------------------------------


async def test_200_concurrent_issues_make_one_supplier_issue(
    world: World, client_a: AsyncSignedClient, sandbox_admin: Any, platform: Any
) -> None:
    order = await locked_order(world, client_a)
    before = sandbox_admin.counters()
    asked_before = await issues_asked_of_hosts(platform)
    replies = await asyncio.gather(
        *(client_a.request("POST", f"/v1/orders/{order['id']}/issue") for _ in range(200))
    )
    after = sandbox_admin.counters()
    assert after["issue"] - before["issue"] == 1
    assert {r.status_code for r in replies} == {200}
    assert len({str(r.json()["tickets"]) for r in replies}) == 1
    # Requests in flight at once shared their trips to the order's host.
    asked = await issues_asked_of_hosts(platform) - asked_before
    assert 1 <= asked < 200, asked


async def issues_asked_of_hosts(platform: RunningPlatform) -> int:
    stats = await asyncio.gather(*(h.stats() for h in platform.hosts))
    return sum(s["issues_asked"] for s in stats)


async def test_an_orders_calls_reach_its_host_over_the_hosts_channel(
    world: World, client_a: AsyncSignedClient, platform: RunningPlatform
) -> None:
    async def channel_calls() -> int:
        stats = await asyncio.gather(*(h.stats() for h in platform.hosts))
        return sum(s["channel_calls"] for s in stats)

    before = await channel_calls()
    order = await fixed_order(world, client_a)
    r = await client_a.request("GET", f"/v1/orders/{order['id']}")
    assert r.json()["status"] == "FIXED"
    # create, issue and get: three calls, each over the channel (other lifecycles of tests
    # running beside this one may add theirs).
    assert await channel_calls() - before >= 3


async def test_50_concurrent_identical_creates_make_one_order_and_one_lock(
    world: World, client_a: AsyncSignedClient, sandbox_admin: Any
) -> None:
    body = world.order_body(oid())
    before = sandbox_admin.counters()
    replies = await asyncio.gather(
        *(client_a.request("POST", "/v1/orders", body) for _ in range(50))
    )
    after = sandbox_admin.counters()
    assert sorted(r.status_code for r in replies) == [200] * 49 + [201]
    assert len({r.json()["id"] for r in replies}) == 1
    assert after["lock"] - before["lock"] == 1
    assert after["locks_performed"] - before["locks_performed"] == 1


# -- refunds -------------------------------------------------------------------------------


async def test_refund_of_a_fixed_order(
    world: World, client_a: AsyncSignedClient, admin_client: AsyncSignedClient, sandbox_admin: Any
) -> None:
    before = inv(sandbox_admin)
    order = await fixed_order(world, client_a)
    calls = sandbox_admin.counters()["refund"]
    replies = await asyncio.gather(
        *(
            client_a.request("POST", f"/v1/orders/{order['id']}/refund", {"reason": "buyer"})
            for _ in range(20)
        )
    )
    assert {r.status_code for r in replies} == {200}
    assert {r.json()["status"] for r in replies} == {"REFUNDED"}
    assert sandbox_admin.counters()["refund"] - calls == 1
    assert inv(sandbox_admin)["available"] == before["available"]
    detail = (await admin_client.request("GET", f"/admin/v1/orders/{order['id']}")).json()
    assert detail["supplier_refund"]["initiated_by"] == "platform"
    assert [h["status"] for h in detail["history"]][-2:] == ["REFUNDING", "REFUNDED"]


async def test_refund_refused_by_the_supplier_is_refund_fail(
    world: World, client_a: AsyncSignedClient, sandbox_admin: Any
) -> None:
    order = await fixed_order(world, client_a)
    sandbox_admin.set_faults({"refund": {"refuse_rate": 1.0}})
    r = await client_a.request("POST", f"/v1/orders/{order['id']}/refund", {"reason": "x"})
    assert r.status_code == 200
    assert r.json()["status"] == "REFUND_FAIL"


async def test_refund_needs_a_fixed_order(world: World, client_a: AsyncSignedClient) -> None:
    order = await locked_order(world, client_a)
    r = await client_a.request("POST", f"/v1/orders/{order['id']}/refund", {"reason": "x"})
    assert (r.status_code, r.json()["error"]["code"]) == (409, "invalid_transition")


async def test_a_refund_the_supplier_started_is_learned_and_recorded(
    world: World, client_a: AsyncSignedClient, admin_client: AsyncSignedClient, sandbox_admin: Any
) -> None:
    body = {
        "session_id": world.extra["cancel_session_id"],
        "tier_id": world.extra["cancel_tier_id"],
    }
    orders = [await fixed_order(world, client_a, **body) for _ in range(3)]
    sandbox_admin.cancel_show("e2e_show_to_cancel")
    for o in orders:
        refunded = await wait_status(client_a, o["id"], {"REFUNDED"})
        assert [h["status"] for h in refunded["history"]][-2:] == ["REFUNDING", "REFUNDED"]
        detail = (await admin_client.request("GET", f"/admin/v1/orders/{o['id']}")).json()
        assert detail["supplier_refund"]["initiated_by"] == "supplier"
    assert inv(sandbox_admin, "e2e_cancel")["sold"] == 0


# -- delivery ------------------------------------------------------------------------------


async def test_express_delivery_follows_the_suppliers_updates_and_stays_refundable(
    world: World, client_a: AsyncSignedClient, sandbox_admin: Any
) -> None:
    order = await fixed_order(
        world, client_a, delivery={"method": "EXPRESS", "address": "上海市黄浦区人民大道1号"}
    )
    assert order["delivery_status"] == "PENDING"
    sandbox_admin.set_delivery(order["id"], "SHIPPED")
    await eventually(
        lambda: status_of(client_a, order["id"]), lambda o: o["delivery_status"] == "SHIPPED"
    )
    sandbox_admin.set_delivery(order["id"], "DELIVERED")
    await eventually(
        lambda: status_of(client_a, order["id"]), lambda o: o["delivery_status"] == "DELIVERED"
    )
    r = await client_a.request("POST", f"/v1/orders/{order['id']}/refund", {"reason": "x"})
    assert r.json()["status"] == "REFUNDED"
    assert r.json()["delivery_status"] == "DELIVERED"


# -- fail fast before payment ----------------------------------------------------------------


async def test_a_lock_timeout_fails_at_once_and_the_seats_come_back(
    world: World, client_a: AsyncSignedClient, sandbox_admin: Any
) -> None:
    before = inv(sandbox_admin)
    # The sandbox holds the lock 3 s and then takes the seats; our gateway gives up at 2 s.
    sandbox_admin.set_faults({"lock": {"hang_rate": 1.0, "hang_ms": 3000}})
    started = time.monotonic()
    r = await client_a.request("POST", "/v1/orders", world.order_body(oid()))
    assert time.monotonic() - started < 2.9
    assert (r.status_code, r.json()["error"]["code"]) == (503, "supplier_unavailable")
    assert r.json()["order"]["status"] == "LOCK_FAILED"
    sandbox_admin.set_faults({})
    await wait_inventory(
        sandbox_admin, {"available": before["available"], "locked": before["locked"]}
    )


async def test_the_circuit_opens_after_repeated_lock_failures_and_a_probe_closes_it(
    world: World, client_a: AsyncSignedClient, sandbox_admin: Any
) -> None:
    sandbox_admin.set_faults({"lock": {"error_rate": 1.0}})
    for _ in range(5):
        r = await client_a.request("POST", "/v1/orders", world.order_body(oid()))
        assert r.status_code == 503
    calls = sandbox_admin.counters()["lock"]
    started = time.monotonic()
    r = await client_a.request("POST", "/v1/orders", world.order_body(oid()))
    fast = time.monotonic() - started
    assert r.status_code == 503
    assert r.json()["order"]["failure_reason"] == "circuit_open"
    assert sandbox_admin.counters()["lock"] == calls  # the supplier was not called
    assert fast < 1.0
    sandbox_admin.set_faults({})
    await asyncio.sleep(1.2)  # the test platform's cooldown is 1 s

    async def try_lock() -> int:
        resp = await client_a.request("POST", "/v1/orders", world.order_body(oid()))
        return resp.status_code

    await eventually(try_lock, lambda code: code == 201, timeout=10)


# -- negotiation while issuing ---------------------------------------------------------------


async def test_a_lost_issue_response_ends_fixed_without_a_second_issue(
    world: World, client_a: AsyncSignedClient, sandbox_admin: Any
) -> None:
    order = await locked_order(world, client_a)
    sandbox_admin.set_faults({"issue": {"lost_response_rate": 1.0}})
    before = sandbox_admin.counters()
    r = await client_a.request("POST", f"/v1/orders/{order['id']}/issue")
    assert (r.status_code, r.json()["status"]) == (202, "FIXING")
    fixed = await wait_status(client_a, order["id"], {"FIXED"})
    after = sandbox_admin.counters()
    assert after["issue"] - before["issue"] == 1
    assert after["issue_effects"] - before["issue_effects"] == 1
    assert len(fixed["tickets"]) == 2


async def test_an_issue_timeout_is_negotiated_until_the_supplier_answers(
    world: World, client_a: AsyncSignedClient, sandbox_admin: Any
) -> None:
    order = await locked_order(world, client_a)
    sandbox_admin.set_faults({"issue": {"hang_rate": 1.0, "hang_ms": 3500}})
    r = await client_a.request("POST", f"/v1/orders/{order['id']}/issue")
    assert (r.status_code, r.json()["status"]) == (202, "FIXING")
    fixed = await wait_status(client_a, order["id"], {"FIXED"})
    assert len(fixed["tickets"]) == 2


async def test_a_refused_issue_found_by_negotiation_cancels_and_releases(
    world: World, client_a: AsyncSignedClient, sandbox_admin: Any
) -> None:
    before = inv(sandbox_admin)
    order = await locked_order(world, client_a)
    # 5xx: nothing was issued, but the platform cannot know that from the answer.
    sandbox_admin.set_faults({"issue": {"error_rate": 1.0}})
    r = await client_a.request("POST", f"/v1/orders/{order['id']}/issue")
    assert r.status_code == 202
    canceled = await wait_status(client_a, order["id"], {"CANCELED"})
    assert canceled["failure_reason"].startswith("issue_failed")
    await wait_inventory(sandbox_admin, {"available": before["available"]})


async def test_past_the_give_up_time_an_order_is_flagged_and_an_operator_decides(
    world: World, client_a: AsyncSignedClient, admin_client: AsyncSignedClient, sandbox_admin: Any
) -> None:
    r = await admin_client.request(
        "PUT",
        f"/admin/v1/suppliers/{world.supplier_id}/polling",
        {"interval_ms": 200, "give_up_ms": 1500},
    )
    assert r.status_code == 200
    try:
        order = await locked_order(world, client_a)
        sandbox_admin.set_faults({"issue": {"error_rate": 1.0}, "query_issue": {"error_rate": 1.0}})
        r = await client_a.request("POST", f"/v1/orders/{order['id']}/issue")
        assert r.status_code == 202

        async def flagged() -> list[str]:
            resp = await admin_client.request("GET", "/admin/v1/orders?flagged=true&limit=500")
            return [o["id"] for o in resp.json()["items"]]

        await eventually(flagged, lambda ids: order["id"] in ids)
        assert (await status_of(client_a, order["id"]))["status"] == "FIXING"  # never guessed
        detail = (await admin_client.request("GET", f"/admin/v1/orders/{order['id']}")).json()
        assert detail["negotiations"][0]["status"] == "flagged"
        assert detail["negotiations"][0]["attempts"] >= 2

        sandbox_admin.set_faults({})
        r = await admin_client.request(
            "POST", f"/admin/v1/orders/{order['id']}/resolve", {"action": "retry"}
        )
        assert r.status_code == 200
        # Asked again, the supplier says it never issued: canceled, nothing owed.
        await wait_status(client_a, order["id"], {"CANCELED"})
    finally:
        await admin_client.request(
            "PUT", f"/admin/v1/suppliers/{world.supplier_id}/polling", {"interval_ms": None}
        )


async def test_supplier_admin_view_shows_live_stats_and_polling(
    world: World, admin_client: AsyncSignedClient
) -> None:
    r = await admin_client.request("GET", f"/admin/v1/suppliers/{world.supplier_id}")
    assert r.status_code == 200
    body = r.json()
    assert body["stats"]["calls"] > 0
    assert 0.0 <= body["stats"]["success_rate"] <= 1.0
    assert body["polling"]["interval_s"] >= 1.0
    assert body["polling"]["give_up_after_s"] >= 60.0


# -- callbacks -------------------------------------------------------------------------------


async def test_callbacks_reach_a_receiver_that_fails_its_first_answers(
    world: World, client_a: AsyncSignedClient
) -> None:
    from tests.support.callbacks import CallbackReceiver

    async with httpx.AsyncClient(base_url=world.base_url, trust_env=False) as http:
        platform_key = (await http.get("/v1/platform-key")).json()["public_key"]
    with CallbackReceiver(fail_first=3, platform_key_b64=platform_key) as receiver:
        order = await locked_order(
            world, client_a, callback_url=receiver.url + "/hooks/showdist?x=1"
        )
        r = await client_a.request("POST", f"/v1/orders/{order['id']}/issue")
        assert r.status_code == 200

        async def statuses() -> list[str]:
            return [m["status"] for m in receiver.accepted if m["order_id"] == order["id"]]

        got = await eventually(statuses, lambda s: s == ["LOCKED", "FIXING", "FIXED"], timeout=30)
        assert got == ["LOCKED", "FIXING", "FIXED"]
        assert receiver.rejected >= 3
        assert receiver.bad_signatures == 0


# -- listing ---------------------------------------------------------------------------------


async def test_a_distributor_lists_only_its_own_orders_in_pages(
    world: World, client_a: AsyncSignedClient, client_b: AsyncSignedClient
) -> None:
    mine = {(await locked_order(world, client_b))["id"] for _ in range(5)}
    seen: list[str] = []
    cursor: str | None = None
    while True:
        target = "/v1/orders?status=LOCKED&limit=2" + (f"&cursor={cursor}" if cursor else "")
        r = await client_b.request("GET", target)
        assert r.status_code == 200
        seen += [o["id"] for o in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert mine <= set(seen)
    assert len(seen) == len(set(seen))
    r = await client_a.request("GET", "/v1/orders?limit=500")
    assert not mine & {o["id"] for o in r.json()["items"]}
