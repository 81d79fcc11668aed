"""Rate limits a replay cannot spend, and that more keys do not multiply: the nonce is checked
before a request counts, and a distributor's limit covers all its keys. (And the admin
changes to a distributor's limits and keys that take only what makes sense.)"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx

from showdist.client import AsyncSignedClient, Credentials
from tests.support.world import World


async def _distributor_with_keys(
    admin: AsyncSignedClient, limit: int, keys: int
) -> list[Credentials]:
    r = await admin.request(
        "POST", "/admin/v1/distributors", {"name": "limited", "rate_limit_per_s": limit}
    )
    dist_id = r.json()["id"]
    out = []
    for _ in range(keys):
        key = (
            await admin.request("POST", f"/admin/v1/distributors/{dist_id}/keys", {"type": "hmac"})
        ).json()
        out.append(Credentials(key["key_id"], secret=key["secret"]))
    return out


async def test_replays_of_a_captured_request_leave_the_victims_limit_untouched(
    world: World, admin_client: AsyncSignedClient
) -> None:
    (creds,) = await _distributor_with_keys(admin_client, 5, 1)
    target = "/v1/orders?limit=1"
    captured = creds.headers("GET", target, b"")
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=world.base_url, trust_env=False) as attacker:
        first = await attacker.get(target, headers=captured)
        assert first.status_code == 200
        replays = await asyncio.gather(*(attacker.get(target, headers=captured) for _ in range(15)))
    assert {(r.status_code, r.json()["error"]["code"]) for r in replays} == {
        (401, "nonce_replayed")
    }
    # The real client still has its whole budget but the one request it made: 4 more now.
    client = AsyncSignedClient(world.base_url, creds)
    try:
        replies = await asyncio.gather(*(client.request("GET", target) for _ in range(4)))
        assert [r.status_code for r in replies] == [200] * 4
        # All within one window of the limiter, or the test would prove nothing.
        assert time.monotonic() - started < 1.0
    finally:
        await client.aclose()


async def test_a_distributors_limit_covers_all_its_keys(
    world: World, admin_client: AsyncSignedClient
) -> None:
    keys = await _distributor_with_keys(admin_client, 6, 3)
    clients = [AsyncSignedClient(world.base_url, k) for k in keys]
    try:
        replies = await asyncio.gather(
            *(c.request("GET", "/v1/orders?limit=1") for c in clients for _ in range(4))
        )
    finally:
        for c in clients:
            await c.aclose()
    codes = Counter(r.status_code for r in replies)
    assert codes == {200: 6, 429: 6}, codes  # 12 requests over 3 keys, one budget of 6


async def test_an_empty_patch_changes_nothing_and_past_expiry_is_refused(
    world: World, admin_client: AsyncSignedClient
) -> None:
    r = await admin_client.request(
        "POST", "/admin/v1/distributors", {"name": "p", "rate_limit_per_s": 7}
    )
    dist_id = r.json()["id"]
    r = await admin_client.request("PATCH", f"/admin/v1/distributors/{dist_id}", {})
    assert r.status_code == 200
    assert r.json()["rate_limit_per_s"] == 7
    r = await admin_client.request(
        "PATCH", f"/admin/v1/distributors/{dist_id}", {"rate_limit_per_s": None}
    )
    assert r.json()["rate_limit_per_s"] is None
    r = await admin_client.request(
        "POST",
        f"/admin/v1/distributors/{dist_id}/keys",
        {"type": "hmac", "expires_at": "1970-01-02T00:00:00+00:00"},
    )
    assert r.status_code == 422
    assert "expires_at" in r.json()["error"]["message"]


async def test_a_supplier_config_with_nonsense_is_refused_by_name(
    world: World, admin_client: AsyncSignedClient
) -> None:
    for config, field in [
        ({"base_url": "http://127.0.0.1:1", "max_connections": 0}, "max_connections"),
        ({"base_url": "http://127.0.0.1:1", "timeout_s": -0.9}, "timeout_s"),
        ({"base_url": "http://127.0.0.1:1", "timout_s": 1}, "timout_s"),
    ]:
        r = await admin_client.request(
            "POST", "/admin/v1/suppliers", {"name": "bad", "gateway": "sandbox", "config": config}
        )
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "invalid_request"
        assert f"config.{field}" in r.json()["error"]["message"]
    raw = (
        b'{"name": "bad", "gateway": "sandbox", "config": '
        b'{"base_url": "http://127.0.0.1:1", "max_connections": 1e400}}'
    )
    r = await admin_client.request("POST", "/admin/v1/suppliers", raw)
    assert r.status_code == 422, r.text
