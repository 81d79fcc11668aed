"""The sandbox supplier, driven through the real `SandboxGateway` over HTTP in its own process."""

from __future__ import annotations

import asyncio
import pickle
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date
from typing import Any, TypeVar

import httpx
import pytest

from domain.identity import Attendee, IdType, check_document
from suppliers.gateway import (
    CallResult,
    ErrorCode,
    IssueInfo,
    Outcome,
    SupplierGateway,
    Ticket,
)
from suppliers.registry import build_gateway
from suppliers.sandbox.gateway import SandboxGateway
from suppliers.sandbox.process import SandboxAdmin, SandboxProcess, free_port

SES_A, TIER_BIG, TIER_SCARCE = "tst_ses_a", "tst_tier_big", "tst_tier_scarce"
SHOW_B, SES_B, TIER_B = "tst_show_b", "tst_ses_b", "tst_tier_b"
STOCK_BIG, STOCK_SCARCE, STOCK_B = 1000, 50, 100

T = TypeVar("T")


def _tier(ref: str, stock: int) -> dict[str, Any]:
    return {
        "ref": ref,
        "name": ref.rsplit("_", 1)[-1],
        "face_value": 38000,
        "price": 36000,
        "settlement_price": 32400,
        "currency": "CNY",
        "stock": stock,
    }


def _show(ref: str, session_ref: str, tiers: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "ref": ref,
        "title": f"show {ref}",
        "city": "上海",
        "category": "concert",
        "venue": "venue",
        "starts_at": "2026-12-19T19:30:00+08:00",
        "sessions": [
            {"ref": session_ref, "starts_at": "2026-12-19T19:30:00+08:00", "tiers": tiers}
        ],
    }


TEST_CATALOG: dict[str, Any] = {
    "shows": [
        _show("tst_show_a", SES_A, [_tier(TIER_BIG, STOCK_BIG), _tier(TIER_SCARCE, STOCK_SCARCE)]),
        _show(SHOW_B, SES_B, [_tier(TIER_B, STOCK_B)]),
    ]
}


def new_order_id() -> str:
    return f"ord_{uuid.uuid4().hex[:16]}"


# This module starts its own sandbox (with the demo catalog) rather than sharing the session one.
@pytest.fixture(scope="module")
def sandbox_process() -> Iterator[SandboxProcess]:
    process = SandboxProcess.start(demo=True)
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def admin(sandbox_process: SandboxProcess) -> Iterator[SandboxAdmin]:
    with SandboxAdmin(sandbox_process.url) as client:
        client.load_catalog(TEST_CATALOG)
        yield client


@pytest.fixture(autouse=True)
def _fresh_sandbox(admin: SandboxAdmin) -> None:
    admin.reset()


@pytest.fixture
async def gateway(sandbox_process: SandboxProcess) -> AsyncIterator[SandboxGateway]:
    gw = SandboxGateway(sandbox_process.url)
    yield gw
    await gw.aclose()


async def _locked(gateway: SupplierGateway, tier_ref: str = TIER_BIG, quantity: int = 1) -> str:
    order_id = new_order_id()
    session_ref = SES_B if tier_ref == TIER_B else SES_A
    result = await gateway.lock(order_id, session_ref, tier_ref, quantity)
    assert result.outcome is Outcome.DONE, result
    return order_id


async def _issued(gateway: SupplierGateway, tier_ref: str = TIER_BIG, quantity: int = 1) -> str:
    order_id = await _locked(gateway, tier_ref, quantity)
    result = await gateway.issue(order_id)
    assert result.outcome is Outcome.DONE, result
    return order_id


def _tickets(result: CallResult[IssueInfo]) -> tuple[Ticket, ...]:
    assert result.value is not None, result
    return result.value.tickets


# -- happy path and idempotency -------------------------------------------------------------


async def test_lock_issue_query_refund_happy_path(
    gateway: SandboxGateway, admin: SandboxAdmin
) -> None:
    order_id = new_order_id()

    locked = await gateway.lock(order_id, SES_A, TIER_BIG, 2)
    assert locked.outcome is Outcome.DONE
    assert locked.value is not None
    assert locked.value.lock_ref
    assert locked.latency_ms > 0
    assert admin.inventory()[TIER_BIG] == {
        "stock": STOCK_BIG,
        "available": STOCK_BIG - 2,
        "locked": 2,
        "sold": 0,
    }

    issued = await gateway.issue(order_id)
    assert issued.outcome is Outcome.DONE
    assert issued.value is not None
    assert len(issued.value.tickets) == 2
    assert len({t.code for t in issued.value.tickets}) == 2
    assert issued.value.issued_at.tzinfo is not None
    assert issued.value.issued_at.utcoffset() == UTC.utcoffset(None)
    assert admin.inventory()[TIER_BIG]["sold"] == 2

    queried = await gateway.query_issue(order_id)
    assert queried.outcome is Outcome.DONE
    assert queried.value == issued.value

    refunded = await gateway.refund(order_id)
    assert refunded.outcome is Outcome.DONE
    assert refunded.value is not None
    assert refunded.value.initiated_by == "platform"
    assert refunded.value.refunded_at >= issued.value.issued_at
    assert (await gateway.query_refund(order_id)).value == refunded.value
    assert (await gateway.refund(order_id)).value == refunded.value  # idempotent
    assert admin.inventory()[TIER_BIG] == {
        "stock": STOCK_BIG,
        "available": STOCK_BIG,
        "locked": 0,
        "sold": 0,
    }
    assert admin.counters()["refunds_performed"] == 1


async def test_lock_is_idempotent_on_order_id(gateway: SandboxGateway, admin: SandboxAdmin) -> None:
    order_id = new_order_id()
    first = await gateway.lock(order_id, SES_A, TIER_BIG, 3)
    again = await asyncio.gather(*(gateway.lock(order_id, SES_A, TIER_BIG, 3) for _ in range(5)))

    assert {r.value for r in again} == {first.value}
    assert admin.inventory()[TIER_BIG]["locked"] == 3
    assert admin.counters()["locks_performed"] == 1

    other = await gateway.lock(order_id, SES_A, TIER_BIG, 4)
    assert (other.outcome, other.error) == (Outcome.FAILED, ErrorCode.REFUSED)


async def test_issue_is_idempotent_also_when_concurrent(
    gateway: SandboxGateway, admin: SandboxAdmin
) -> None:
    order_id = await _locked(gateway, quantity=2)
    admin.set_faults({"issue": {"latency_ms": 100}})  # so that the 20 requests overlap

    results = await asyncio.gather(*(gateway.issue(order_id) for _ in range(20)))
    assert {r.outcome for r in results} == {Outcome.DONE}
    assert len({_tickets(r) for r in results}) == 1

    repeat = await gateway.issue(order_id)
    assert _tickets(repeat) == _tickets(results[0])
    counters = admin.counters()
    assert counters["issue"] == 21
    assert counters["issues_performed"] == 1
    assert counters["issue_effects"] == 1
    assert admin.inventory()[TIER_BIG]["sold"] == 2


async def test_concurrent_locks_never_oversell(
    gateway: SandboxGateway, admin: SandboxAdmin
) -> None:
    results = await asyncio.gather(
        *(gateway.lock(new_order_id(), SES_A, TIER_SCARCE, 1) for _ in range(200))
    )

    assert Counter((r.outcome, r.error) for r in results) == {
        (Outcome.DONE, None): STOCK_SCARCE,
        (Outcome.FAILED, ErrorCode.SOLD_OUT): 200 - STOCK_SCARCE,
    }
    assert admin.inventory()[TIER_SCARCE] == {
        "stock": STOCK_SCARCE,
        "available": 0,
        "locked": STOCK_SCARCE,
        "sold": 0,
    }


async def test_release_returns_stock_and_is_idempotent(
    gateway: SandboxGateway, admin: SandboxAdmin
) -> None:
    order_id = await _locked(gateway, TIER_SCARCE, quantity=5)
    assert admin.inventory()[TIER_SCARCE]["available"] == STOCK_SCARCE - 5

    assert (await gateway.release(order_id)).outcome is Outcome.DONE
    assert admin.inventory()[TIER_SCARCE]["available"] == STOCK_SCARCE
    assert (await gateway.release(order_id)).outcome is Outcome.DONE
    assert (await gateway.release(new_order_id())).outcome is Outcome.DONE  # unknown order
    assert admin.counters()["releases_performed"] == 1

    # a released order can be neither issued nor locked again (a late lock must hold nothing)
    assert (await gateway.issue(order_id)).error == ErrorCode.REFUSED
    late = await gateway.lock(order_id, SES_A, TIER_SCARCE, 5)
    assert (late.outcome, late.error) == (Outcome.FAILED, ErrorCode.REFUSED)
    assert admin.inventory()[TIER_SCARCE]["available"] == STOCK_SCARCE


async def test_definitive_refusals_are_failed(gateway: SandboxGateway) -> None:
    too_many = await gateway.lock(new_order_id(), SES_A, TIER_SCARCE, STOCK_SCARCE + 1)
    assert (too_many.outcome, too_many.error) == (Outcome.FAILED, ErrorCode.SOLD_OUT)
    unknown_tier = await gateway.lock(new_order_id(), SES_A, "no_such_tier", 1)
    assert (unknown_tier.outcome, unknown_tier.error) == (Outcome.FAILED, ErrorCode.NOT_FOUND)
    bad_quantity = await gateway.lock(new_order_id(), SES_A, TIER_BIG, 0)
    assert (bad_quantity.outcome, bad_quantity.error) == (
        Outcome.FAILED,
        ErrorCode.INVALID_REQUEST,
    )
    unlocked = await gateway.issue(new_order_id())
    assert (unlocked.outcome, unlocked.error) == (Outcome.FAILED, ErrorCode.REFUSED)
    not_issued = await gateway.query_issue(new_order_id())
    assert (not_issued.outcome, not_issued.error) == (Outcome.FAILED, ErrorCode.NOT_ISSUED)
    not_refunded = await gateway.query_refund(new_order_id())
    assert (not_refunded.outcome, not_refunded.error) == (Outcome.FAILED, ErrorCode.NOT_REFUNDED)
    refund_unknown = await gateway.refund(new_order_id())
    assert (refund_unknown.outcome, refund_unknown.error) == (Outcome.FAILED, ErrorCode.NOT_FOUND)
    refund_unissued = await gateway.refund(await _locked(gateway))
    assert (refund_unissued.outcome, refund_unissued.error) == (Outcome.FAILED, ErrorCode.REFUSED)


# -- fault knobs ----------------------------------------------------------------------------


async def test_error_rate_is_unknown_and_does_nothing(
    gateway: SandboxGateway, admin: SandboxAdmin
) -> None:
    admin.set_faults({"lock": {"error_rate": 1.0}, "query_issue": {"error_rate": 1.0}})

    locked = await gateway.lock(new_order_id(), SES_A, TIER_BIG, 1)
    assert (locked.outcome, locked.error) == (Outcome.UNKNOWN, ErrorCode.HTTP_5XX)
    queried = await gateway.query_issue(new_order_id())
    assert (queried.outcome, queried.error) == (Outcome.UNKNOWN, ErrorCode.HTTP_5XX)
    assert admin.inventory()[TIER_BIG]["available"] == STOCK_BIG
    counters = admin.counters()
    assert (counters["locks_performed"], counters["injected_error"]) == (0, 2)


async def test_refuse_rate_is_failed_for_commands_unknown_for_queries(
    gateway: SandboxGateway, admin: SandboxAdmin
) -> None:
    order_id = await _locked(gateway)
    admin.set_faults(
        {
            "lock": {"refuse_rate": 1.0},
            "issue": {"refuse_rate": 1.0},
            "query_refund": {"refuse_rate": 1.0},
        }
    )

    locked = await gateway.lock(new_order_id(), SES_A, TIER_BIG, 1)
    assert (locked.outcome, locked.error) == (Outcome.FAILED, ErrorCode.REFUSED)
    issued = await gateway.issue(order_id)
    assert (issued.outcome, issued.error) == (Outcome.FAILED, ErrorCode.REFUSED)
    assert (await gateway.query_issue(order_id)).outcome is Outcome.FAILED  # not issued
    # a refused query says nothing about the order
    queried = await gateway.query_refund(order_id)
    assert (queried.outcome, queried.error) == (Outcome.UNKNOWN, ErrorCode.REFUSED)
    assert admin.counters()["issues_performed"] == 0


async def test_lost_response_on_issue_is_unknown_but_issued(
    gateway: SandboxGateway, admin: SandboxAdmin
) -> None:
    order_id = await _locked(gateway, quantity=2)
    admin.set_faults({"issue": {"lost_response_rate": 1.0}})

    lost = await gateway.issue(order_id)
    assert (lost.outcome, lost.error) == (Outcome.UNKNOWN, ErrorCode.HTTP_5XX)

    queried = await gateway.query_issue(order_id)
    assert queried.outcome is Outcome.DONE
    assert len(_tickets(queried)) == 2
    counters = admin.counters()
    assert (counters["issues_performed"], counters["injected_lost_response"]) == (1, 1)

    admin.set_faults({})
    repeat = await gateway.issue(order_id)
    assert _tickets(repeat) == _tickets(queried)
    assert admin.counters()["issue_effects"] == 1


async def test_hang_on_issue_times_out_then_query_resolves(
    sandbox_process: SandboxProcess, admin: SandboxAdmin
) -> None:
    gw = SandboxGateway(sandbox_process.url, timeout_s=0.5)
    try:
        order_id = await _locked(gw)
        admin.set_faults({"issue": {"hang_rate": 1.0, "hang_ms": 2000}})

        started = time.monotonic()
        hung = await gw.issue(order_id)
        assert (hung.outcome, hung.error) == (Outcome.UNKNOWN, ErrorCode.TIMEOUT)
        assert 450 <= hung.latency_ms < 1900  # gave up well before the hang ended

        pending = await gw.query_issue(order_id)
        assert (pending.outcome, pending.error) == (Outcome.UNKNOWN, ErrorCode.PENDING)
        release = await gw.release(order_id)  # an issue in flight cannot be released
        assert (release.outcome, release.error) == (Outcome.FAILED, ErrorCode.REFUSED)

        queried = pending
        while queried.outcome is not Outcome.DONE and time.monotonic() - started < 6:
            await asyncio.sleep(0.1)
            queried = await gw.query_issue(order_id)
        assert queried.outcome is Outcome.DONE
        assert time.monotonic() - started >= 1.9  # the issue happened after the hang
        counters = admin.counters()
        assert (counters["issues_performed"], counters["issue_effects"]) == (1, 1)
    finally:
        await gw.aclose()


async def test_latency_knob_shows_in_latency_ms(
    gateway: SandboxGateway, admin: SandboxAdmin
) -> None:
    admin.set_faults({"lock": {"latency_ms": 150}})
    locked = await gateway.lock(new_order_id(), SES_A, TIER_BIG, 1)
    assert locked.outcome is Outcome.DONE
    assert locked.latency_ms >= 150


def test_fault_configuration_is_validated_and_seeded(admin: SandboxAdmin) -> None:
    with pytest.raises(httpx.HTTPStatusError):
        admin.set_faults({"nope": {"error_rate": 1.0}})
    with pytest.raises(httpx.HTTPStatusError):
        admin.set_faults({"lock": {"error_rate": 2.0}})

    applied = admin.set_faults({"issue": {"hang_rate": 0.5}, "seed": 7})
    assert applied["issue"]["hang_ms"] == 30000
    assert applied["seed"] == 7
    assert admin.faults() == applied
    admin.reset()
    assert admin.faults() == {}


async def test_seed_makes_faults_reproducible(gateway: SandboxGateway, admin: SandboxAdmin) -> None:
    async def pattern() -> list[Outcome]:
        admin.reset()
        admin.set_faults({"lock": {"error_rate": 0.5}, "seed": 42})
        return [(await gateway.lock(new_order_id(), SES_A, TIER_BIG, 1)).outcome for _ in range(16)]

    first = await pattern()
    assert set(first) == {Outcome.DONE, Outcome.UNKNOWN}
    assert await pattern() == first


# -- the supplier's own refunds -------------------------------------------------------------


async def test_supplier_cancel_refunds_issued_orders_into_the_feed(
    gateway: SandboxGateway, admin: SandboxAdmin
) -> None:
    issued = [await _issued(gateway, TIER_B, quantity=2) for _ in range(2)]
    held = await _locked(gateway, TIER_B)
    other_show = await _issued(gateway, TIER_BIG)

    cancelled = admin.cancel_show(SHOW_B)
    assert cancelled["refunded"] == issued

    feed = await gateway.supplier_refunds(0)
    assert feed.outcome is Outcome.DONE
    assert feed.value is not None
    assert [(e.seq, e.order_id) for e in feed.value] == [(1, issued[0]), (2, issued[1])]
    assert all(e.refunded_at.tzinfo is not None for e in feed.value)
    assert (await gateway.supplier_refunds(2)).value == []

    refund = await gateway.query_refund(issued[0])
    assert refund.outcome is Outcome.DONE
    assert refund.value is not None
    assert refund.value.initiated_by == "supplier"
    assert refund.value.refunded_at == feed.value[0].refunded_at
    assert (await gateway.refund(issued[0])).value == refund.value  # already refunded
    assert (await gateway.query_refund(other_show)).outcome is Outcome.FAILED

    assert (await gateway.issue(held)).error == ErrorCode.REFUSED
    assert (await gateway.lock(new_order_id(), SES_B, TIER_B, 1)).error == ErrorCode.REFUSED
    assert admin.inventory()[TIER_B] == {
        "stock": STOCK_B,
        "available": STOCK_B,
        "locked": 0,
        "sold": 0,
    }
    catalog = await gateway.catalog()
    assert catalog.value is not None
    show_b = next(s for s in catalog.value.shows if s.ref == SHOW_B)
    assert show_b.status == "offline"

    admin.cancel_show(SHOW_B)  # cancelling again refunds nothing more
    assert len((await gateway.supplier_refunds(0)).value or []) == 2


# -- express delivery updates ---------------------------------------------------------------


async def test_delivery_updates_feed(gateway: SandboxGateway, admin: SandboxAdmin) -> None:
    order_id = await _issued(gateway)
    other = await _issued(gateway, TIER_B)

    shipped = admin.set_delivery(order_id, "SHIPPED")
    assert (shipped["seq"], shipped["order_id"], shipped["status"]) == (1, order_id, "SHIPPED")
    assert admin.set_delivery(order_id, "SHIPPED") == shipped  # a repeat records nothing
    assert admin.set_delivery(other, "SHIPPED")["seq"] == 2
    delivered = admin.set_delivery(order_id, "DELIVERED")
    assert (delivered["seq"], delivered["status"]) == (3, "DELIVERED")

    feed = await gateway.delivery_updates(0)
    assert feed.outcome is Outcome.DONE
    assert feed.value is not None
    assert [(e.seq, e.order_id, e.status) for e in feed.value] == [
        (1, order_id, "SHIPPED"),
        (2, other, "SHIPPED"),
        (3, order_id, "DELIVERED"),
    ]
    assert all(e.at.utcoffset() == UTC.utcoffset(None) for e in feed.value)
    assert feed.value[0].at <= feed.value[2].at

    after_first = await gateway.delivery_updates(feed.value[0].seq)
    assert after_first.outcome is Outcome.DONE
    assert after_first.value == feed.value[1:]
    assert (await gateway.delivery_updates(3)).value == []
    assert admin.counters()["delivery_updates"] == 3

    admin.reset()
    assert (await gateway.delivery_updates(0)).value == []


async def test_delivery_update_needs_an_issued_order(
    gateway: SandboxGateway, admin: SandboxAdmin
) -> None:
    refunded = await _issued(gateway)
    assert (await gateway.refund(refunded)).outcome is Outcome.DONE
    for order_id in (new_order_id(), await _locked(gateway), refunded):
        with pytest.raises(httpx.HTTPStatusError) as refused:
            admin.set_delivery(order_id, "SHIPPED")
        assert refused.value.response.status_code == 409
        assert refused.value.response.json()["error"] == ErrorCode.REFUSED
    with pytest.raises(httpx.HTTPStatusError) as invalid:
        admin.set_delivery(await _issued(gateway), "LOST")
    assert invalid.value.response.status_code == 422
    assert (await gateway.delivery_updates(0)).value == []


# -- catalog --------------------------------------------------------------------------------


async def test_demo_catalog(gateway: SandboxGateway, admin: SandboxAdmin) -> None:
    admin.load_catalog(SandboxAdmin.demo_catalog())
    try:
        result = await gateway.catalog()
        assert result.outcome is Outcome.DONE
        assert result.value is not None
        shows = result.value.shows
        assert 2 <= len(shows) <= 3
        assert {s.city for s in shows} >= {"上海", "北京"}
        assert {s.category for s in shows} == {"concert", "theatre"}
        for show in shows:
            assert show.status == "online"
            assert show.starts_at.tzinfo is not None
            assert show.sessions
            for session in show.sessions:
                assert 2 <= len(session.tiers) <= 3
                for tier in session.tiers:
                    assert tier.currency == "CNY"
                    assert type(tier.face_value) is int
                    assert type(tier.available) is int
                    assert tier.settlement_price < tier.price <= tier.face_value
                    assert 100 <= tier.available <= 500

        tier = shows[0].sessions[0].tiers[0]
        before = tier.available
        locked = await gateway.lock(new_order_id(), shows[0].sessions[0].ref, tier.ref, 4)
        assert locked.outcome is Outcome.DONE
        after = await gateway.catalog()
        assert after.value is not None
        assert after.value.shows[0].sessions[0].tiers[0].available == before - 4
    finally:
        admin.load_catalog(TEST_CATALOG)


# -- transport and construction -------------------------------------------------------------


async def test_connect_error_is_failed_for_commands_unknown_for_queries() -> None:
    gw = SandboxGateway(f"http://127.0.0.1:{free_port()}", connect_timeout_s=0.5)
    try:
        locked = await gw.lock(new_order_id(), SES_A, TIER_BIG, 1)
        assert (locked.outcome, locked.error) == (Outcome.FAILED, ErrorCode.CONNECT)
        issued = await gw.issue(new_order_id())
        assert (issued.outcome, issued.error) == (Outcome.FAILED, ErrorCode.CONNECT)
        queried = await gw.query_issue(new_order_id())
        assert (queried.outcome, queried.error) == (Outcome.UNKNOWN, ErrorCode.CONNECT)
    finally:
        await gw.aclose()


def _roundtrip(obj: T) -> T:
    restored: T = pickle.loads(pickle.dumps(obj))  # noqa: S301 (our own bytes)
    return restored


async def test_gateway_and_results_pickle(sandbox_process: SandboxProcess) -> None:
    gw = SandboxGateway(sandbox_process.url, timeout_s=2.0)
    copy = _roundtrip(gw)  # before first use
    try:
        order_id = await _issued(copy)
        result = await copy.query_issue(order_id)
        assert _roundtrip(result) == result
        after_use = _roundtrip(copy)  # the live client is not pickled
        assert (await after_use.query_issue(order_id)).value == result.value
        await after_use.aclose()
    finally:
        await copy.aclose()
        await gw.aclose()


def test_registry_builds_sandbox_gateways(sandbox_process: SandboxProcess) -> None:
    gw = build_gateway("sandbox", {"base_url": sandbox_process.url, "timeout_s": 2})
    assert isinstance(gw, SandboxGateway)
    assert (gw.base_url, gw.timeout_s, gw.connect_timeout_s) == (sandbox_process.url, 2.0, 1.0)
    with pytest.raises(ValueError, match="unknown supplier gateway kind"):
        build_gateway("carrier-pigeon", {})
    with pytest.raises(ValueError, match="base_url"):
        build_gateway("sandbox", {})


# -- real-name sessions ---------------------------------------------------------------------


async def test_a_real_name_session_locks_only_with_one_attendee_per_ticket(
    gateway: SandboxGateway, admin: SandboxAdmin
) -> None:
    real_name = _show("tst_show_rn", "tst_ses_rn", [_tier("tst_tier_rn", 10)])
    real_name["sessions"][0] |= {"real_name_required": True, "tickets_per_id": 2}
    admin.load_catalog({"shows": [*TEST_CATALOG["shows"], real_name]})
    try:
        catalog = await gateway.catalog()
        assert catalog.value is not None
        sessions = {s.ref: s for show in catalog.value.shows for s in show.sessions}
        assert (
            sessions["tst_ses_rn"].real_name_required,
            sessions["tst_ses_rn"].tickets_per_id,
        ) == (
            True,
            2,
        )
        assert not sessions[SES_A].real_name_required
        bare = await gateway.lock(new_order_id(), "tst_ses_rn", "tst_tier_rn", 2)
        assert (bare.outcome, bare.error) == (Outcome.FAILED, ErrorCode.INVALID_REQUEST)
        people = tuple(
            Attendee(name, check_document(IdType.PASSPORT, number, today=date(2026, 12, 1)))
            for name, number in (("Li Lei", "E12345678"), ("Han Meimei", "E87654321"))
        )
        order_id = new_order_id()
        locked = await gateway.lock(order_id, "tst_ses_rn", "tst_tier_rn", 2, people)
        assert locked.outcome is Outcome.DONE, locked
        issued = await gateway.issue(order_id, people)
        assert issued.outcome is Outcome.DONE, issued
        assert len(_tickets(issued)) == 2
        # The box office names each ticket's attendee, whole (its gate checks the document).
        async with httpx.AsyncClient(base_url=gateway.base_url, trust_env=False) as http:
            raw = (await http.get(f"/issues/{order_id}")).json()
        assert [t["attendee"]["id_number"] for t in raw["tickets"]] == ["E12345678", "E87654321"]
    finally:
        admin.load_catalog(TEST_CATALOG)
