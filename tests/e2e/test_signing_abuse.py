"""Abuse of the signed API: 10,000 single-field mutations, clock skew at the edges, a Redis
outage (fail closed) and rate limits."""

from __future__ import annotations

import asyncio
import base64
import math
import random
import time
import uuid
from collections import Counter
from typing import Any

import httpx

from domain.signing import new_nonce, sign_request
from showdist.client import AsyncSignedClient, Credentials, encode_body
from tests.support.services import RedisServer
from tests.support.waiting import eventually
from tests.support.world import World

MUTATIONS = 10_000


def _flip_char(text: str, rng: random.Random, alphabet: str) -> str:
    i = rng.randrange(len(text))
    choices = [c for c in alphabet if c != text[i]]
    return text[:i] + rng.choice(choices) + text[i + 1 :]


ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
B64 = ALNUM + "+/"


def mutate(
    rng: random.Random,
    kind: str,
    method: str,
    path: str,
    query: str,
    headers: dict[str, str],
    body: bytes,
) -> tuple[str, str, str, dict[str, str], bytes]:
    h = dict(headers)
    if kind == "method":
        method = rng.choice([m for m in ("GET", "POST", "PUT", "DELETE", "PATCH") if m != method])
    elif kind == "path":
        # Change one character of the id part, keep the route shape.
        head, _, tail = path.rpartition("/")
        path = f"{head}/{_flip_char(tail, rng, ALNUM)}"
    elif kind == "query":
        query = query + ("&" if query else "") + f"x{rng.randrange(100)}={rng.randrange(100)}"
    elif kind == "body":
        if body:
            i = rng.randrange(len(body))
            body = body[:i] + bytes([(body[i] + rng.randrange(1, 255)) % 256]) + body[i + 1 :]
        else:
            body = b"{}"
    elif kind == "timestamp":
        h["X-Showdist-Timestamp"] = str(
            int(h["X-Showdist-Timestamp"]) + rng.choice([-1, 1, 7, -60])
        )
    elif kind == "key_id":
        h["X-Showdist-Key"] = _flip_char(h["X-Showdist-Key"], rng, ALNUM)
    elif kind == "nonce":
        h["X-Showdist-Nonce"] = _flip_char(h["X-Showdist-Nonce"], rng, ALNUM)
    elif kind == "signature":
        sig = base64.b64decode(h["X-Showdist-Signature"])
        i = rng.randrange(len(sig))
        sig = sig[:i] + bytes([sig[i] ^ (1 << rng.randrange(8))]) + sig[i + 1 :]
        h["X-Showdist-Signature"] = base64.b64encode(sig).decode()
    elif kind == "drop_header":
        del h[rng.choice(list(h))]
    return method, path, query, h, body


KINDS = [
    "method",
    "path",
    "query",
    "body",
    "timestamp",
    "key_id",
    "nonce",
    "signature",
    "drop_header",
]


async def test_10000_single_field_mutations_are_all_refused(
    world: World, client_a: AsyncSignedClient
) -> None:
    placed = (
        await client_a.request("POST", "/v1/orders", world.order_body(f"M-{uuid.uuid4().hex[:8]}"))
    ).json()
    templates: list[tuple[str, str, str, Any]] = [
        ("GET", f"/v1/orders/{placed['id']}", "", None),
        ("GET", "/v1/orders", "status=LOCKED&limit=5", None),
        ("POST", "/v1/orders", "", world.order_body("M-template")),
        ("POST", f"/v1/orders/{placed['id']}/cancel", "", None),
        ("GET", f"/v1/shows/{world.show_id}", "", None),
    ]
    rng = random.Random(1125)
    creds = world.a.creds
    assert creds.secret is not None
    outcomes: Counter[int] = Counter()
    kinds: Counter[str] = Counter()
    sem = asyncio.Semaphore(32)
    async with httpx.AsyncClient(base_url=world.base_url, trust_env=False, timeout=30) as http:

        async def one(i: int) -> None:
            method, path, query, data = templates[i % len(templates)]
            body = encode_body(data)
            target = path + (f"?{query}" if query else "")
            headers = sign_request(
                method=method,
                target=target,
                body=body,
                key_id=creds.key_id,
                key_type=creds.key_type,
                secret=creds.secret,
                timestamp=int(time.time()),
                nonce=new_nonce(),
            )
            kind = KINDS[i % len(KINDS)]
            kinds[kind] += 1
            m, p, q, h, b = mutate(rng, kind, method, path, query, headers, body)
            if b:
                h["Content-Type"] = "application/json"
            async with sem:
                r = await http.request(m, p + (f"?{q}" if q else ""), headers=h, content=b)
            outcomes[r.status_code] += 1

        await asyncio.gather(*(one(i) for i in range(MUTATIONS)))
    accepted = sum(n for code, n in outcomes.items() if code < 300)
    server_errors = sum(n for code, n in outcomes.items() if code >= 500)
    assert sum(outcomes.values()) == MUTATIONS
    assert accepted == 0, outcomes
    assert server_errors == 0, outcomes
    assert min(kinds.values()) >= MUTATIONS // len(KINDS) - 1
    # The order the mutated cancels aimed at is untouched.
    assert (await client_a.request("GET", f"/v1/orders/{placed['id']}")).json()[
        "status"
    ] == "LOCKED"


async def test_clock_skew_at_the_edges_of_the_window(world: World) -> None:
    creds = world.a.creds
    async with httpx.AsyncClient(base_url=world.base_url, trust_env=False) as http:
        for skew, expected in ((-299, 200), (299, 200), (-301, 401), (301, 401)):
            # Whole seconds on the wire: round away from the edge being tested, so the
            # fraction of a second the server's clock is ahead cannot move the case across it.
            now = time.time()
            toward_zero = math.floor(now) if (skew > 0) == (abs(skew) < 300) else math.ceil(now)
            headers = creds.headers("GET", "/v1/orders?limit=1", b"", timestamp=toward_zero + skew)
            r = await http.get("/v1/orders?limit=1", headers=headers)
            assert r.status_code == expected, (skew, r.text)
            if expected == 401:
                assert r.json()["error"]["code"] == "timestamp_out_of_window"


async def test_redis_down_refuses_signed_requests_then_recovers(
    world: World, client_a: AsyncSignedClient, redis_server: RedisServer
) -> None:
    assert (await client_a.request("GET", "/v1/orders?limit=1")).status_code == 200
    with redis_server.down():
        for _ in range(5):
            r = await client_a.request("GET", "/v1/orders?limit=1")
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] in (
                "nonce_store_unavailable",
                "rate_limiter_unavailable",
            )

    async def ok() -> int:
        return (await client_a.request("GET", "/v1/orders?limit=1")).status_code

    await eventually(ok, lambda code: code == 200, timeout=10)


async def test_rate_limit_per_key_answers_429_with_retry_after(world: World) -> None:
    admin = AsyncSignedClient(world.base_url, world.admin)
    try:
        r = await admin.request(
            "POST", "/admin/v1/distributors", {"name": "slow", "rate_limit_per_s": 5}
        )
        dist_id = r.json()["id"]
        key = (
            await admin.request("POST", f"/admin/v1/distributors/{dist_id}/keys", {"type": "hmac"})
        ).json()
        client = AsyncSignedClient(world.base_url, Credentials(key["key_id"], secret=key["secret"]))
        replies = await asyncio.gather(
            *(client.request("GET", "/v1/orders?limit=1") for _ in range(20))
        )
        codes = Counter(r.status_code for r in replies)
        assert codes[200] == 5, codes
        assert codes[429] == 15, codes
        limited = next(r for r in replies if r.status_code == 429)
        assert limited.json()["error"]["code"] == "rate_limited"
        assert int(limited.headers["Retry-After"]) >= 1
        await asyncio.sleep(1.1)
        assert (await client.request("GET", "/v1/orders?limit=1")).status_code == 200
        await client.aclose()
    finally:
        await admin.aclose()
