"""The pretix gateway's pure mapping (suppliers/pretix/mapping.py) and its configuration
model: order codes, refs, money, the catalog built from pretix data, order states, feed
sequence numbers. No pretix needed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from suppliers.pretix.config import PretixConfig
from suppliers.pretix.mapping import (
    CODE_ALPHABET,
    UNLIMITED_STOCK,
    CatalogInput,
    CatalogView,
    OrderState,
    TierRef,
    build_catalog,
    feed_seq,
    idempotency_key,
    minor_units,
    order_code,
    parse_session_ref,
    parse_tier_ref,
    scaled_price,
    seq_time,
    session_ref,
    tier_ref,
)
from suppliers.registry import GATEWAY_KINDS, gateway_config

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@given(st.text(min_size=1, max_size=200))
def test_an_order_code_is_a_valid_pretix_code_and_always_the_same(order_id: str) -> None:
    code = order_code(order_id)
    assert len(code) == 16
    assert set(code) <= set(CODE_ALPHABET)
    assert "I" not in code and "O" not in code  # noqa: PT018 (pretix refuses both)
    assert order_code(order_id) == code
    assert len(idempotency_key("issue", order_id)) <= 190  # pretix's column


def test_different_orders_get_different_codes_and_keys() -> None:
    ids = [f"ord_{n}" for n in range(20_000)]
    assert len({order_code(i) for i in ids}) == len(ids)
    assert idempotency_key("lock", "ord_1") != idempotency_key("issue", "ord_1")


def test_refs_round_trip_and_foreign_refs_are_refused() -> None:
    assert parse_session_ref(session_ref(17)) == 17
    assert parse_session_ref(session_ref(None)) is None
    assert parse_tier_ref(tier_ref(3)) == TierRef(3)
    assert parse_tier_ref(tier_ref(3, 9)) == TierRef(3, 9)
    for bad in ("date-", "date-x", "date--1", "e2e_session", "date-١٢"):
        with pytest.raises(ValueError, match="session ref"):
            parse_session_ref(bad)
    for bad in ("item-", "item-1-var-", "item-1-x-2", "tier", "item-1-var-2-3", "item-٣"):
        with pytest.raises(ValueError, match="tier ref"):
            parse_tier_ref(bad)


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("38.00", "EUR", 3800),
        ("0.01", "EUR", 1),
        ("1500.00", "JPY", 1500),
        ("12.345", "BHD", 12345),
        ("0", "CNY", 0),
        ("99999999.99", "USD", 9_999_999_999),
    ],
)
def test_prices_are_exact_minor_units_of_their_currency(
    amount: str, currency: str, minor: int
) -> None:
    assert minor_units(amount, currency) == minor


@pytest.mark.parametrize(
    ("amount", "currency"),
    [("1500.50", "JPY"), ("0.001", "EUR"), ("NaN", "EUR"), ("Infinity", "EUR"), ("x", "EUR")],
)
def test_a_price_that_is_not_whole_minor_units_is_refused(amount: str, currency: str) -> None:
    with pytest.raises(ValueError, match=r"price|minor units"):
        minor_units(amount, currency)
    with pytest.raises(ValueError, match="decimal string"):
        minor_units(38.0, "EUR")


@given(st.integers(0, 10**12), st.integers(0, 10_000), st.integers(0, 10_000))
def test_derived_prices_never_break_the_tier_rule(face: int, a: int, b: int) -> None:
    settlement_bp, distribution_bp = sorted((a, b))
    price = scaled_price(face, distribution_bp)
    settlement = scaled_price(face, settlement_bp)
    assert 0 <= settlement <= price <= face


# -- catalog ---------------------------------------------------------------------------------


def _event(**over: Any) -> dict[str, Any]:
    return {
        "slug": "tour",
        "name": {"de": "Tournee", "en": "Tour"},
        "currency": "EUR",
        "live": True,
        "has_subevents": True,
        "timezone": "Europe/Berlin",
        "date_from": "2026-12-10T19:00:00Z",
        "location": {"en": "Big Hall\nMain St 1\nBerlin"},
        "meta_data": {"city": "Berlin"},
        **over,
    }


def _item(item_id: int, price: str, **over: Any) -> dict[str, Any]:
    return {
        "id": item_id,
        "name": {"en": f"P{item_id}"},
        "default_price": price,
        "active": True,
        "admission": True,
        "all_sales_channels": True,
        "has_variations": False,
        "variations": [],
        **over,
    }


def _date(sub_id: int, when: str, **over: Any) -> dict[str, Any]:
    return {"id": sub_id, "date_from": when, "active": True, **over}


def _quota(sub: int | None, items: list[int], number: int | None, **over: Any) -> dict[str, Any]:
    return {
        "subevent": sub,
        "items": items,
        "variations": over.pop("variations", []),
        "available": number is None or number > 0,
        "available_number": number,
        **over,
    }


def test_a_series_catalog_takes_dates_overrides_variations_and_the_tightest_quota() -> None:
    seated = _item(
        2,
        "55.00",
        has_variations=True,
        variations=[
            {"id": 21, "value": {"en": "Front"}, "price": "80.00", "active": True},
            {"id": 22, "value": {"en": "Back"}, "price": "60.00", "active": False},
        ],
    )
    data = CatalogInput(
        event=_event(),
        items=[_item(1, "38.00"), seated, _item(3, "5.00", admission=False)],
        subevents=[
            _date(
                10,
                "2026-12-10T19:00:00Z",
                item_price_overrides=[{"item": 1, "price": "40.00", "disabled": False}],
            ),
            _date(
                11,
                "2026-12-11T19:00:00Z",
                item_price_overrides=[{"item": 1, "price": None, "disabled": True}],
            ),
            _date(12, "2026-11-01T19:00:00Z"),  # past
            _date(13, "2026-12-20T19:00:00Z", active=False),
        ],
        quotas=[
            _quota(10, [1], 7),
            _quota(10, [1, 2], 3, variations=[21, 22]),  # a shared quota: the tighter one
            _quota(10, [2], None, variations=[21]),  # unlimited
            _quota(11, [2], 0, variations=[21]),
        ],
    )
    built = build_catalog(data, CatalogView(distribution_bp=9000, settlement_bp=8000), NOW)
    (show,) = built.catalog.shows
    assert (show.ref, show.title, show.city, show.venue, show.category) == (
        "tour",
        "Tour",
        "Berlin",
        "Big Hall",
        "live",
    )
    assert [s.ref for s in show.sessions] == ["date-10", "date-11", "date-12", "date-13"]
    assert [s.status for s in show.sessions] == ["online", "online", "offline", "offline"]
    assert show.sessions[0].starts_at.utcoffset() == timedelta(hours=1)  # Berlin in December
    first = {t.ref: t for t in show.sessions[0].tiers}
    assert set(first) == {"item-1", "item-2-var-21"}  # no inactive variation, no non-admission
    assert (first["item-1"].face_value, first["item-1"].price) == (4000, 3600)
    assert first["item-1"].settlement_price == 3200
    assert first["item-1"].available == 3
    assert first["item-2-var-21"].available == 3
    assert first["item-2-var-21"].name == "P2 - Front"
    second = {t.ref: t for t in show.sessions[1].tiers}
    assert set(second) == {"item-2-var-21"}  # the product is disabled on that date
    assert second["item-2-var-21"].available == 0
    assert {t.ref: t.available for t in show.sessions[2].tiers} == {
        "item-1": 0,  # no quota on that date: nothing to sell
        "item-2-var-21": 0,
    }
    assert built.skipped == []


def test_a_single_event_unlimited_quota_channels_and_unrepresentable_prices() -> None:
    data = CatalogInput(
        event=_event(has_subevents=False, currency="JPY", meta_data={}, location=None),
        items=[
            _item(1, "1500.00"),
            _item(2, "1500.50"),
            _item(3, "900.00", all_sales_channels=False, limit_sales_channels=["box"]),
        ],
        subevents=[],
        quotas=[_quota(None, [1, 2, 3], None)],
    )
    built = build_catalog(data, CatalogView(city="Tokyo", locale="de"), NOW)
    (show,) = built.catalog.shows
    assert (show.title, show.city, show.venue) == ("Tournee", "Tokyo", "")
    (ses,) = show.sessions
    assert ses.ref == "event"
    assert [(t.ref, t.face_value, t.currency, t.available) for t in ses.tiers] == [
        ("item-1", 1500, "JPY", UNLIMITED_STOCK)
    ]
    assert built.skipped == ["event/item-2: not a whole number of JPY minor units"]
    other = build_catalog(data, CatalogView(sales_channel="box"), NOW)
    assert {t.ref for t in other.catalog.shows[0].sessions[0].tiers} == {"item-1", "item-3"}


def test_an_event_not_live_or_outside_its_presale_is_offline() -> None:
    base = CatalogInput(
        _event(live=False), [_item(1, "1.00")], [_date(1, "2026-12-10T19:00:00Z")], []
    )
    built = build_catalog(base, CatalogView(), NOW)
    assert built.catalog.shows[0].status == "offline"
    assert built.catalog.shows[0].sessions[0].status == "offline"
    later = CatalogInput(
        _event(presale_start="2026-12-01T00:00:00Z"),
        [_item(1, "1.00")],
        [_date(1, "2026-12-10T19:00:00Z")],
        [],
    )
    assert build_catalog(later, CatalogView(), NOW).catalog.shows[0].sessions[0].status == "offline"
    ended = CatalogInput(
        _event(),
        [_item(1, "1.00")],
        [_date(1, "2026-12-10T19:00:00Z", presale_end="2026-11-20T00:00:00Z")],
        [],
    )
    assert build_catalog(ended, CatalogView(), NOW).catalog.shows[0].sessions[0].status == "offline"


# -- orders and the feed ---------------------------------------------------------------------


def _order(**over: Any) -> dict[str, Any]:
    return {
        "code": "ABC12",
        "status": "p",
        "api_meta": {"showdist_order_id": "ord_x"},
        "cancellation_date": None,
        "last_modified": "2026-11-25T10:00:00.123456Z",
        "payments": [
            {
                "local_id": 1,
                "state": "confirmed",
                "amount": "80.00",
                "provider": "manual",
                "payment_date": "2026-11-25T09:59:00Z",
            }
        ],
        "refunds": [],
        "positions": [
            {"secret": "s1", "seat": None, "canceled": False},
            {"secret": "s2", "seat": {"name": "A-12"}, "canceled": False},
            {"secret": "s3", "seat": None, "canceled": True},
        ],
        **over,
    }


def test_an_order_state_reads_payment_refunds_and_tickets() -> None:
    state = OrderState.of(_order())
    assert (state.status, state.ever_paid, str(state.paid_amount)) == ("p", True, "80.00")
    assert state.showdist_order_id == "ord_x"
    assert state.payment == (1, "manual")
    assert [(t.code, t.seat) for t in state.tickets] == [("s1", None), ("s2", "A-12")]
    refunded = OrderState.of(
        _order(
            status="c",
            cancellation_date="2026-11-25T11:00:00Z",
            refunds=[{"state": "done", "amount": "80.00", "comment": "showdist refund ord_x"}],
        )
    )
    assert (refunded.ever_paid, refunded.refunded_by_us, str(refunded.paid_amount)) == (
        True,
        True,
        "0.00",
    )
    released = OrderState.of(_order(status="c", payments=[]))
    assert released.ever_paid is False
    with pytest.raises(ValueError, match="pretix order"):
        OrderState.of(_order(status="x"))
    with pytest.raises(ValueError, match="secret"):
        OrderState.of(_order(positions=[{"secret": ""}]))


@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1)),
    st.text(min_size=5, max_size=16),
)
def test_a_feed_seq_keeps_its_time_and_fits_the_database(moment: datetime, code: str) -> None:
    at = moment.replace(tzinfo=UTC)
    seq = feed_seq(at, code)
    assert 0 < seq < 2**63
    assert seq_time(seq) == at
    assert feed_seq(at + timedelta(microseconds=1), code) > seq
    assert seq_time(0) is None


# -- configuration ---------------------------------------------------------------------------


def _cfg(**over: Any) -> dict[str, Any]:
    return {
        "base_url": "http://127.0.0.1:8345/",
        "organizer": "acme",
        "event": "tour-2026",
        "token": "abc123",
        **over,
    }


def test_the_config_model_has_defaults_and_refuses_what_it_does_not_know() -> None:
    assert "pretix" in GATEWAY_KINDS
    cfg = gateway_config("pretix", _cfg())
    assert isinstance(cfg, PretixConfig)
    assert cfg.base_url == "http://127.0.0.1:8345"
    assert (cfg.sales_channel, cfg.distribution_bp, cfg.settlement_bp) == ("web", 10_000, 10_000)
    assert (cfg.timezone, cfg.hold_seconds) == (None, 960)
    assert "abc123" not in repr(cfg)
    for bad in (
        _cfg(colour="red"),
        _cfg(base_url="ftp://x"),
        _cfg(base_url="http://x/?a=1"),
        _cfg(organizer="a b"),
        _cfg(event=""),
        _cfg(token="has space"),
        _cfg(distribution_bp=10_001),
        _cfg(settlement_bp=9000, distribution_bp=8000),
        _cfg(timezone="Mars/Olympus"),
        _cfg(timeout_s=float("inf")),
        _cfg(hold_seconds=59),
    ):
        with pytest.raises(ValidationError) as caught:
            gateway_config("pretix", bad)
        assert "has space" not in str(caught.value.errors(include_input=False))
    with pytest.raises(ValueError, match="unknown supplier gateway kind"):
        gateway_config("carrier-pigeon", {})
