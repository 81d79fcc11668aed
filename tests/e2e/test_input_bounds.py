"""Bad input gets a clear 4xx and loses nothing, over real HTTP: bodies over the limit are
refused without being read (Content-Length or chunked), the signature headers are checked
before the body is read, unknown body fields and repeated query parameters are refused,
control characters (U+0000 above all) are refused wherever a string comes in, and ids that
cannot be ours are answered 404 without asking an order host."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from showdist.client import AsyncSignedClient
from showdist.platform import RunningPlatform
from showdist.settings import Settings
from tests.support.world import World

LIMIT = 64 * 1024  # the platform's default body limit


def _replica_pids() -> list[int]:
    """The API replicas' processes (Ray names them after the deployment)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"ServeReplica:e2e:ApiIngress" in cmdline:
            pids.append(int(entry.name))
    return pids


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


async def _raw(base_url: str, head: bytes, body_chunks: int = 0, chunk: bytes = b"") -> bytes:
    """Send `head`, then up to `body_chunks` chunks while waiting for the answer; returns the
    answer (status line, headers and body)."""
    parts = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(head)

    async def answer() -> bytes:
        got = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in got.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        return got + await reader.readexactly(length)

    reply = asyncio.ensure_future(answer())
    try:
        for _ in range(body_chunks):
            if reply.done():
                break
            writer.write(chunk)
            try:
                await asyncio.wait_for(writer.drain(), 5)
            except (ConnectionError, TimeoutError):
                break
        return await asyncio.wait_for(reply, 30)
    finally:
        writer.close()


def _status(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


async def test_an_unsigned_200_mib_upload_is_refused_unread(
    platform: RunningPlatform, world: World
) -> None:
    pids = _replica_pids()
    assert pids, "no API replica process found"
    before = sum(_rss(p) for p in pids)
    size = 200 * 1024 * 1024
    head = (
        f"POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {size}\r\n\r\n"
    ).encode()
    started = time.monotonic()
    raw = await _raw(world.base_url, head, body_chunks=200, chunk=b"x" * (1024 * 1024))
    assert _status(raw) == 413, raw[:300]
    assert b"payload_too_large" in raw
    assert time.monotonic() - started < 20
    after = sum(_rss(p) for p in pids)
    assert after - before < 16 * 1024 * 1024, (before, after)


async def test_a_signed_body_over_the_limit_is_refused(
    world: World, client_a: AsyncSignedClient
) -> None:
    body = world.order_body(f"big-{uuid.uuid4().hex[:8]}", note="x" * (LIMIT + 1))
    r = await client_a.request("POST", "/v1/orders", body)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"


async def test_a_chunked_body_over_the_limit_is_refused(world: World) -> None:
    """No Content-Length: the bytes are counted as they arrive."""
    head = (
        b"POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"%x\r\n%s\r\n" % (16384, b"x" * 16384)
    raw = await _raw(world.base_url, head, body_chunks=16, chunk=chunk)
    # Refused as too large, or (the signature being checked first) as unsigned: never read whole.
    assert _status(raw) in (401, 413), raw[:300]


async def test_the_signature_headers_are_checked_before_the_body_is_read(
    world: World,
) -> None:
    """A body that never finishes arriving: the answer comes from the headers alone."""
    head = (
        b"POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 1000\r\n\r\n{"distributor_order_id": '
    )
    raw = await _raw(world.base_url, head)
    assert _status(raw) == 401, raw[:300]


async def test_unknown_fields_in_a_create_are_refused_by_name(
    world: World, client_a: AsyncSignedClient
) -> None:
    body = world.order_body(f"typo-{uuid.uuid4().hex[:8]}", callbak_url="https://d.example/cb")
    r = await client_a.request("POST", "/v1/orders", body)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_request"
    assert "callbak_url" in r.json()["error"]["message"]
    nested = world.order_body(f"typo2-{uuid.uuid4().hex[:8]}")
    nested["buyer"]["emial"] = "a@b.c"
    r = await client_a.request("POST", "/v1/orders", nested)
    assert r.status_code == 422
    assert "emial" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    "target",
    [
        "/v1/orders?status=LOCKED&status=FIXED",
        "/v1/orders?status=FIXED&status=LOCKED",
        "/v1/orders?limit=1&limit=2",
        "/v1/shows?limit=5&limit=5",
    ],
)
async def test_a_repeated_query_parameter_is_refused(
    world: World, client_a: AsyncSignedClient, target: str
) -> None:
    r = await client_a.request("GET", target)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid_request"
    assert "more than once" in r.json()["error"]["message"]


def _with(body: dict[str, Any], path: list[str], value: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(body))
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


@pytest.mark.parametrize(
    "path",
    [
        ["distributor_order_id"],
        ["session_id"],
        ["tier_id"],
        ["buyer", "name"],
        ["buyer", "phone"],
        ["delivery", "address"],
        ["callback_url"],
    ],
)
async def test_nul_in_any_create_field_is_refused(
    world: World, client_a: AsyncSignedClient, path: list[str]
) -> None:
    body = world.order_body(
        f"nul-{uuid.uuid4().hex[:8]}", delivery={"method": "EXPRESS", "address": "x"}
    )
    r = await client_a.request("POST", "/v1/orders", _with(body, path, "ab\u0000cd"))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("GET", "/v1/orders/ord_%00abc"),
        ("POST", "/v1/orders/ord_%00abc/issue"),
        ("GET", "/v1/shows/shw_%00"),
        ("GET", "/v1/sessions/ses_%00/stock"),
        ("GET", "/v1/orders?status=%00"),
        ("GET", "/v1/shows?updated_since=%00"),
    ],
)
async def test_nul_in_a_path_or_query_is_refused(
    world: World, client_a: AsyncSignedClient, method: str, target: str
) -> None:
    r = await client_a.request(method, target)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid_request"


async def test_nul_in_admin_bodies_and_filters_is_refused(
    world: World, admin_client: AsyncSignedClient
) -> None:
    for method, target, data in [
        ("POST", "/admin/v1/distributors", {"name": "a\u0000b"}),
        ("POST", "/admin/v1/suppliers", {"name": "s\u0000", "gateway": "sandbox", "config": {}}),
        ("GET", "/admin/v1/orders?supplier_id=%00", None),
        ("POST", "/admin/v1/orders/ord_x/resolve", {"action": "cancel", "note": "n\u0000"}),
    ]:
        r = await admin_client.request(method, target, data)
        assert r.status_code == 422, (target, r.text)
        assert r.json()["error"]["code"] == "invalid_request"


async def test_a_refund_reason_with_nul_is_refused(
    world: World, client_a: AsyncSignedClient
) -> None:
    r = await client_a.request(
        "POST", "/v1/orders/ord_aaaaaaaaaaaaaaaaaaaaaaaa/refund", {"reason": "\u0000"}
    )
    assert r.status_code == 422, r.text


@pytest.mark.parametrize(
    "order_id", ["not-an-id", "ord_" + "a" * 200, "shw_aaaaaaaaaaaaaaaaaaaaaaaa", "ord_AAAA"]
)
async def test_ids_that_cannot_be_ours_are_404_without_a_host(
    platform: RunningPlatform, world: World, client_a: AsyncSignedClient, order_id: str
) -> None:
    asked = sum(
        s["issues_asked"] for s in await asyncio.gather(*(h.stats() for h in platform.hosts))
    )
    for method, target in [
        ("GET", f"/v1/orders/{order_id}"),
        ("POST", f"/v1/orders/{order_id}/issue"),
        ("POST", f"/v1/orders/{order_id}/cancel"),
    ]:
        r = await client_a.request(method, target)
        assert r.status_code == 404, (target, r.text)
        assert r.json()["error"]["code"] == "not_found"
    again = sum(
        s["issues_asked"] for s in await asyncio.gather(*(h.stats() for h in platform.hosts))
    )
    assert again == asked  # no host was asked


def test_the_body_limit_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().max_body_bytes == LIMIT
    monkeypatch.setenv("SHOWDIST_MAX_BODY_BYTES", "4096")
    assert Settings().max_body_bytes == 4096
