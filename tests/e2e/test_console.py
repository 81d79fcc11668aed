"""The operators' console (`/console`) in a real headless Chromium against the running
platform: its signer against the published vectors, its files and their headers, and an
operator's day through every page, each result checked through the API or the database.
Every page's screenshot goes to `tests.support.browser.screenshots_dir()`; every request
the pages make must go to the platform's own origin."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, expect
from playwright.async_api import TimeoutError as PlaywrightTimeout

from domain.money import MINOR_UNITS, Money
from persistence.accounts import ADMIN, AccountRepository
from persistence.db import make_engine
from persistence.secretbox import SecretBox
from persistence.settlement import flows_of_period
from serve_app.console import ASSETS, CONTENT_SECURITY_POLICY, FILES
from showdist.client import AsyncSignedClient, Credentials
from tests.e2e.test_lifecycle import fixed_order, locked_order
from tests.support.browser import Recorded, chromium, screenshots_dir
from tests.support.waiting import eventually
from tests.support.world import World

VECTORS = Path(__file__).resolve().parents[2] / "docs" / "signing-vectors.json"
SLOW = 120_000  # ms: a scale to dedicated hosts starts a process on a loaded machine


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as b:
        yield b


@pytest.fixture
async def page(browser: Browser, world: World) -> AsyncIterator[tuple[Page, Recorded]]:
    """A fresh tab (its own session storage), with every request it makes recorded; after
    the test, none may have left the platform's origin and no script error went uncaught."""
    context = await browser.new_context(accept_downloads=True)
    recorded = Recorded()
    tab = recorded.watch(await context.new_page())
    tab.set_default_timeout(30_000)
    try:
        yield tab, recorded
    finally:
        await context.close()
    assert recorded.requests, "the page made no request at all"
    assert recorded.foreign(world.base_url) == [], "a page loaded something from elsewhere"
    assert recorded.errors == [], recorded.errors


async def new_admin_key(platform: Any) -> Credentials:
    """A fresh admin key, made as `showdist admin create-key` makes one."""
    settings = platform.settings
    engine = make_engine(settings.resolved_database_url())
    try:
        accounts = AccountRepository(engine, SecretBox(settings.resolved_master_key()))
        key_id, secret = await accounts.create_hmac_key(
            owner_kind=ADMIN, distributor_id=None, now=datetime.now(UTC)
        )
    finally:
        await engine.dispose()
    return Credentials(key_id, secret=secret)


async def sign_in(tab: Page, base_url: str, creds: Credentials) -> None:
    await tab.goto(f"{base_url}/console")
    await tab.fill("#key-id", creds.key_id)
    await tab.fill("#key-secret", creds.secret or "")
    await tab.click("#signin-form button[type=submit]")


async def open_page(tab: Page, name: str) -> None:
    await tab.click(f'#nav a[data-page="{name}"]')
    await expect(tab.locator(f'#page[data-page="{name}"][data-ready="true"]')).to_be_visible()


async def confirm(tab: Page) -> None:
    await expect(tab.locator("dialog#confirm")).to_be_visible()
    await tab.click("#confirm-yes")


async def shot(tab: Page, name: str) -> None:
    await tab.screenshot(path=str(screenshots_dir() / f"{name}.png"), full_page=True)


async def api_get(client: AsyncSignedClient, target: str) -> dict[str, Any]:
    r = await client.request("GET", target)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


# -- the signer and the files --------------------------------------------------------------


async def test_the_browser_signer_reproduces_every_signing_vector(
    page: tuple[Page, Recorded], world: World
) -> None:
    tab, _ = page
    await tab.goto(f"{world.base_url}/console")
    vectors = json.loads(VECTORS.read_text(encoding="utf-8"))
    got = await tab.evaluate(
        """async (v) => {
            const s = await import("/console/signing.js");
            const out = [];
            for (const c of v.cases) {
                const key = c.algorithm === "hmac"
                    ? {keyId: c.key_id, algorithm: "hmac", secret: v.hmac_secret}
                    : {keyId: c.key_id, algorithm: "ed25519",
                       seed: s.base64Bytes(v.ed25519_private_seed_b64)};
                const r = await s.signRequest(key, c.method, c.target, s.base64Bytes(c.body_b64),
                                              {timestamp: c.timestamp, nonce: c.nonce});
                out.push({text: r.stringToSign, headers: r.headers});
            }
            return out;
        }""",
        vectors,
    )
    assert len(got) == len(vectors["cases"]) == 6
    for case, signed in zip(vectors["cases"], got, strict=True):
        assert signed["text"] == case["string_to_sign"]
        assert signed["headers"] == {
            "X-Showdist-Key": case["key_id"],
            "X-Showdist-Timestamp": str(case["timestamp"]),
            "X-Showdist-Nonce": case["nonce"],
            "X-Showdist-Signature": case["signature"],
        }


async def test_the_money_format_is_the_platforms(page: tuple[Page, Recorded], world: World) -> None:
    tab, _ = page
    await tab.goto(f"{world.base_url}/console")
    amounts = [0, 5, -5, 38000, -1205, 10**20 + 7]  # (the last is past a float's exact range)
    cases = [(a, c) for c in MINOR_UNITS for a in amounts]
    got = await tab.evaluate(
        """async (cases) => {
            const m = await import("/console/money.js");
            return {units: m.MINOR_UNITS,
                    shown: cases.map(([a, c]) => m.formatMoney(BigInt(a), c))};
        }""",
        [[str(a), c] for a, c in cases],
    )
    assert got["units"] == MINOR_UNITS
    assert got["shown"] == [Money(a, c).format() for a, c in cases]


async def raw_get(base_url: str, target: str) -> tuple[int, dict[str, str], bytes]:
    """`GET target` sent byte for byte over a socket (an HTTP client would normalise `..`
    and percent-escapes away before sending): the status, headers (lower-case) and body."""
    parts = httpx.URL(base_url)
    reader, writer = await asyncio.open_connection(parts.host, parts.port)
    try:
        writer.write(
            f"GET {target} HTTP/1.1\r\nHost: {parts.host}:{parts.port}\r\n"
            "Connection: close\r\n\r\n".encode("ascii")
        )
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout=10.0)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}
    return int(status_line.split()[1]), headers, body


async def test_the_console_files_are_served_as_files_and_nothing_else(world: World) -> None:
    assert "default-src 'self'" in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    kinds = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
    assert set(FILES) == {p.name for p in ASSETS.iterdir() if p.suffix in kinds}
    async with httpx.AsyncClient(base_url=world.base_url, trust_env=False) as http:
        for target, name in [("/console", "index.html")] + [(f"/console/{n}", n) for n in FILES]:
            r = await http.get(target)
            assert r.status_code == 200, target
            assert r.headers["content-type"] == f"{kinds[Path(name).suffix]}; charset=utf-8"
            assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, target
            assert r.headers["x-content-type-options"] == "nosniff", target
            assert r.headers["cache-control"] == "no-cache", target
            assert "set-cookie" not in r.headers, target
            assert r.content == (ASSETS / name).read_bytes(), target
            etag = r.headers["etag"]
            for asked in (etag, f"W/{etag}", f'"other", {etag}', "*"):
                again = await http.get(target, headers={"If-None-Match": asked})
                assert (again.status_code, again.content) == (304, b""), (target, asked)
                assert again.headers["etag"] == etag
                assert again.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
            changed = await http.get(target, headers={"If-None-Match": '"not-this-one"'})
            assert changed.status_code == 200, target

    # Sent as written: the server sees the `..` and the escapes (a served name first, to show
    # that the raw request itself is right).
    status, headers, body = await raw_get(world.base_url, "/console/app.js")
    assert (status, body) == (200, (ASSETS / "app.js").read_bytes())
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    for target in (
        "/console/../app.py",
        "/console/../console.py",
        "/console/..%2fapp.py",
        "/console/..%2Fconsole.py",
        "/console/%2e%2e/x",
        "/console/%2e%2e%2f%2e%2e%2fpyproject.toml",
        "/console/..%5cconsole.py",
        "/console/.%2e/console.py",
        "/console/nothing.js",
        "/console/console.py",
    ):
        status, _, body = await raw_get(world.base_url, target)
        assert status == 404, (target, status, body[:200])
        assert json.loads(body)["error"]["code"] == "not_found", target


async def test_a_csp_violation_fails_the_page_check(
    page: tuple[Page, Recorded], world: World
) -> None:
    """(So the page fixture's check can fail.) An inline script is refused by the console's
    policy, and the recorder catches the violation Chromium reports."""
    tab, recorded = page
    await tab.goto(f"{world.base_url}/console")
    async with tab.expect_console_message(lambda m: "Content Security Policy" in m.text):
        await tab.evaluate(
            """() => { const s = document.createElement("script");
                       s.textContent = "window.injected = true"; document.head.append(s); }"""
        )
    assert await tab.evaluate("window.injected") is None
    assert [e for e in recorded.errors if e.startswith("CSP violation")], recorded.errors
    recorded.errors.clear()


# -- an operator's day -----------------------------------------------------------------------


async def _suppliers(
    tab: Page, world: World, admin: AsyncSignedClient, before: dict[str, Any]
) -> None:
    """`before`: the supplier's stats as the API gave them before the page was loaded."""
    sid = world.supplier_id
    await expect(tab.locator('#page[data-page="suppliers"][data-ready="true"]')).to_be_visible()
    card = tab.locator(f'section[data-supplier="{sid}"]')
    shown = card.locator('[data-table="stats"] td[data-col="value"]')
    await expect(shown.nth(10)).to_have_text(before["circuit"])  # (circuit)
    calls = int(await shown.nth(0).inner_text())
    after = (await api_get(admin, f"/admin/v1/suppliers/{sid}"))["stats"]
    assert before["calls"] <= calls <= after["calls"]
    await expect(card.locator('[data-table="stats"]')).to_contain_text("latency p95")
    await shot(tab, "1-suppliers")

    for n, placement in ((2, "dedicated"), (1, "pool")):
        await card.locator('[data-form="replicas"] input').fill(str(n))
        await card.locator('[data-form="replicas"] button').click()
        await confirm(tab)
        await expect(tab.locator("#notice")).to_contain_text(f"→ {n} replicas", timeout=SLOW)
        card = tab.locator(f'section[data-supplier="{sid}"]')
        await expect(card.locator('[data-value="replicas"]')).to_have_text(str(n))
        detail = await api_get(admin, f"/admin/v1/suppliers/{sid}")
        assert (detail["replicas"], detail["placement"]) == (n, placement)

    form = card.locator('[data-form="polling"]')
    await form.locator('input[name="interval_ms"]').fill("200")
    await form.locator('input[name="give_up_ms"]').fill("1500")
    await form.locator("button").click()
    await expect(tab.locator("#notice")).to_contain_text("interval 200 ms, give up 1500 ms")
    polling = (await api_get(admin, f"/admin/v1/suppliers/{sid}"))["polling"]
    assert (polling["interval_override_ms"], polling["give_up_override_ms"]) == (200, 1500)
    await expect(
        tab.locator(f'section[data-supplier="{sid}"] [data-table="polling"]')
    ).to_contain_text("200 ms")


async def _flagged_order(
    world: World, client: AsyncSignedClient, admin: AsyncSignedClient, sandbox_admin: Any
) -> str:
    """An order past its give-up time, as test_lifecycle makes one (the polling override
    the console just set makes it quick)."""
    order = await locked_order(world, client)
    sandbox_admin.set_faults({"issue": {"error_rate": 1.0}, "query_issue": {"error_rate": 1.0}})
    r = await client.request("POST", f"/v1/orders/{order['id']}/issue")
    assert r.status_code == 202, r.text

    async def flagged() -> list[str]:
        page = await api_get(admin, "/admin/v1/orders?flagged=true&limit=500")
        return [o["id"] for o in page["items"]]

    await eventually(flagged, lambda ids: order["id"] in ids, timeout=30.0)
    sandbox_admin.set_faults({})
    order_id: str = order["id"]
    return order_id


async def _orders(tab: Page, order_id: str, admin: AsyncSignedClient) -> None:
    await open_page(tab, "orders")
    listed = tab.locator(f'[data-list="flagged"] button[data-open="{order_id}"]')
    await expect(listed).to_be_visible()
    await listed.click()
    panel = tab.locator(f'section[data-order="{order_id}"]')
    await expect(panel.locator('[data-table="negotiations"]')).to_contain_text("flagged")
    await expect(panel.locator('[data-table="history"]')).to_contain_text("FIXING")
    await shot(tab, "2-orders")
    await panel.locator('textarea[name="tickets"]').fill("CONSOLE-T1,A-1\nCONSOLE-T2,A-2")
    await panel.locator('input[name="note"]').fill("the box office confirmed by phone")
    await panel.locator('button[data-action="issued"]').click()
    await confirm(tab)
    await expect(tab.locator("#notice")).to_contain_text(f"Order {order_id} is now FIXED")
    await expect(panel.locator('[data-value="status"]')).to_have_text("FIXED")
    detail = await api_get(admin, f"/admin/v1/orders/{order_id}")
    assert detail["status"] == "FIXED"
    assert [t["code"] for t in detail["tickets"]] == ["CONSOLE-T1", "CONSOLE-T2"]
    assert detail["negotiations"][0]["status"] == "resolved"


async def _distributors(tab: Page, world: World, admin: AsyncSignedClient) -> None:
    await open_page(tab, "distributors")
    name = f"Console Distributor {uuid.uuid4().hex[:8]}"
    form = tab.locator('[data-form="new-distributor"]')
    await form.locator('input[name="name"]').fill(name)
    await form.locator('input[name="rate_limit_per_s"]').fill("7")
    await form.locator("button").click()
    await expect(tab.locator("#notice")).to_contain_text(f"({name}) created")
    panel = tab.locator("section[data-distributor]")
    distributor_id = await panel.get_attribute("data-distributor")
    assert distributor_id is not None
    await expect(tab.locator('[data-table="distributors"]')).to_contain_text(name)

    await panel.locator('button[data-action="new-hmac-key"]').click()
    # The secret is on the page as soon as the key is made, before the page is read again;
    # the page's new render (the new key in its table) keeps that same element.
    await expect(tab.locator("[data-new-secret]")).to_be_visible()
    secret_box = tab.locator("section[data-distributor] [data-new-secret]")
    await expect(secret_box).to_be_visible()
    await expect(tab.locator('[data-table="keys"] tbody tr')).to_have_count(1)
    key_id = await secret_box.get_attribute("data-new-secret")
    secret = await secret_box.locator('[data-value="secret"]').inner_text()
    assert key_id is not None
    assert secret

    grant = tab.locator('[data-form="new-grant"]')
    await grant.locator('select[name="scope"]').select_option("supplier")
    await grant.locator('input[name="value"]').fill(world.supplier_id)
    await grant.locator('input[name="valid_from"]').fill("2026-01-01T00:00:00+08:00")
    await grant.locator('input[name="valid_until"]').fill("2999-01-01T00:00:00+08:00")
    await grant.locator("button").click()
    await expect(tab.locator("#notice")).to_contain_text("(supplier) added")
    await expect(tab.locator('[data-table="grants"]')).to_contain_text(world.supplier_id)
    assert not await tab.locator("[data-new-secret]").count(), "the secret is shown only once"
    await shot(tab, "3-distributors")

    d = await api_get(admin, f"/admin/v1/distributors/{distributor_id}")
    assert (d["name"], d["rate_limit_per_s"]) == (name, 7)
    assert [k["key_id"] for k in d["keys"]] == [key_id]
    grants = (await api_get(admin, f"/admin/v1/distributors/{distributor_id}/grants"))["items"]
    assert [(g["scope"], g["value"]) for g in grants] == [("supplier", world.supplier_id)]
    assert grants[0]["valid_until"].startswith("2999-01-01")
    # The secret shown is the key's: the new distributor sees the supplier's show.
    client = AsyncSignedClient(world.base_url, Credentials(key_id, secret=secret))
    try:
        shows = await api_get(client, "/v1/shows?limit=500")
    finally:
        await client.aclose()
    assert world.show_id in [s["id"] for s in shows["items"]]


def _csv_rows(saved: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8"))))


def _money_cells(rows: list[dict[str, Any]], keys: list[str]) -> list[str]:
    return [Money(r[k], r["currency"]).format() for r in rows for k in keys]


async def _drawn_from(
    render: Callable[[], Awaitable[None]], read: Callable[[], Awaitable[Any]]
) -> Any:
    """The API's answer that a page drawn by `render` shows: the settlement actor books flows
    as it tails the ledger, so the page is drawn between two reads of the API, and again until
    both reads agree (then the page's own read, made between them, is that same answer)."""
    for _ in range(10):
        before = await read()
        await render()
        after = await read()
        if before == after:
            return after
        await asyncio.sleep(0.5)
    raise AssertionError("the API's answer kept changing while the page was drawn")


async def _settlement(tab: Page, order_id: str, admin: AsyncSignedClient, platform: Any) -> None:
    async def periods_read() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = (
            await api_get(admin, "/admin/v1/settlement/periods?limit=500")
        )["items"]
        return items

    async def periods_drawn() -> None:
        await open_page(tab, "orders")  # (away and back: a fresh render of the page)
        await open_page(tab, "settlement")

    periods = await _drawn_from(periods_drawn, periods_read)
    currency = sorted({c["currency"] for p in periods for c in p["currencies"]})[0]
    chart = tab.locator(f'svg.chart[data-currency="{currency}"]')
    await expect(chart).to_be_visible()
    for p in periods:
        totals = next((c for c in p["currencies"] if c["currency"] == currency), None)
        for key in ("receivable_net", "settlement_net", "retained"):
            bar = chart.locator(f'rect[data-period="{p["period"]}"][data-series="{key}"]')
            if totals is None:
                await expect(bar).to_have_count(0)
            else:
                await expect(bar).to_have_attribute("data-minor", str(totals[key]))
    await expect(tab.locator('[data-table="periods"] tbody tr')).to_have_count(len(periods))

    period = periods[-1]["period"]  # today's: the resolved order's flows are in it
    snapshot = tab.locator(f'section[data-snapshot="{period}"]')

    async def snapshot_read() -> dict[str, Any]:
        return await api_get(admin, f"/admin/v1/settlement/periods/{period}")

    async def snapshot_drawn() -> None:
        await tab.click(f'[data-table="periods"] button[data-open="{period}"]')
        await expect(snapshot).to_be_visible()

    # The snapshot says which flow it was made as of; the page must show the API's.
    view = await _drawn_from(snapshot_drawn, snapshot_read)
    await expect(snapshot).to_contain_text(f"Snapshot as of flow {view['as_of_flow_id']}")
    money = ["receivable_plus", "receivable_minus", "receivable_net"]
    money += ["settlement_plus", "settlement_minus", "settlement_net", "retained"]
    money += ["receivable_to_date", "settlement_to_date", "retained_to_date"]
    await expect(snapshot.locator('[data-table="totals"] td.num')).to_have_text(
        _money_cells(view["currencies"], money)
    )
    await expect(snapshot.locator('[data-table="to-date"] td.num')).to_have_text(
        _money_cells(view["currencies"], ["receivable_to_date", "settlement_to_date"])
    )
    await expect(snapshot.locator('[data-table="per-distributor"] td.num')).to_have_text(
        _money_cells(view["distributors"], ["receivable_plus", "receivable_minus", "net"])
    )
    await expect(snapshot.locator('[data-table="per-supplier"] td.num')).to_have_text(
        _money_cells(view["suppliers"], ["settlement_plus", "settlement_minus", "net"])
    )
    checks = {**view["checks"], "holds": view["holds"]}
    for name in ("holds", "period", "to_date", "orders"):
        expected = "holds" if checks[name] else "FAILS"
        await expect(snapshot.locator(f'[data-check="{name}"]')).to_have_text(expected)
    await shot(tab, "4-settlement")

    async with tab.expect_download() as info:
        await snapshot.locator('button[data-action="download-csv"]').click()
    download = await info.value
    assert download.suggested_filename == f"flows-{period}.csv"
    rows = _csv_rows(Path(await download.path()))
    engine = make_engine(platform.settings.resolved_database_url())
    try:
        booked = await flows_of_period(engine, period)
    finally:
        await engine.dispose()
    fields = ("id", "order_id", "kind", "sign", "amount", "currency", "booked_period")
    assert [tuple(r[f] for f in fields) for r in rows] == [
        tuple(str(f[k]) for k in fields) for f in booked
    ]
    assert order_id in {r["order_id"] for r in rows}

    # Closing asks first; today's period is not over, and the page says so with the code.
    await snapshot.locator('button[data-action="close-period"]').click()
    await confirm(tab)
    await expect(tab.locator("#banner")).to_contain_text("period_not_over")
    again = await api_get(admin, f"/admin/v1/settlement/periods/{period}")
    assert again["closed"] is False


async def test_an_operator_runs_the_platform_from_the_console(
    page: tuple[Page, Recorded],
    world: World,
    platform: Any,
    client_a: AsyncSignedClient,
    admin_client: AsyncSignedClient,
    sandbox_admin: Any,
) -> None:
    tab, _ = page
    await fixed_order(world, client_a)  # (a lock and an issue: calls in the supplier's stats)
    stats = (await api_get(admin_client, f"/admin/v1/suppliers/{world.supplier_id}"))["stats"]
    assert stats["calls"] > 0
    creds = await new_admin_key(platform)
    await sign_in(tab, world.base_url, creds)
    await expect(tab.locator("#who-key")).to_have_text(creds.key_id)
    cookies = await tab.context.cookies()
    assert cookies == [], "the console sets no cookie"
    assert creds.secret is not None
    assert creds.secret not in tab.url
    try:
        await _suppliers(tab, world, admin_client, stats)
        order_id = await _flagged_order(world, client_a, admin_client, sandbox_admin)
        await _orders(tab, order_id, admin_client)
        await _distributors(tab, world, admin_client)
        await _settlement(tab, order_id, admin_client, platform)
    finally:
        # Both are tried whatever happened; then both must have worked (the next tests need
        # the adaptive polling and one replica).
        polling = await admin_client.request(
            "PUT",
            f"/admin/v1/suppliers/{world.supplier_id}/polling",
            {"interval_ms": None, "give_up_ms": None},
        )
        replicas = await admin_client.request(
            "PUT", f"/admin/v1/suppliers/{world.supplier_id}/replicas", {"replicas": 1}
        )
        assert polling.status_code == 200, polling.text
        assert replicas.status_code == 200, replicas.text


async def test_a_wrong_or_revoked_key_is_refused_with_a_visible_message(
    page: tuple[Page, Recorded], world: World, platform: Any, admin_client: AsyncSignedClient
) -> None:
    tab, _ = page
    creds = await new_admin_key(platform)
    refused = tab.locator("#signin-error")

    await sign_in(tab, world.base_url, Credentials(creds.key_id, secret="not-the-secret"))
    await expect(refused).to_contain_text("signature_invalid")
    await expect(refused).to_contain_text("The secret is wrong for this key.")

    r = await admin_client.request("DELETE", f"/admin/v1/keys/{creds.key_id}")
    assert r.status_code == 200, r.text
    await sign_in(tab, world.base_url, creds)
    await expect(refused).to_contain_text("key_revoked")
    await expect(refused).to_contain_text("This key was revoked.")
    await expect(tab.locator("#nav")).to_be_hidden()
    await shot(tab, "0-sign-in-refused")

    # A key revoked while it is signed in: the next request signs the tab out, saying why.
    live = await new_admin_key(platform)
    await sign_in(tab, world.base_url, live)
    await expect(tab.locator('#page[data-page="suppliers"][data-ready="true"]')).to_be_visible()
    r = await admin_client.request("DELETE", f"/admin/v1/keys/{live.key_id}")
    assert r.status_code == 200, r.text

    async def refreshed() -> str:
        if await refused.is_visible():
            return await refused.inner_text()
        # The tab may sign out between the look and the click (no button then): not yet, the
        # next round looks again.
        with contextlib.suppress(PlaywrightTimeout):
            await tab.click('button[data-action="refresh"]', timeout=1_000)
        return ""

    # (other API replicas may hold the key for up to SHOWDIST_AUTH_CACHE_SECONDS)
    await eventually(refreshed, lambda text: "key_revoked" in text, timeout=10.0, every=0.5)
    await expect(tab.locator("#signin")).to_be_visible()
    await expect(refused).to_contain_text("Signed out (key_revoked): This key was revoked.")
    await expect(tab.locator("#page")).to_be_empty()  # (nothing of the admin's pages is left)
    assert await tab.evaluate("sessionStorage.length") == 0, "the secret left the tab's storage"
