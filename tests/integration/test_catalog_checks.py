"""Supplier data checked at the door, on both databases: `apply_catalog` keeps a refused tier
with its reason but never offers it for sale, normalises a currency's case, stores the sync's
report on the supplier's row, and a tier whose data is put right is sold again."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from persistence.catalog import REPORT_LIST_MAX, CatalogRepository, catalog_id
from persistence.tables import tiers
from suppliers.gateway import Catalog, CatalogSession, CatalogShow, CatalogTier

GOOD = CatalogTier("good", "Stalls", 38000, 36000, 32400, "CNY", 10)
BAD = {
    "negative": CatalogTier("negative", "Neg", 38000, -100, -200, "CNY", 10),
    "settlement_above": CatalogTier("settlement_above", "Sab", 38000, 36000, 40000, "CNY", 10),
    "face_below": CatalogTier("face_below", "Fbp", 30000, 36000, 32400, "CNY", 10),
    "rmb": CatalogTier("rmb", "Rmb", 38000, 36000, 32400, "RMB", 10),
    "huge": CatalogTier("huge", "Huge", 2**70, 36000, 32400, "CNY", 10),
}
LOWER = CatalogTier("lower", "Lower", 38000, 36000, 32400, "cny", 2**40)


def catalog(now: datetime, *tier_list: CatalogTier) -> Catalog:
    session = CatalogSession("SE", now + timedelta(days=30), "online", tier_list)
    show = CatalogShow(
        "SH", "Show", "上海", "concert", "Venue", now + timedelta(days=30), "online", (session,)
    )
    return Catalog((show,))


def ids(sup: str, ref: str) -> tuple[str, str]:
    return catalog_id("ses", sup, "SH", "SE"), catalog_id("tir", sup, "SH", "SE", ref)


async def tier_row(engine: AsyncEngine, tier_id: str) -> dict[str, Any]:
    async with engine.connect() as conn:
        return dict((await conn.execute(select(tiers).where(tiers.c.id == tier_id))).one()._mapping)


async def test_refused_tiers_are_kept_with_their_reason_and_never_for_sale(
    engine: AsyncEngine, now: datetime
) -> None:
    repo = CatalogRepository(engine)
    sup = (await repo.create_supplier("Sandbox", "sandbox", {}, now)).id
    assert await repo.sync_report(sup) == (None, None)
    await repo.apply_catalog(sup, catalog(now, GOOD, LOWER, *BAD.values()), now)

    session_id, good_id = ids(sup, "good")
    reasons = {}
    for ref in BAD:
        row = await tier_row(engine, ids(sup, ref)[1])
        reasons[ref] = row["refused_reason"]
        assert await repo.tier_for_sale(session_id, row["id"]) is None
    assert reasons == {
        "negative": "negative_price: price -100 < 0",
        "settlement_above": "settlement_above_price: settlement_price 40000 > price 36000",
        "face_below": "face_value_below_price: face_value 30000 < price 36000",
        "rmb": "bad_currency: 'RMB' is not an ISO 4217 code",
        "huge": f"price_too_large: face_value {2**70} > {10**16}",
    }
    # the values the columns can hold are kept as the supplier gave them; the rest is 0
    negative = await tier_row(engine, ids(sup, "negative")[1])
    assert (negative["price"], negative["settlement_price"]) == (-100, -200)
    assert (await tier_row(engine, ids(sup, "huge")[1]))["face_value"] == 0

    good = await repo.tier_for_sale(session_id, good_id)
    assert good is not None
    assert (good.price, good.settlement_price, good.currency) == (36000, 32400, "CNY")
    lower = await repo.tier_for_sale(session_id, ids(sup, "lower")[1])
    assert lower is not None
    assert lower.currency == "CNY"  # normalised, stored and sold upper case
    assert (await tier_row(engine, ids(sup, "lower")[1]))["available"] == 2**31 - 1

    # Distributors do not see refused tiers, in show detail or stock.
    detail = await repo.show_detail(catalog_id("shw", sup, "SH"))
    assert detail is not None
    assert sorted(t["ref"] for t in detail["sessions"][0]["tiers"]) == ["good", "lower"]
    assert sorted(ref for _, ref, _ in await repo.tiers_of_session(session_id)) == [
        "good",
        "lower",
    ]


async def test_the_sync_report_counts_everything_and_lists_refusals(
    engine: AsyncEngine, now: datetime
) -> None:
    repo = CatalogRepository(engine)
    sup = (await repo.create_supplier("Sandbox", "sandbox", {}, now)).id
    written = await repo.apply_catalog(sup, catalog(now, GOOD, LOWER, *BAD.values()), now)
    synced_at, report = await repo.sync_report(sup)
    assert synced_at == now
    assert report is not None
    assert {k: v for k, v in report.items() if k not in ("refused", "normalised")} == {
        "shows": 1,
        "sessions": 1,
        "tiers": 7,
        "tiers_refused": 5,
        "tiers_normalised": 1,
        "rows_changed": written,
    }
    assert {(r["tier_ref"], r["reason"].split(":")[0]) for r in report["refused"]} == {
        ("negative", "negative_price"),
        ("settlement_above", "settlement_above_price"),
        ("face_below", "face_value_below_price"),
        ("rmb", "bad_currency"),
        ("huge", "price_too_large"),
    }
    assert all(
        (r["show_ref"], r["session_ref"], r["tier_id"]) == ("SH", "SE", ids(sup, r["tier_ref"])[1])
        for r in report["refused"]
    )
    assert report["normalised"] == [
        {
            "tier_id": ids(sup, "lower")[1],
            "show_ref": "SH",
            "session_ref": "SE",
            "tier_ref": "lower",
            "currency_given": "cny",
            "currency": "CNY",
        }
    ]
    # A later sync replaces the report.
    later = now + timedelta(minutes=1)
    await repo.apply_catalog(sup, catalog(now, GOOD), later)
    synced_at, report = await repo.sync_report(sup)
    assert synced_at == later
    assert report is not None
    assert (report["tiers"], report["tiers_refused"], report["refused"]) == (1, 0, [])


async def test_the_report_lists_at_most_its_limit_but_counts_all(
    engine: AsyncEngine, now: datetime
) -> None:
    repo = CatalogRepository(engine)
    sup = (await repo.create_supplier("Sandbox", "sandbox", {}, now)).id
    many = [CatalogTier(f"t{i}", "x", 1, 2, 1, "CNY", 1) for i in range(REPORT_LIST_MAX + 5)]
    await repo.apply_catalog(sup, catalog(now, *many), now)
    _, report = await repo.sync_report(sup)
    assert report is not None
    assert report["tiers_refused"] == REPORT_LIST_MAX + 5
    assert len(report["refused"]) == REPORT_LIST_MAX


async def test_a_tier_refused_then_put_right_is_sold_again_and_each_change_counts(
    engine: AsyncEngine, now: datetime
) -> None:
    repo = CatalogRepository(engine)
    sup = (await repo.create_supplier("Sandbox", "sandbox", {}, now)).id
    session_id, tier_id = ids(sup, "good")
    bad = CatalogTier("good", "Stalls", 38000, 36000, 40000, "CNY", 10)
    await repo.apply_catalog(sup, catalog(now, bad), now)
    assert await repo.tier_for_sale(session_id, tier_id) is None
    t1 = now + timedelta(minutes=1)
    assert await repo.apply_catalog(sup, catalog(now, GOOD), t1) == 1
    assert await repo.tier_for_sale(session_id, tier_id) is not None
    row = await tier_row(engine, tier_id)
    assert (row["refused_reason"], row["updated_at"]) == (None, t1)
    t2 = now + timedelta(minutes=2)
    assert await repo.apply_catalog(sup, catalog(now, GOOD), t2) == 0  # nothing changed
    assert await repo.apply_catalog(sup, catalog(now, bad), t2) == 1  # refused again: a change
    assert await repo.tier_for_sale(session_id, tier_id) is None
    # The show's update time moves with its refused tier, so a mirror learns of it.
    [show] = await repo.list_shows()
    assert show["updated_at"] == t2
