"""The pretix gateway against a running pretix (tests/support/pretix.py): every call and every
outcome class, checked on pretix's side too (its orders, quotas, refunds and its own check-in).

"pretix down" is a second, short-lived pretix that the tests freeze (SIGSTOP: requests wait in
its socket, nothing answers) and thaw, or a closed port."""

from __future__ import annotations

import asyncio
import pickle
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from persistence.secretbox import SecretBox, SecretBoxError
from suppliers.gateway import CallResult, ErrorCode, Outcome
from suppliers.pretix.gateway import PretixGateway
from suppliers.pretix.mapping import order_code, session_ref, tier_ref
from suppliers.registry import build_gateway, stored_gateway_config
from suppliers.secrets import supplier_secrets_key
from tests.support.pretix import PretixAdmin, PretixServer, SeriesEvent
from tests.support.services import free_port


def oid() -> str:
    return f"ord_it_{uuid.uuid4().hex[:16]}"


@pytest.fixture(scope="module")
def admin(pretix: PretixServer) -> Iterator[PretixAdmin]:
    client = pretix.admin()
    yield client
    client.close()


@pytest.fixture(scope="module")
def event(admin: PretixAdmin) -> SeriesEvent:
    return admin.create_series(f"gw-{uuid.uuid4().hex[:8]}", standing_size=50, seated_size=20)


def gateway_for(server: PretixServer, slug: str, **extra: Any) -> PretixGateway:
    gw = build_gateway("pretix", server.gateway_config(slug, **extra))
    assert isinstance(gw, PretixGateway)
    return gw


@pytest.fixture
async def gw(pretix: PretixServer, event: SeriesEvent) -> AsyncIterator[PretixGateway]:
    gateway = gateway_for(pretix, event.slug)
    yield gateway
    await gateway.aclose()


def ours(admin: PretixAdmin, slug: str, order_id: str) -> list[Any]:
    """The pretix orders that name this showdist order."""
    return [
        o
        for o in admin.orders(slug)
        if (o.get("api_meta") or {}).get("showdist_order_id") == order_id
    ]


def standing(event: SeriesEvent, date: int = 0) -> tuple[str, str]:
    return session_ref(event.dates[date]), tier_ref(event.standing)


# -- catalog ---------------------------------------------------------------------------------


async def test_the_series_maps_to_a_show_with_its_dates_tiers_prices_and_quota_stock(
    pretix: PretixServer, admin: PretixAdmin
) -> None:
    ev = admin.create_series(f"cat-{uuid.uuid4().hex[:8]}", standing_size=10, seated_size=5)
    gw = gateway_for(pretix, ev.slug, distribution_bp=9000, settlement_bp=8000, city="Berlin")
    try:
        result = await gw.catalog()
        assert result.outcome is Outcome.DONE, result
        assert result.value is not None
        (show,) = result.value.shows
        assert (show.ref, show.title, show.city, show.venue, show.status) == (
            ev.slug,
            f"Series {ev.slug}",
            "Berlin",
            "Test Hall",
            "online",
        )
        first, second = show.sessions
        assert [s.ref for s in show.sessions] == [f"date-{ev.dates[0]}", f"date-{ev.dates[1]}"]
        assert second.starts_at - first.starts_at == timedelta(days=1)
        assert first.starts_at.utcoffset() in (timedelta(hours=1), timedelta(hours=2))  # Berlin
        assert {s.status for s in show.sessions} == {"online"}
        tiers = {t.ref: t for t in first.tiers}
        assert set(tiers) == {
            f"item-{ev.standing}",
            f"item-{ev.seated}-var-{ev.front}",
            f"item-{ev.seated}-var-{ev.back}",
        }
        plain = tiers[f"item-{ev.standing}"]
        # 40.00 EUR on the first date (its own price), 38.00 on the second.
        assert (plain.face_value, plain.price, plain.settlement_price, plain.currency) == (
            4000,
            3600,
            3200,
            "EUR",
        )
        assert {t.ref: t.face_value for t in second.tiers}[f"item-{ev.standing}"] == 3800
        assert tiers[f"item-{ev.seated}-var-{ev.front}"].face_value == 8000
        assert tiers[f"item-{ev.seated}-var-{ev.back}"].name == "Seated - Back"
        assert {t.ref: t.available for t in first.tiers} == {
            f"item-{ev.standing}": 10,
            f"item-{ev.seated}-var-{ev.front}": 5,
            f"item-{ev.seated}-var-{ev.back}": 5,
        }
        # A lock holds quota in pretix: the stock the catalog reports follows.
        locked = await gw.lock(oid(), first.ref, f"item-{ev.seated}-var-{ev.front}", 3)
        assert locked.outcome is Outcome.DONE, locked
        after = await gw.catalog()
        assert after.value is not None
        stock = {t.ref: t.available for t in after.value.shows[0].sessions[0].tiers}
        # Both variations share the seated quota.
        assert stock[f"item-{ev.seated}-var-{ev.front}"] == 2
        assert stock[f"item-{ev.seated}-var-{ev.back}"] == 2
        assert stock[f"item-{ev.standing}"] == 10
    finally:
        await gw.aclose()


async def test_a_single_event_is_a_show_with_one_session(
    pretix: PretixServer, admin: PretixAdmin
) -> None:
    slug = f"one-{uuid.uuid4().hex[:8]}"
    item = admin.create_single(slug, size=4, price="25.50")
    gw = gateway_for(pretix, slug)
    try:
        result = await gw.catalog()
        assert result.value is not None, result
        (show,) = result.value.shows
        (ses,) = show.sessions
        assert ses.ref == "event"
        assert [(t.ref, t.face_value, t.available) for t in ses.tiers] == [
            (f"item-{item}", 2550, 4)
        ]
        assert (await gw.lock(oid(), "event", f"item-{item}", 4)).outcome is Outcome.DONE
        sold = await gw.lock(oid(), "event", f"item-{item}", 1)
        assert (sold.outcome, sold.error) == (Outcome.FAILED, ErrorCode.SOLD_OUT)
    finally:
        await gw.aclose()


# -- the lifecycle ---------------------------------------------------------------------------


async def test_lock_issue_refund_in_pretix_with_its_own_ticket_secrets_and_check_in(
    gw: PretixGateway, admin: PretixAdmin, event: SeriesEvent
) -> None:
    order_id = oid()
    ses, tier = standing(event)
    before = datetime.now(UTC)
    locked = await gw.lock(order_id, ses, tier, 2)
    assert locked.outcome is Outcome.DONE, locked
    assert locked.value is not None
    assert locked.value.lock_ref == order_code(order_id)
    (pending,) = ours(admin, event.slug, order_id)
    assert pending["status"] == "n"
    assert pending["code"] == order_code(order_id)
    assert len(pending["positions"]) == 2
    expires = datetime.fromisoformat(pending["expires"])
    assert before + timedelta(seconds=950) <= expires <= datetime.now(UTC) + timedelta(seconds=970)

    issued = await gw.issue(order_id)
    assert issued.outcome is Outcome.DONE, issued
    assert issued.value is not None
    paid = admin.order(event.slug, order_code(order_id))
    assert paid["status"] == "p"
    secrets = sorted(p["secret"] for p in paid["positions"])
    assert sorted(t.code for t in issued.value.tickets) == secrets
    assert before <= issued.value.issued_at <= datetime.now(UTC)

    # pretix's own check-in takes our tickets.
    checkin = admin.checkin_list(event.slug)
    assert admin.redeem(checkin, issued.value.tickets[0].code)["status"] == "ok"

    again = await gw.query_issue(order_id)
    assert again.outcome is Outcome.DONE
    assert again.value is not None
    assert again.value.tickets == issued.value.tickets

    refunded = await gw.refund(order_id)
    assert refunded.outcome is Outcome.DONE, refunded
    assert refunded.value is not None
    assert refunded.value.initiated_by == "platform"
    cancelled = admin.order(event.slug, order_code(order_id))
    assert cancelled["status"] == "c"
    assert [(r["state"], r["amount"]) for r in cancelled["refunds"]] == [("done", "80.00")]
    assert refunded.value.refunded_at == datetime.fromisoformat(cancelled["cancellation_date"])
    queried = await gw.query_refund(order_id)
    assert queried.outcome is Outcome.DONE
    assert queried.value == refunded.value
    # A repeated refund is the same refund, not a second one.
    assert (await gw.refund(order_id)).value == refunded.value
    assert len(admin.order(event.slug, order_code(order_id))["refunds"]) == 1
    # The other ticket no longer gets in.
    denied = admin.redeem(checkin, issued.value.tickets[1].code)
    assert denied["status"] == "error"


async def test_release_cancels_the_pending_order_and_frees_its_quota(
    gw: PretixGateway, admin: PretixAdmin, event: SeriesEvent
) -> None:
    quota = event.quotas[event.dates[1], "standing"]
    free = admin.quota(event.slug, quota)["available_number"]
    order_id = oid()
    assert (await gw.lock(order_id, *standing(event, 1), 3)).outcome is Outcome.DONE
    assert admin.quota(event.slug, quota)["available_number"] == free - 3
    released = await gw.release(order_id)
    assert released.outcome is Outcome.DONE, released
    assert admin.order(event.slug, order_code(order_id))["status"] == "c"
    assert admin.quota(event.slug, quota)["available_number"] == free
    # Released twice: nothing held, DONE; a released order was never paid: not a refund.
    assert (await gw.release(order_id)).outcome is Outcome.DONE
    feed = await gw.supplier_refunds(0)
    assert feed.value is not None
    assert order_id not in {e.order_id for e in feed.value}


async def test_repeated_and_concurrent_locks_make_one_pretix_order(
    gw: PretixGateway, admin: PretixAdmin, event: SeriesEvent
) -> None:
    order_id = oid()
    results = await asyncio.gather(*(gw.lock(order_id, *standing(event), 2) for _ in range(6)))
    # One of them places the order; the others are answered from pretix's idempotency
    # store, or are told the same request is in flight (UNKNOWN, never a second order).
    assert {r.outcome for r in results} <= {Outcome.DONE, Outcome.UNKNOWN}
    assert any(r.outcome is Outcome.DONE for r in results)
    assert {r.value.lock_ref for r in results if r.value} == {order_code(order_id)}
    assert (await gw.lock(order_id, *standing(event), 2)).outcome is Outcome.DONE
    (only,) = ours(admin, event.slug, order_id)
    assert len(only["positions"]) == 2


async def test_sold_out_comes_from_the_quota(pretix: PretixServer, admin: PretixAdmin) -> None:
    ev = admin.create_series(f"so-{uuid.uuid4().hex[:8]}", standing_size=2)
    gw = gateway_for(pretix, ev.slug)
    try:
        ses, tier = session_ref(ev.dates[0]), tier_ref(ev.standing)
        too_many = await gw.lock(oid(), ses, tier, 3)
        assert (too_many.outcome, too_many.error) == (Outcome.FAILED, ErrorCode.SOLD_OUT)
        assert "quota" in too_many.message
        first = oid()
        assert (await gw.lock(first, ses, tier, 2)).outcome is Outcome.DONE
        late = oid()
        sold = await gw.lock(late, ses, tier, 1)
        assert (sold.outcome, sold.error) == (Outcome.FAILED, ErrorCode.SOLD_OUT)
        assert ours(admin, ev.slug, late) == []
        catalog = await gw.catalog()
        assert catalog.value is not None
        assert {t.ref: t.available for t in catalog.value.shows[0].sessions[0].tiers}[tier] == 0
        # Seats come back when the hold is released (a refused order stays refused: pretix
        # answers its key with the first answer, as the platform's create does).
        assert (await gw.release(first)).outcome is Outcome.DONE
        assert (await gw.lock(late, ses, tier, 1)).error == ErrorCode.SOLD_OUT
        assert (await gw.lock(oid(), ses, tier, 1)).outcome is Outcome.DONE
    finally:
        await gw.aclose()


async def test_an_issue_no_query_has_seen_sent_is_fenced_and_can_never_happen(
    gw: PretixGateway, admin: PretixAdmin, event: SeriesEvent
) -> None:
    order_id = oid()
    assert (await gw.lock(order_id, *standing(event), 1)).outcome is Outcome.DONE
    # The issue "was lost before it reached pretix": the query claims its key.
    asked = await gw.query_issue(order_id)
    assert (asked.outcome, asked.error) == (Outcome.FAILED, ErrorCode.NOT_ISSUED)
    # The issue arriving after that is answered with the fence, and pays nothing.
    late = await gw.issue(order_id)
    assert late.outcome is Outcome.FAILED
    assert admin.order(event.slug, order_code(order_id))["status"] == "n"
    assert (await gw.query_issue(order_id)).outcome is Outcome.FAILED
    assert (await gw.release(order_id)).outcome is Outcome.DONE


async def test_a_release_before_the_lock_arrives_claims_it(
    gw: PretixGateway, admin: PretixAdmin, event: SeriesEvent
) -> None:
    order_id = oid()
    released = await gw.release(order_id)
    assert released.outcome is Outcome.DONE, released
    late = await gw.lock(order_id, *standing(event), 1)
    assert late.outcome is Outcome.FAILED
    assert ours(admin, event.slug, order_id) == []


async def test_refund_and_issue_refusals_are_failed(
    gw: PretixGateway, admin: PretixAdmin, event: SeriesEvent
) -> None:
    order_id = oid()
    assert (await gw.lock(order_id, *standing(event), 1)).outcome is Outcome.DONE
    unpaid = await gw.refund(order_id)
    assert (unpaid.outcome, unpaid.error) == (Outcome.FAILED, ErrorCode.REFUSED)
    assert (await gw.release(order_id)).outcome is Outcome.DONE
    cancelled = await gw.issue(order_id)
    assert (cancelled.outcome, cancelled.error) == (Outcome.FAILED, ErrorCode.REFUSED)
    never = await gw.issue(oid())
    assert (never.outcome, never.error) == (Outcome.FAILED, ErrorCode.NOT_FOUND)
    unknown_order = await gw.query_issue(oid())
    assert unknown_order.outcome is Outcome.UNKNOWN  # a query never guesses from a 404
    bad_ref = await gw.lock(oid(), "nonsense", tier_ref(event.standing), 1)
    assert (bad_ref.outcome, bad_ref.error) == (Outcome.FAILED, ErrorCode.INVALID_REQUEST)


# -- the supplier's own refunds --------------------------------------------------------------


async def test_an_order_cancelled_in_pretix_is_a_supplier_refund_in_the_feed(
    gw: PretixGateway, admin: PretixAdmin, event: SeriesEvent
) -> None:
    start = await gw.supplier_refunds(0)
    assert start.value is not None
    cursor = max((e.seq for e in start.value), default=0)
    order_id = oid()
    assert (await gw.lock(order_id, *standing(event), 2)).outcome is Outcome.DONE
    assert (await gw.issue(order_id)).outcome is Outcome.DONE
    admin.cancel_order(event.slug, order_code(order_id))  # the box office, in its backend
    cancelled_at = datetime.fromisoformat(
        admin.order(event.slug, order_code(order_id))["cancellation_date"]
    )
    read = await gw.supplier_refunds(cursor)
    assert read.outcome is Outcome.DONE, read
    assert read.value is not None
    (mine,) = [e for e in read.value if e.order_id == order_id]
    assert mine.refunded_at == cancelled_at
    assert mine.seq > cursor
    # Read again from past it: the same event (same seq) or nothing, never a new one.
    again = await gw.supplier_refunds(mine.seq)
    assert again.value is not None
    assert {e.seq for e in again.value if e.order_id == order_id} <= {mine.seq}
    # Queries agree: issued, then refunded by the supplier.
    assert (await gw.query_issue(order_id)).outcome is Outcome.DONE
    refund = await gw.query_refund(order_id)
    assert refund.value is not None
    assert refund.value.initiated_by == "supplier"


async def test_a_date_cancelled_in_pretix_refunds_every_paid_order_of_it_in_the_feed(
    pretix: PretixServer, admin: PretixAdmin
) -> None:
    ev = admin.create_series(f"cx-{uuid.uuid4().hex[:8]}")
    gw = gateway_for(pretix, ev.slug)
    try:
        ses, tier = session_ref(ev.dates[1]), tier_ref(ev.standing)
        paid = [oid() for _ in range(3)]
        for order_id in paid:
            assert (await gw.lock(order_id, ses, tier, 1)).outcome is Outcome.DONE
            assert (await gw.issue(order_id)).outcome is Outcome.DONE
        held = oid()  # locked, never issued
        assert (await gw.lock(held, ses, tier, 1)).outcome is Outcome.DONE
        other = oid()  # paid, on the other date
        assert (await gw.lock(other, session_ref(ev.dates[0]), tier, 1)).outcome is Outcome.DONE
        assert (await gw.issue(other)).outcome is Outcome.DONE
        pretix.cancel_event(ev.slug, ev.dates[1])  # pretix's own service, as its backend runs
        feed = await gw.supplier_refunds(0)
        assert feed.value is not None, feed
        refunded = {e.order_id for e in feed.value}
        assert set(paid) <= refunded
        assert held not in refunded  # cancelled too, but never paid: nothing to refund
        assert other not in refunded
        assert len({e.seq for e in feed.value}) == len(feed.value)
        for order_id in paid:
            cancelled = admin.order(ev.slug, order_code(order_id))
            (event,) = [e for e in feed.value if e.order_id == order_id]
            assert event.refunded_at == datetime.fromisoformat(cancelled["cancellation_date"])
    finally:
        await gw.aclose()


# -- configuration and secrets ---------------------------------------------------------------


async def test_the_stored_config_holds_the_token_sealed_and_opens_only_with_its_key(
    pretix: PretixServer, event: SeriesEvent
) -> None:
    box = SecretBox(supplier_secrets_key(bytes(range(32))))
    stored = stored_gateway_config("pretix", pretix.gateway_config(event.slug), box)
    assert "token" not in stored
    assert pretix.token not in repr(stored)
    gw = build_gateway("pretix", stored, sealer=box)
    try:
        assert pretix.token not in repr(gw)
        assert (await gw.catalog()).outcome is Outcome.DONE
    finally:
        await gw.aclose()
    with pytest.raises(ValueError, match="sealed"):
        build_gateway("pretix", stored)
    with pytest.raises(SecretBoxError):
        build_gateway("pretix", stored, sealer=SecretBox(supplier_secrets_key(bytes(32))))
    moved = {**stored, "event": "another-event"}  # the sealed token copied to another event
    with pytest.raises(SecretBoxError):
        build_gateway("pretix", moved, sealer=box)


async def test_a_wrong_token_is_refused_and_the_gateway_pickles(
    pretix: PretixServer, event: SeriesEvent
) -> None:
    wrong = build_gateway("pretix", {**pretix.gateway_config(event.slug), "token": "x" * 64})
    try:
        locked = await wrong.lock(oid(), *standing(event), 1)
        assert (locked.outcome, locked.error) == (Outcome.FAILED, ErrorCode.HTTP_4XX)
        assert (await wrong.catalog()).outcome is Outcome.FAILED
    finally:
        await wrong.aclose()
    gw = gateway_for(pretix, event.slug)
    try:
        assert (await gw.catalog()).outcome is Outcome.DONE
        copy = pickle.loads(pickle.dumps(gw))  # noqa: S301 (as it travels to a supplier host)
        assert (await copy.catalog()).outcome is Outcome.DONE
        await copy.aclose()
    finally:
        await gw.aclose()


# -- pretix down -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pretix2() -> Iterator[tuple[PretixServer, SeriesEvent]]:
    """A second pretix of its own, one worker, for the tests that freeze it."""
    server = PretixServer.start(workers=1)
    try:
        client = server.admin()
        try:
            ev = client.create_series("down", standing_size=20)
        finally:
            client.close()
        yield server, ev
    finally:
        server.stop()


async def test_a_closed_port_fails_commands_and_leaves_queries_unknown() -> None:
    cfg = {
        "base_url": f"http://127.0.0.1:{free_port()}",
        "organizer": "showdist",
        "event": "nowhere",
        "token": "t" * 64,
        "timeout_s": 2,
    }
    gw = build_gateway("pretix", cfg)
    order_id = oid()
    try:
        for command in (
            gw.lock(order_id, "date-1", "item-1", 1),
            gw.issue(order_id),
            gw.refund(order_id),
            gw.catalog(),
        ):
            result: CallResult[Any] = await command
            assert (result.outcome, result.error) == (Outcome.FAILED, ErrorCode.CONNECT)
        for query in (gw.query_issue(order_id), gw.query_refund(order_id), gw.release(order_id)):
            answer: CallResult[Any] = await query
            assert (answer.outcome, answer.error) == (Outcome.UNKNOWN, ErrorCode.CONNECT)
        assert (await gw.supplier_refunds(0)).outcome is not Outcome.DONE
    finally:
        await gw.aclose()


async def test_a_lost_lock_reply_then_a_retry_make_one_order_and_a_release_frees_it(
    pretix2: tuple[PretixServer, SeriesEvent],
) -> None:
    server, ev = pretix2
    client = server.admin()
    gw = gateway_for(server, ev.slug, timeout_s=1.5, connect_timeout_s=1.5)
    order_id = oid()
    ses, tier = session_ref(ev.dates[0]), tier_ref(ev.standing)
    try:
        server.pause()
        try:
            lost = await gw.lock(order_id, ses, tier, 2)
            assert (lost.outcome, lost.error) == (Outcome.UNKNOWN, ErrorCode.TIMEOUT)
            frozen = await gw.release(order_id)
            assert frozen.outcome is Outcome.UNKNOWN  # pretix is down: ask again later
            assert (await gw.catalog()).outcome is Outcome.UNKNOWN
        finally:
            server.resume()
        # The request was waiting in pretix's socket: it places the order now, its reply lost.
        deadline = time.monotonic() + 30
        while not ours(client, ev.slug, order_id):
            assert time.monotonic() < deadline, "the lost lock never reached pretix"
            await asyncio.sleep(0.2)
        retried = await gw.lock(order_id, ses, tier, 2)
        assert retried.outcome is Outcome.DONE, retried
        (only,) = ours(client, ev.slug, order_id)
        assert only["status"] == "n"
        assert len(only["positions"]) == 2
        released = await gw.release(order_id)
        assert released.outcome is Outcome.DONE, released
        assert [o["status"] for o in ours(client, ev.slug, order_id)] == ["c"]
    finally:
        await gw.aclose()
        client.close()


async def test_an_issue_whose_reply_is_lost_is_found_issued_by_the_query(
    pretix2: tuple[PretixServer, SeriesEvent],
) -> None:
    server, ev = pretix2
    client = server.admin()
    gw = gateway_for(server, ev.slug, timeout_s=1.5, connect_timeout_s=1.5)
    order_id = oid()
    try:
        locked = await gw.lock(order_id, session_ref(ev.dates[1]), tier_ref(ev.standing), 1)
        assert locked.outcome is Outcome.DONE, locked
        server.pause()
        try:
            lost = await gw.issue(order_id)
            assert (lost.outcome, lost.error) == (Outcome.UNKNOWN, ErrorCode.TIMEOUT)
            asked = await gw.query_issue(order_id)
            assert asked.outcome is Outcome.UNKNOWN  # pretix is down: never a guess
        finally:
            server.resume()
        found = await gw.query_issue(order_id)
        assert found.outcome is Outcome.DONE, found
        assert found.value is not None
        paid = client.order(ev.slug, order_code(order_id))
        assert paid["status"] == "p"
        assert [t.code for t in found.value.tickets] == [p["secret"] for p in paid["positions"]]
        assert len(paid["payments"]) == 1  # paid once
    finally:
        await gw.aclose()
        client.close()
