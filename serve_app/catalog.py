"""Catalog distribution: what a distributor's live grants let it see, incremental sync with a
stable cursor, show detail, and stock fresh to within a few seconds."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from domain.catalog_view import in_delta, show_state
from domain.grants import Grant, any_grant_covers, show_matches
from domain.ids import is_catalog_id
from persistence.redis_store import CachedStock
from serve_app.contract import DISTRIBUTOR, operation
from serve_app.deps import DistributorCaller, state_of
from serve_app.errors import ApiError
from serve_app.hot_paths import hot
from serve_app.models import ShowDetail, ShowPage, Stock
from serve_app.paging import (
    TIME,
    CursorParam,
    LimitParam,
    decode_cursor,
    encode_cursor,
    parse_limit,
    parse_time,
)
from serve_app.state import PlatformState
from serve_app.views import show_detail_view, show_view, ts

router = APIRouter(prefix="/v1")


async def _grants(state: PlatformState, caller: DistributorCaller) -> list[Grant]:
    assert caller.distributor_id is not None
    return await state.accounts.grants_of(caller.distributor_id)


@router.get(
    "/shows",
    **operation(
        DISTRIBUTOR, ok={200: (ShowPage, "a page of shows, by (effective update time, id)")}
    ),
)
async def list_shows(
    request: Request,
    caller: DistributorCaller,
    updated_since: Annotated[str | None, Query(json_schema_extra=TIME)] = None,
    city: str | None = None,
    category: str | None = None,
    limit: LimitParam = None,
    cursor: CursorParam = None,
) -> dict[str, Any]:
    """Without `updated_since`: the shows on sale that the caller may see. With it: every show
    that changed since then for the caller, including shows that went offline or whose grant
    ended (status `withdrawn`), so a mirror can drop them. Ordered by (updated_at, id)."""
    state = state_of(request)
    n = parse_limit(limit)
    since = parse_time("updated_since", updated_since)
    after = decode_cursor(cursor)
    grants = await _grants(state, caller)
    now = state.now()
    rows: list[tuple[datetime, str, dict[str, Any]]] = []
    for row in await state.catalog.list_shows():
        if (city and row["city"] != city) or (category and row["category"] != category):
            continue
        item = state.catalog.item_of(row)
        st = show_state(
            grants, item, show_status=row["status"], show_updated_at=row["updated_at"], now=now
        )
        if since is not None:
            if not in_delta(grants, item, st, since, now):
                continue
        elif not (st.visible and row["status"] == "online"):
            continue
        if after is not None and (st.effective_at, row["id"]) <= after:
            continue
        view = show_view(row, state.tz)
        view["status"] = st.status
        view["updated_at"] = ts(st.effective_at, state.tz)
        rows.append((st.effective_at, row["id"], view))
    rows.sort(key=lambda r: (r[0], r[1]))
    page = rows[:n]
    next_cursor = encode_cursor(page[-1][0], page[-1][1]) if len(rows) > n else None
    return {"items": [v for _, _, v in page], "next_cursor": next_cursor}


@router.get(
    "/shows/{show_id}",
    **operation(
        DISTRIBUTOR,
        ok={200: (ShowDetail, "the show, with the sessions a live grant covers")},
        errors={404: ("not_found",)},
    ),
)
@hot
async def get_show(show_id: str, request: Request, caller: DistributorCaller) -> dict[str, Any]:
    state = state_of(request)
    detail = await state.catalog.show_detail(show_id) if is_catalog_id("shw", show_id) else None
    if detail is None:
        raise ApiError(404, "not_found", "no such show")
    grants = await _grants(state, caller)
    now = state.now()
    item = state.catalog.item_of(detail)
    live = [g for g in grants if g.live_at(now)]
    if not any(show_matches(g, item) for g in live):
        raise ApiError(404, "not_found", "no such show")
    detail["sessions"] = [
        s
        for s in detail["sessions"]
        if any_grant_covers(live, state.catalog.item_of(detail, s["id"]), now)
    ]
    return show_detail_view(detail, state.tz)


@router.get(
    "/sessions/{session_id}/stock",
    **operation(
        DISTRIBUTOR,
        ok={200: (Stock, "each tier's seats, at most a few seconds old")},
        errors={404: ("not_found",), 503: ("supplier_unavailable",)},
    ),
)
async def session_stock(
    session_id: str, request: Request, caller: DistributorCaller
) -> dict[str, Any]:
    state = state_of(request)
    where = (
        await state.catalog.session_for_stock(session_id)
        if is_catalog_id("ses", session_id)
        else None
    )
    if where is None:
        raise ApiError(404, "not_found", "no such session")
    supplier_id, session_ref, show_id = where
    detail = await state.catalog.show_detail(show_id)
    assert detail is not None
    if not any_grant_covers(
        await _grants(state, caller), state.catalog.item_of(detail, session_id), state.now()
    ):
        raise ApiError(404, "not_found", "no such session")
    max_age = state.settings.stock_max_age_seconds
    cached = await state.stock_cache.get(session_id)
    if cached is None or (datetime.now(UTC) - cached.as_of).total_seconds() > max_age:
        cached = await _fresh_stock(state, supplier_id, session_id, session_ref, max_age)
    return {
        "session_id": session_id,
        "tiers": [{"tier_id": t, "available": a} for t, a in cached.tiers],
        "as_of": ts(cached.as_of, state.tz),
    }


async def _fresh_stock(
    state: PlatformState, supplier_id: str, session_id: str, session_ref: str, max_age: float
) -> CachedStock:
    tiers = await state.catalog.tiers_of_session(session_id)
    actor = await state.supplier_actor(supplier_id)
    fresh = None
    if actor is not None:
        try:
            fresh = await actor.session_stock(session_ref, max_age / 2)
        except Exception:  # the supplier is unreachable: fall back to the last synced stock
            fresh = None
    if fresh is None:
        # What the last catalog sync stored; `as_of` says how old it may be.
        return CachedStock(tuple((t, a) for t, _, a in tiers), datetime.now(UTC))
    by_ref = dict(fresh.tiers)
    stock = CachedStock(tuple((t, by_ref.get(ref, 0)) for t, ref, _ in tiers), fresh.as_of)
    await state.stock_cache.put(session_id, stock, ttl_s=max_age)
    return stock
