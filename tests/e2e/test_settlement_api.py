"""Settlement over the real HTTP API: orders driven through lock, issue, cancel and refund show
up in the period's snapshot with their exact amounts; the settlement actor killed and
restarted answers the same; flows.csv sums to the snapshot; the CLI prints the same totals.

The e2e platform's database is shared by every e2e test, so this test works with a
distributor of its own, whose lines in the snapshot are exactly its orders'.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import ray

from actors.interfaces import SettlementCalls
from actors.remote import ActorRole, typed
from actors.routing import find_actor, settlement_actor_name
from domain.grants import GrantScope
from persistence.accounts import DISTRIBUTOR, AccountRepository
from persistence.db import make_engine
from persistence.secretbox import SecretBox
from showdist.client import AsyncSignedClient, Credentials
from tests.support.waiting import eventually
from tests.support.world import World


def today(tz: str) -> str:
    return datetime.now(UTC).astimezone(ZoneInfo(tz)).date().isoformat()


@pytest.fixture
async def client_c(platform: Any, world: World) -> AsyncIterator[tuple[str, AsyncSignedClient]]:
    """A distributor of this test's own, with a key and a grant to everything."""
    settings = platform.settings
    engine = make_engine(settings.resolved_database_url(), pool_size=1)
    now = datetime.now(UTC)
    try:
        accounts = AccountRepository(engine, SecretBox(settings.resolved_master_key()))
        d = await accounts.create_distributor(f"Settlement {uuid.uuid4().hex[:6]}", now)
        key_id, secret = await accounts.create_hmac_key(
            owner_kind=DISTRIBUTOR, distributor_id=d.id, now=now
        )
        await accounts.create_grant(d.id, GrantScope.ALL, None, now=now)
    finally:
        await engine.dispose()
    client = AsyncSignedClient(world.base_url, Credentials(key_id, secret=secret))
    yield d.id, client
    await client.aclose()


async def place(world: World, client: AsyncSignedClient) -> dict[str, Any]:
    r = await client.request("POST", "/v1/orders", world.order_body(f"S-{uuid.uuid4().hex[:10]}"))
    assert r.status_code == 201, r.text
    order: dict[str, Any] = r.json()
    return order


async def act(client: AsyncSignedClient, order: dict[str, Any], action: str) -> dict[str, Any]:
    body = {"reason": "buyer"} if action == "refund" else None
    r = await client.request("POST", f"/v1/orders/{order['id']}/{action}", body)
    assert r.status_code in (200, 202), r.text
    out: dict[str, Any] = r.json()
    return out


async def snapshot(admin: AsyncSignedClient, period: str) -> dict[str, Any]:
    r = await admin.request("GET", f"/admin/v1/settlement/periods/{period}")
    assert r.status_code == 200, r.text
    snap: dict[str, Any] = r.json()
    return snap


async def snapshot_when_up(admin: AsyncSignedClient, period: str) -> dict[str, Any]:
    """The snapshot once the settlement actor answers again (503 while it restarts)."""
    r = await eventually(
        lambda: admin.request("GET", f"/admin/v1/settlement/periods/{period}"),
        lambda r: r.status_code != 503,
        timeout=60.0,
        every=0.2,
    )
    assert r.status_code == 200, r.text
    snap: dict[str, Any] = r.json()
    return snap


def line_of(snap: dict[str, Any], distributor_id: str) -> dict[str, int]:
    lines = [d for d in snap["distributors"] if d["distributor_id"] == distributor_id]
    if not lines:
        return {"receivable_plus": 0, "receivable_minus": 0, "net": 0}
    return {k: lines[0][k] for k in ("receivable_plus", "receivable_minus", "net")}


async def flows_csv(admin: AsyncSignedClient, period: str) -> list[dict[str, str]]:
    r = await admin.request("GET", f"/admin/v1/settlement/periods/{period}/flows.csv")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(r.text)))


def csv_totals(rows: list[dict[str, str]], as_of: int) -> dict[str, Any]:
    """Per distributor / supplier [plus, minus] from CSV rows with id <= as_of."""
    dist: dict[str, list[int]] = {}
    sup: dict[str, list[int]] = {}
    for row in rows:
        if int(row["id"]) > as_of:
            continue
        amount, sign = int(row["amount"]), int(row["sign"])
        assert int(row["signed_amount"]) == sign * amount
        table, who = (
            (dist, row["distributor_id"])
            if row["kind"] == "receivable"
            else (sup, row["supplier_id"])
        )
        acc = table.setdefault(f"{who}/{row['currency']}", [0, 0])
        acc[0 if sign > 0 else 1] += amount
    return {"distributors": dist, "suppliers": sup}


def snapshot_totals(snap: dict[str, Any]) -> dict[str, Any]:
    return {
        "distributors": {
            f"{d['distributor_id']}/{d['currency']}": [d["receivable_plus"], d["receivable_minus"]]
            for d in snap["distributors"]
        },
        "suppliers": {
            f"{s['supplier_id']}/{s['currency']}": [s["settlement_plus"], s["settlement_minus"]]
            for s in snap["suppliers"]
        },
    }


def showdist(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "showdist.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        check=False,
    )


async def test_settlement_over_http_survives_a_killed_actor_and_matches_csv_and_cli(
    platform: Any,
    world: World,
    client_c: tuple[str, AsyncSignedClient],
    admin_client: AsyncSignedClient,
    tmp_path: Path,
) -> None:
    settings = platform.settings
    dist_id, client = client_c
    first_day = today(settings.timezone)

    only_locked = await place(world, client)
    canceled = await place(world, client)
    assert (await act(client, canceled, "cancel"))["status"] == "CANCELED"
    issued = await place(world, client)
    assert (await act(client, issued, "issue"))["status"] == "FIXED"
    refunded = await place(world, client)
    assert (await act(client, refunded, "issue"))["status"] == "FIXED"
    assert (await act(client, refunded, "refund"))["status"] == "REFUNDED"
    ours = [only_locked, canceled, issued, refunded]
    amount = only_locked["amount"]
    assert {o["amount"] for o in ours} == {amount}
    detail = (await admin_client.request("GET", f"/admin/v1/orders/{issued['id']}")).json()
    settlement = detail["settlement_price"] * detail["quantity"]

    # Our distributor's lines, summed over the day(s) the test ran in (midnight may pass).
    days = sorted({first_day, today(settings.timezone)})
    snaps = {p: await snapshot(admin_client, p) for p in days}
    total = {"receivable_plus": 0, "receivable_minus": 0, "net": 0}
    for snap in snaps.values():
        assert snap["closed"] is False
        for k, v in line_of(snap, dist_id).items():
            total[k] += v
    assert total == {
        "receivable_plus": 4 * amount,
        "receivable_minus": 2 * amount,  # the cancel and the refund
        "net": 2 * amount,
    }

    # Our orders' settlement flows, from the CSV: two issues, one supplier refund.
    period = days[-1]
    rows = [r for p in days for r in await flows_csv(admin_client, p)]
    mine = [r for r in rows if r["order_id"] in {o["id"] for o in ours}]
    assert sorted((r["kind"], int(r["signed_amount"])) for r in mine) == sorted(
        [("receivable", amount)] * 4
        + [("receivable", -amount)] * 2
        + [("settlement", settlement)] * 2
        + [("settlement", -settlement)]
    )

    # flows.csv sums to the snapshot (rows up to the snapshot's high-water id; others' tests
    # may still be adding flows in the background).
    async def consistent() -> tuple[dict[str, Any], list[dict[str, str]]]:
        snap = await snapshot(admin_client, period)
        return snap, await flows_csv(admin_client, period)

    def sums_match(found: tuple[dict[str, Any], list[dict[str, str]]]) -> bool:
        snap, csv_rows = found
        return csv_totals(csv_rows, snap["as_of_flow_id"]) == snapshot_totals(snap)

    before_kill, _ = await eventually(consistent, sums_match, timeout=10.0)
    assert before_kill["holds"] is True
    for c in before_kill["currencies"]:
        assert c["retained"] == c["receivable_net"] - c["settlement_net"]

    # Kill the settlement actor (SIGKILL, then ray.kill with restart): it comes back rebuilt
    # from the database and answers the same.
    handle = find_actor(platform.config, settlement_actor_name(settings.instance))
    actor = typed(handle, SettlementCalls, ActorRole.SETTLEMENT)
    old_pid = await actor.pid()
    os.kill(old_pid, signal.SIGKILL)
    after_sigkill = await snapshot_when_up(admin_client, period)
    assert await actor.pid() != old_pid
    assert line_of(after_sigkill, dist_id) == line_of(before_kill, dist_id)
    if after_sigkill["as_of_flow_id"] == before_kill["as_of_flow_id"]:
        assert after_sigkill == before_kill
    ray.kill(handle, no_restart=False)
    await asyncio.sleep(0.5)
    after_kill = await snapshot_when_up(admin_client, period)
    assert line_of(after_kill, dist_id) == line_of(before_kill, dist_id)
    if after_kill["as_of_flow_id"] == before_kill["as_of_flow_id"]:
        assert after_kill == before_kill

    # The CLI, straight from the database (no Ray), prints the same totals.
    env = {
        "SHOWDIST_DATABASE_URL": settings.resolved_database_url(),
        "SHOWDIST_DATA_DIR": str(tmp_path / "cli"),
        "SHOWDIST_TIMEZONE": settings.timezone,
    }
    done = showdist("settlement", "snapshot", period, "--json", env=env)
    assert done.returncode == 0, done.stderr
    from_cli = json.loads(done.stdout)
    assert line_of(from_cli, dist_id) == line_of(after_kill, dist_id)
    done = showdist("settlement", "snapshot", period, env=env)
    assert done.returncode == 0, done.stderr
    ours_line = next(line for line in done.stdout.splitlines() if line.startswith(dist_id))
    mine_now = line_of(after_kill, dist_id)
    for value in (mine_now["receivable_plus"], mine_now["receivable_minus"], mine_now["net"]):
        assert f"CNY {value // 100}.{value % 100:02d} ({value})" in ours_line
    done = showdist("settlement", "periods", env=env)
    assert done.returncode == 0, done.stderr
    assert period in done.stdout
    out = tmp_path / "flows.csv"
    done = showdist("settlement", "export", period, "--out", str(out), env=env)
    assert done.returncode == 0, done.stderr
    exported = list(csv.DictReader(out.open(encoding="utf-8")))
    assert {r["id"] for r in mine} <= {r["id"] for r in exported}


async def test_close_is_refused_until_the_period_is_over_then_frozen(
    platform: Any, world: World, admin_client: AsyncSignedClient, client_a: AsyncSignedClient
) -> None:
    settings = platform.settings
    r = await admin_client.request(
        "POST", f"/admin/v1/settlement/periods/{today(settings.timezone)}/close"
    )
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "period_not_over"

    r = await admin_client.request("GET", "/admin/v1/settlement/periods/2026-13-01")
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_request"

    old = (datetime.now(UTC) - timedelta(days=400)).date().isoformat()
    first = await admin_client.request("POST", f"/admin/v1/settlement/periods/{old}/close")
    assert first.status_code == 201, first.text
    statement = first.json()
    assert statement["closed"] is True
    assert len(statement["digest"]) == 64
    again = await admin_client.request("POST", f"/admin/v1/settlement/periods/{old}/close")
    assert again.status_code == 200
    assert again.json() == statement
    assert await snapshot(admin_client, old) == statement

    r = await admin_client.request("GET", "/admin/v1/settlement/periods?limit=500")
    assert r.status_code == 200, r.text
    listed = {p["period"]: p for p in r.json()["items"]}
    assert listed[old]["status"] == "closed"
    assert listed[old]["flows"] == 0
    assert listed.get(today(settings.timezone), {"status": "open"})["status"] == "open"
    assert list(listed) == sorted(listed)

    # A distributor key is not enough.
    r = await client_a.request("GET", "/admin/v1/settlement/periods")
    assert r.status_code == 403
