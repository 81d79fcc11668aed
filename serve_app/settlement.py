"""Settlement for analysts (`/admin/v1/settlement`, admin keys): periods with totals, a
period's snapshot (from the settlement actor while open, from its statement once closed),
closing a period, and a period's flows as CSV."""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import Response

from actors.interfaces import SettlementCalls
from actors.remote import ActorUnavailable
from domain.settlement import (
    BadPeriod,
    PeriodNotOver,
    PeriodSummary,
    PeriodView,
    csv_lines,
    parse_period,
)
from persistence.settlement import flows_of_period
from serve_app.contract import ADMIN, operation
from serve_app.deps import AdminCaller, state_of
from serve_app.errors import ApiError, refusal
from serve_app.models import PeriodPage, PeriodSnapshot
from serve_app.paging import CursorParam, LimitParam, parse_limit
from serve_app.responses import JSONResponse
from serve_app.state import PlatformState

log = logging.getLogger(__name__)
router = APIRouter(prefix="/admin/v1/settlement")

T = TypeVar("T")


def _period(value: str) -> str:
    try:
        return parse_period(value)
    except BadPeriod as exc:
        raise ApiError(422, "invalid_request", f"period: {exc}") from exc


refusal(
    PeriodNotOver,
    lambda _exc: ApiError(409, "period_not_over", "a period can be closed only once it is over"),
)
refusal(BadPeriod, lambda exc: ApiError(422, "invalid_request", f"period: {exc}"))


async def _ask(state: PlatformState, call: Callable[[SettlementCalls], Awaitable[T]]) -> T:
    """Call the settlement actor, once more if it could not be reached (it is restarting,
    or was replaced: it rebuilds from the database)."""
    try:
        return await call(state.settlement)
    except ActorUnavailable as exc:
        if exc.cause is not None:
            raise
        state.forget_settlement()
        return await call(state.settlement)


def _encode(period: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([period]).encode()).decode().rstrip("=")


def _decode(cursor: str | None) -> str | None:
    if not cursor:
        return None
    try:
        (period,) = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return parse_period(period)
    except (ValueError, TypeError) as exc:
        raise ApiError(422, "invalid_request", "cursor: not a cursor this API issued") from exc


_SETTLEMENT = {503: ("settlement_unavailable",)}


@router.get(
    "/periods",
    **operation(
        ADMIN, ok={200: (PeriodPage, "a page of periods, oldest first")}, errors=_SETTLEMENT
    ),
)
async def list_periods(
    request: Request,
    _caller: AdminCaller,
    limit: LimitParam = None,
    cursor: CursorParam = None,
) -> dict[str, Any]:
    """Every period that has flows or a row, oldest first, with its totals per currency."""
    state = state_of(request)
    n = parse_limit(limit)
    after = _decode(cursor)
    lines: list[PeriodSummary] = await _ask(state, lambda actor: actor.periods())
    page = [line for line in lines if after is None or line.period > after][:n]
    more = len(page) == n and any(line.period > page[-1].period for line in lines)
    return {
        "items": [line.as_dict() for line in page],
        "next_cursor": _encode(page[-1].period) if more else None,
    }


@router.get(
    "/periods/{period}",
    **operation(
        ADMIN,
        ok={200: (PeriodSnapshot, "an open period's snapshot, or a closed one's statement")},
        errors=_SETTLEMENT,
    ),
)
async def get_snapshot(period: str, request: Request, _caller: AdminCaller) -> dict[str, Any]:
    key = _period(period)
    view: PeriodView = await _ask(state_of(request), lambda actor: actor.snapshot(key))
    return view.as_dict()


@router.post(
    "/periods/{period}/close",
    status_code=201,
    **operation(
        ADMIN,
        ok={
            201: (PeriodSnapshot, "closed now: the new statement"),
            200: (PeriodSnapshot, "closed before: the stored statement, unchanged"),
        },
        errors={**_SETTLEMENT, 409: ("period_not_over",)},
    ),
)
async def close(period: str, request: Request, _caller: AdminCaller) -> JSONResponse:
    """201 with the new statement; 200 with the stored one if the period was closed already."""
    statement: PeriodView
    key = _period(period)
    statement, created = await _ask(state_of(request), lambda actor: actor.close(key))
    return JSONResponse(statement.as_dict(), status_code=201 if created else 200)


@router.get(
    "/periods/{period}/flows.csv",
    response_class=Response,
    **operation(
        ADMIN,
        ok={
            200: {
                "description": "CSV: a header row, then one row a flow",
                "content": {"text/csv": {"schema": {"type": "string"}}},
            }
        },
    ),
)
async def flows_csv(period: str, request: Request, _caller: AdminCaller) -> Response:
    state = state_of(request)
    key = _period(period)
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(
        csv_lines(await flows_of_period(state.engine, key), state.tz)
    )
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="flows-{key}.csv"'},
    )
