"""Callbacks and operators over real HTTP: a create whose `callback_url` names an internal
address (or cannot be called) is 422; a message that keeps failing dies in the platform's own
courier and is listed by `GET /admin/v1/callbacks?status=dead`, page by page; redelivered, it
reaches the receiver; redelivering what is not dead is 409, what does not exist 404."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from persistence.db import make_engine
from persistence.tables import outbox
from showdist.client import AsyncSignedClient
from showdist.platform import RunningPlatform
from tests.support.callbacks import CallbackReceiver
from tests.support.waiting import eventually
from tests.support.world import World


def oid() -> str:
    return f"CB-{uuid.uuid4().hex[:12]}"


REFUSED = [
    ("http://169.254.169.254/latest/meta-data", "169.254.169.254 is a link-local address"),
    ("http://10.0.0.1/hooks", "10.0.0.1 is a private address"),
    ("http://192.168.1.1/hooks", "192.168.1.1 is a private address"),
    ("http://[::1]:6379/", "::1 is a loopback address"),
    ("http://[::ffff:10.1.1.1]/", "is a private address"),
    ("http://0.0.0.0:8000/", "0.0.0.0 is an unspecified address"),
    # 127.0.0.0/8 is allowed on this platform (its tests' receivers); ::1 is not
    ("http://localhost:8265/", "localhost stands for ::1, a loopback address"),
    ("http://a.com:abc/", "has no valid port"),
    ("http://xn--/", "has an invalid host name"),
]


@pytest.mark.parametrize(("url", "why"), REFUSED)
async def test_a_create_with_a_refused_callback_url_is_422(
    world: World, client_a: AsyncSignedClient, url: str, why: str
) -> None:
    doid = oid()
    r = await client_a.request("POST", "/v1/orders", world.order_body(doid, callback_url=url))
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["message"].startswith("callback_url")
    assert why in error["message"]
    # Nothing was kept under that id: the same id with a callable URL is a new order.
    r = await client_a.request(
        "POST", "/v1/orders", world.order_body(doid, callback_url="https://dist.example/cb")
    )
    assert r.status_code == 201, r.text


async def _dead_letters(admin: AsyncSignedClient, limit: int) -> list[dict[str, Any]]:
    """Every dead message, walked page by page."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        target = f"/admin/v1/callbacks?status=dead&limit={limit}"
        r = await admin.request("GET", target + (f"&cursor={cursor}" if cursor else ""))
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return items


async def test_dead_callbacks_are_listed_and_redelivered(
    world: World,
    client_a: AsyncSignedClient,
    admin_client: AsyncSignedClient,
    platform: RunningPlatform,
) -> None:
    async with httpx.AsyncClient(base_url=world.base_url, trust_env=False) as http:
        platform_key = (await http.get("/v1/platform-key")).json()["public_key"]
    with CallbackReceiver(fail_first=10**9, platform_key_b64=platform_key) as receiver:
        orders = []
        for _ in range(2):
            r = await client_a.request(
                "POST",
                "/v1/orders",
                world.order_body(oid(), callback_url=receiver.url + "/hooks?dead=1"),
            )
            assert r.status_code == 201, r.text
            orders.append(r.json()["id"])

        async def tried() -> list[int]:
            counts = []
            for order_id in orders:
                detail = await admin_client.request("GET", f"/admin/v1/orders/{order_id}")
                counts += [c["attempts"] for c in detail.json()["callbacks"]]
            return counts

        await eventually(tried, lambda counts: len(counts) == 2 and min(counts) >= 1)
        # Written 25 hours ago as far as the courier knows: its next failure is its last.
        engine = make_engine(platform.settings.resolved_database_url(), pool_size=1)
        try:
            async with engine.begin() as conn:
                await conn.execute(
                    update(outbox)
                    .where(outbox.c.order_id.in_(orders))
                    .values(
                        created_at=datetime.now(UTC) - timedelta(hours=25),
                        next_attempt_at=datetime.now(UTC),
                    )
                )
        finally:
            await engine.dispose()

        async def dead() -> list[dict[str, Any]]:
            return [d for d in await _dead_letters(admin_client, 1) if d["order_id"] in orders]

        letters = await eventually(dead, lambda found: len(found) == 2, timeout=30)
        for d in letters:
            assert d["distributor_id"] == world.a.distributor_id
            assert d["url"] == receiver.url + "/hooks?dead=1"
            assert d["status"] == "dead"
            assert d["attempts"] >= 2
            assert d["last_error"] == "HTTP 503"
            assert d["created_at"] is not None
            assert d["dead_at"] is not None
        assert receiver.bad_signatures == 0
        before = receiver.rejected

        # Redelivered, the first reaches the receiver, which now accepts.
        receiver.fail_first = 0
        first = letters[0]
        r = await admin_client.request("POST", f"/admin/v1/callbacks/{first['id']}/redeliver")
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "pending"
        assert r.json()["attempts"] == 0

        async def accepted() -> list[str]:
            return [m["status"] for m in receiver.accepted if m["order_id"] == first["order_id"]]

        assert await eventually(accepted, lambda got: got == ["LOCKED"], timeout=30) == ["LOCKED"]
        assert receiver.rejected == before
        # The other stays dead, and is not sent again.
        assert [d["id"] for d in await dead()] == [letters[1]["id"]]
        assert not [m for m in receiver.accepted if m["order_id"] == letters[1]["order_id"]]

    # Redelivering what is not dead, or does not exist.
    r = await admin_client.request("POST", f"/admin/v1/callbacks/{first['id']}/redeliver")
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "invalid_transition"
    for missing in ("999999999999", "abc", "1" * 30):
        r = await admin_client.request("POST", f"/admin/v1/callbacks/{missing}/redeliver")
        assert r.status_code == 404, missing
        assert r.json()["error"]["code"] == "not_found"
    delivered = await admin_client.request(
        "GET",
        f"/admin/v1/callbacks?status=delivered&distributor_id={world.a.distributor_id}&limit=500",
    )
    assert first["id"] in {d["id"] for d in delivered.json()["items"]}


async def test_the_callback_list_is_for_operators_and_checks_its_query(
    client_a: AsyncSignedClient, admin_client: AsyncSignedClient
) -> None:
    r = await client_a.request("GET", "/admin/v1/callbacks?status=dead")
    assert r.status_code == 403
    r = await client_a.request("POST", "/admin/v1/callbacks/1/redeliver")
    assert r.status_code == 403
    for query in ("status=gone", "limit=0", "cursor=bm9wZQ"):
        r = await admin_client.request("GET", f"/admin/v1/callbacks?{query}")
        assert r.status_code == 422, query
        assert r.json()["error"]["code"] == "invalid_request"
