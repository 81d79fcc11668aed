"""The metrics of docs/metrics.md as an operator's Prometheus reads them: the Ray node's
metrics export port, over HTTP, in Prometheus' text format, after lifecycles and refusals made
through the signed API. The session is shared with other tests, so each check is a difference
between two scrapes; Ray's processes report every `METRICS_REPORT_MS`, so a scrape is repeated
(up to a deadline) until what was done shows."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import ray
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, update

from actors.metrics import (
    API_REFUSALS,
    LATENCY_BUCKETS_S,
    METRICS,
    NEGOTIATIONS,
    ORDER_MOVES,
    SUPPLIER_CALL_SECONDS,
    SUPPLIER_CALLS,
    MetricSpec,
)
from domain.signing import HEADER_KEY, HEADER_NONCE, HEADER_SIGNATURE
from persistence.db import make_engine
from persistence.tables import negotiations, outbox
from persistence.work import WorkRepository
from showdist.client import AsyncSignedClient, encode_body
from showdist.platform import RunningPlatform
from tests.conftest import METRICS_REPORT_MS
from tests.support.waiting import eventually
from tests.support.world import World

LIFECYCLES = 3
# Series: (exported name, the metric's own labels and `le`, sorted) -> value summed over the
# processes that recorded it (Ray adds labels of its own: WorkerId, NodeAddress, ...).
Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]
_SPEC_OF: dict[str, MetricSpec] = {name: spec for spec in METRICS for name in spec.exported}


def metrics_url() -> str:
    """The Prometheus endpoint of the (one) node of the session, as Ray tells it."""
    (node,) = [n for n in ray.nodes() if n["Alive"]]  # type: ignore[no-untyped-call]
    port = node["MetricsExportPort"]
    assert port, node
    return f"http://{node['NodeManagerAddress']}:{port}/metrics"


async def scrape(http: httpx.AsyncClient, url: str) -> Series:
    for attempt in range(3):  # (the agent answers slowly on a loaded machine: asked again)
        try:
            r = await http.get(url)
            break
        except httpx.TimeoutException:
            if attempt == 2:
                raise
    assert r.status_code == 200, r.text[:300]
    assert r.headers["content-type"].startswith("text/plain"), r.headers
    series: Series = defaultdict(float)
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            spec = _SPEC_OF.get(sample.name)
            if spec is None:
                continue
            keep = (*spec.labels, "le")
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k in keep))
            series[(sample.name, labels)] += sample.value
    return series


def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


def delta(after: Mapping[Any, float], before: Mapping[Any, float], k: Any) -> float:
    return after.get(k, 0.0) - before.get(k, 0.0)


def moves(frm: str, to: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return key(ORDER_MOVES.exported[0], **{"from": frm, "to": to})


def calls(supplier: str, operation: str, outcome: str) -> Any:
    return key(SUPPLIER_CALLS.exported[0], supplier=supplier, operation=operation, outcome=outcome)


def latency(part: str, supplier: str, operation: str, **extra: str) -> Any:
    name = f"ray_{SUPPLIER_CALL_SECONDS.name}_{part}"
    return key(name, supplier=supplier, operation=operation, **extra)


def refusals(code: str) -> Any:
    return key(API_REFUSALS.exported[0], code=code)


_COUNTED = frozenset(
    n
    for spec in (ORDER_MOVES, SUPPLIER_CALLS, SUPPLIER_CALL_SECONDS, API_REFUSALS)
    for n in spec.exported
)


def _counted(series: Series) -> Series:
    return {k: v for k, v in series.items() if k[0] in _COUNTED}


async def settled_scrape(http: httpx.AsyncClient, url: str) -> Series:
    """A scrape once what the tests before did has been reported: the counters no longer
    change over a few report intervals (a move recorded just before, not yet reported, would
    otherwise count as this test's)."""
    last = await scrape(http, url)
    deadline = time.monotonic() + 30 * METRICS_REPORT_MS / 1000
    while True:
        await asyncio.sleep(2.5 * METRICS_REPORT_MS / 1000)
        now = await scrape(http, url)
        if _counted(now) == _counted(last) or time.monotonic() > deadline:
            return now
        last = now


async def scraped_until(
    http: httpx.AsyncClient, url: str, before: Series, wanted: Mapping[Any, float]
) -> Series:
    """Scrape until every series in `wanted` has grown by at least its figure since `before`
    (bounded: a few report intervals and the agent's own work)."""

    def reached(now: Series) -> bool:
        return all(delta(now, before, k) >= n for k, n in wanted.items())

    return await eventually(
        lambda: scrape(http, url), reached, timeout=20 * METRICS_REPORT_MS / 1000, every=0.25
    )


def _tampered(headers: dict[str, str], name: str, change: Callable[[str], str]) -> dict[str, str]:
    return {**headers, name: change(headers[name])}


async def test_lifecycles_and_refusals_show_in_the_prometheus_endpoint(
    world: World,
    platform: RunningPlatform,
    client_a: AsyncSignedClient,
    admin_client: AsyncSignedClient,
    sandbox_admin: Any,
) -> None:
    url = await asyncio.to_thread(metrics_url)
    sid = world.supplier_id
    async with httpx.AsyncClient(timeout=30.0, trust_env=False) as http:
        before = await settled_scrape(http, url)

        # Lifecycles: lock and issue, through the signed API.
        for _ in range(LIFECYCLES):
            r = await client_a.request(
                "POST", "/v1/orders", world.order_body(f"M-{uuid.uuid4().hex[:12]}")
            )
            assert r.status_code == 201, r.text
            r = await client_a.request("POST", f"/v1/orders/{r.json()['id']}/issue")
            assert (r.status_code, r.json()["status"]) == (200, "FIXED"), r.text
        # A lock the supplier refuses: the order is LOCK_FAILED (503 supplier_unavailable).
        sandbox_admin.set_faults({"lock": {"refuse_rate": 1.0}})
        r = await client_a.request("POST", "/v1/orders", world.order_body(f"M-{uuid.uuid4()}"))
        assert (r.status_code, r.json()["order"]["status"]) == (503, "LOCK_FAILED"), r.text
        sandbox_admin.set_faults({})

        # Refused at the door: each with its code, on a hot path and on FastAPI's.
        http_api = client_a.http
        body = encode_body(world.order_body(f"M-{uuid.uuid4()}"))
        signed = client_a.creds.headers("POST", "/v1/orders", body)
        bad_signature = _tampered(signed, HEADER_SIGNATURE, lambda s: s[:-4] + "AAA=")
        r = await http_api.post("/v1/orders", content=body, headers=bad_signature)
        assert (r.status_code, r.json()["error"]["code"]) == (401, "signature_invalid"), r.text
        show = f"/v1/shows/{world.show_id}"
        replayed = client_a.creds.headers("GET", show, b"")
        assert (await http_api.get(show, headers=replayed)).status_code == 200
        r = await http_api.get(show, headers=replayed)
        assert (r.status_code, r.json()["error"]["code"]) == (401, "nonce_replayed"), r.text
        r = await client_a.request("GET", "/admin/v1/suppliers")  # a distributor's key
        assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden"), r.text
        stranger = _tampered(signed, HEADER_KEY, lambda _k: "key_nobody_has")
        stranger = _tampered(stranger, HEADER_NONCE, lambda n: n[::-1])
        r = await http_api.post("/v1/orders", content=body, headers=stranger)
        assert (r.status_code, r.json()["error"]["code"]) == (401, "key_unknown"), r.text
        r = await http_api.get("/v1/shows?limit=1&limit=2")
        assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_request"), r.text
        too_large = b" " * (platform.settings.max_body_bytes + 1)
        r = await http_api.post("/v1/orders", content=too_large, headers=signed)
        assert (r.status_code, r.json()["error"]["code"]) == (413, "payload_too_large"), r.text

        exact = {
            moves("none", "NEW"): LIFECYCLES + 1,
            moves("NEW", "LOCKED"): LIFECYCLES,
            moves("LOCKED", "FIXING"): LIFECYCLES,
            moves("NEW", "LOCK_FAILED"): 1,
            calls(sid, "lock", "done"): LIFECYCLES,
            calls(sid, "lock", "failed"): 1,
            calls(sid, "issue", "done"): LIFECYCLES,
            latency("count", sid, "lock"): LIFECYCLES + 1,
            latency("count", sid, "issue"): LIFECYCLES,
            latency("bucket", sid, "issue", le="+Inf"): LIFECYCLES,
            latency("bucket", sid, "issue", le="30.0"): LIFECYCLES,
            refusals("signature_invalid"): 1,
            refusals("nonce_replayed"): 1,
            refusals("forbidden"): 1,
            refusals("key_unknown"): 1,
            refusals("invalid_request"): 1,
            refusals("payload_too_large"): 1,
        }
        # FIXING -> FIXED may also come of another test's negotiation resolving meanwhile.
        at_least = {**exact, moves("FIXING", "FIXED"): LIFECYCLES}
        after = await scraped_until(http, url, before, at_least)

    # Only this test locks, issues and is refused (the others are done, and no background
    # work locks or issues): the counts are exactly what it did.
    assert {k: delta(after, before, k) for k in exact} == exact
    assert delta(after, before, moves("FIXING", "FIXED")) >= LIFECYCLES
    # Latency: seconds, in the declared buckets, cumulative, summing to something plausible.
    spent = delta(after, before, latency("sum", sid, "issue"))
    assert 0 < spent < LIFECYCLES * 5.0, spent
    # Every declared bound is in the scrape as written here (so a spelling of `le` that is
    # not Ray's cannot make the bucket checks read zeros from series that do not exist).
    bounds = [str(b) for b in LATENCY_BUCKETS_S] + ["+Inf"]
    exported = {
        dict(labels)["le"]
        for name, labels in after
        if name == latency("bucket", sid, "issue")[0]
        and {("supplier", sid), ("operation", "issue")} <= set(labels)
    }
    assert exported == set(bounds), sorted(exported ^ set(bounds))
    counts = [
        delta(after, before, latency("bucket", sid, "issue", le=str(b))) for b in LATENCY_BUCKETS_S
    ]
    assert counts == sorted(counts), counts
    assert counts[-1] == LIFECYCLES, counts
    # Labels are the status machine's names and the outcomes of suppliers/gateway.py.
    moved = {dict(labels)["to"] for name, labels in after if name == ORDER_MOVES.exported[0]}
    assert {"NEW", "LOCKED", "FIXING", "FIXED", "LOCK_FAILED"} <= moved


def _closed_port() -> int:
    """A 127.0.0.1 port nobody listens on (bound, then closed): a callback to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class _Truth:
    """The counts behind the gauges, read from the database as the order hosts count them."""

    def __init__(self, work: WorkRepository) -> None:
        self.work = work

    async def read(self) -> dict[tuple[str, str] | str, int]:
        unresolved = await self.work.count_unresolved_negotiations()
        counts: dict[tuple[str, str] | str, int] = {k: n for k, n in unresolved.items()}
        counts["backlog"], counts["dead"] = await self.work.count_callbacks()
        return counts


def _shown(series: Series) -> dict[tuple[str, str] | str, int]:
    """The gauges of a scrape in `_Truth`'s terms (the callback gauges summed over shards)."""
    gauge = NEGOTIATIONS.exported[0]
    shown: dict[tuple[str, str] | str, int] = {"backlog": 0, "dead": 0}
    for (name, labels), v in series.items():
        tags = dict(labels)
        if name == gauge:
            shown[(tags["kind"], tags["status"])] = int(v)
        elif name == "ray_showdist_callback_backlog":
            shown["backlog"] += int(v)
        elif name == "ray_showdist_callback_dead":
            shown["dead"] += int(v)
    return shown


async def test_the_gauges_count_negotiations_and_the_callback_queue(
    world: World, client_a: AsyncSignedClient, sandbox_admin: Any, platform: RunningPlatform
) -> None:
    """An issue whose outcome is lost opens a negotiation (its polls failing too, it stays
    open), and an order's callbacks to a closed port wait, one of them made to die: each gauge
    then equals the database's count read just before and just after the same scrape, with
    this test's own work in that count (so a negotiation or a message another test left open
    cannot make the check pass by itself)."""
    url = await asyncio.to_thread(metrics_url)
    gauge = NEGOTIATIONS.exported[0]
    engine = make_engine(platform.settings.resolved_database_url(), pool_size=1)
    truth = _Truth(WorkRepository(engine))
    try:
        async with httpx.AsyncClient(timeout=10.0, trust_env=False) as http:
            first = await eventually(
                lambda: scrape(http, url),
                lambda s: all(
                    key(gauge, kind=k, status=st) in s
                    for k in ("issue", "refund")
                    for st in ("active", "flagged")
                ),
                timeout=20.0,
                every=0.25,
            )
            queue = {
                name: {dict(labels)["shard"] for n, labels in first if n == name}
                for name in ("ray_showdist_callback_backlog", "ray_showdist_callback_dead")
            }
            assert queue == {n: {"0", "1"} for n in queue}, queue  # one series per order host
            counted = [v for (n, _), v in first.items() if n in queue or n == gauge]
            assert all(v >= 0 and v == int(v) for v in counted), counted

            # Callbacks that cannot be delivered: an order issued with its callback URL on a
            # closed port; its oldest message is then made 25 hours old, so its next failure
            # is its last (a dead letter).
            hooks = f"http://127.0.0.1:{_closed_port()}/hooks"
            r = await client_a.request(
                "POST",
                "/v1/orders",
                world.order_body(f"M-{uuid.uuid4().hex[:12]}", callback_url=hooks),
            )
            assert r.status_code == 201, r.text
            called = r.json()["id"]
            r = await client_a.request("POST", f"/v1/orders/{called}/issue")
            assert (r.status_code, r.json()["status"]) == (200, "FIXED"), r.text

            async def messages() -> list[int]:
                async with engine.connect() as conn:
                    q = select(outbox.c.id).where(outbox.c.order_id == called)
                    return [row[0] for row in (await conn.execute(q.order_by(outbox.c.id))).all()]

            ids = await eventually(messages, lambda found: len(found) >= 2, timeout=20.0)
            async with engine.begin() as conn:
                await conn.execute(
                    update(outbox)
                    .where(outbox.c.id == ids[0])
                    .values(
                        created_at=datetime.now(UTC) - timedelta(hours=25),
                        next_attempt_at=datetime.now(UTC),
                    )
                )

            sandbox_admin.set_faults(
                {"issue": {"lost_response_rate": 1.0}, "query_issue": {"error_rate": 1.0}}
            )
            r = await client_a.request(
                "POST", "/v1/orders", world.order_body(f"M-{uuid.uuid4().hex[:12]}")
            )
            assert r.status_code == 201, r.text
            negotiating = r.json()["id"]
            opened = time.monotonic()
            r = await client_a.request("POST", f"/v1/orders/{negotiating}/issue")
            assert (r.status_code, r.json()["status"]) == (202, "FIXING"), r.text

            async def mine() -> tuple[str | None, list[str]]:
                async with engine.connect() as conn:
                    n = (
                        await conn.execute(
                            select(negotiations.c.status).where(
                                negotiations.c.order_id == negotiating
                            )
                        )
                    ).scalar_one_or_none()
                    statuses = (
                        await conn.execute(
                            select(outbox.c.status).where(outbox.c.order_id == called)
                        )
                    ).all()
                return n, sorted(row[0] for row in statuses)

            async def bracketed() -> tuple[dict[Any, int], dict[Any, int], dict[Any, int], Any]:
                before = await truth.read()
                shown = _shown(await scrape(http, url))
                after = await truth.read()
                return before, shown, after, await mine()

            def settled(seen: tuple[dict[Any, int], dict[Any, int], dict[Any, int], Any]) -> bool:
                before, shown, after, (negotiation, statuses) = seen
                return (
                    before == after
                    and all(shown.get(k) == v for k, v in after.items())
                    and negotiation == "active"
                    and "dead" in statuses
                    and "pending" in statuses
                )

            _, shown, _, _ = await eventually(bracketed, settled, timeout=40.0, every=0.5)
            print(
                f"\ngauges equal the database's counts after {time.monotonic() - opened:.1f} s: "
                f"{shown}"
            )
            # This test's own work is in them: each is at least one.
            assert shown[("issue", "active")] >= 1
            assert shown["backlog"] >= 1
            assert shown["dead"] >= 1
    finally:
        await engine.dispose()
    # (the autouse fixture clears the faults: the next poll finds the tickets, FIXED)
