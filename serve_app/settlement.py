"""Settlement for analysts (`/admin/v1/settlement`, admin keys): periods with totals, a
period's snapshot (from the settlement actor while open, from its statement once closed),
closing a period, and a period's flows as CSV."""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from ray.exceptions import RayActorError, RayTaskError

from actors.settlement_actor import settlement_actor_handle
from persistence.settlement import (
    BadPeriod,
    PeriodNotOver,
    csv_lines,
    flows_of_period,
    parse_period,
)
from serve_app.app import admin, state_of
from serve_app.auth import Caller
from serve_app.errors import ApiError
from serve_app.paging import parse_limit
from serve_app.responses import JSONResponse
from serve_app.state import PlatformState

log = logging.getLogger(__name__)
AdminCaller = Annotated[Caller, Depends(admin)]
router = APIRouter(prefix="/admin/v1/settlement")

_handles: dict[str, Any] = {}


def _period(value: str) -> str:
    try:
        return parse_period(value)
    except BadPeriod as exc:
        raise ApiError(422, "invalid_request", f"period: {exc}") from exc


async def _ask(state: PlatformState, method: str, *args: Any) -> Any:
    """Call the settlement actor, once more with a fresh handle if it was being replaced."""
    key = state.settings.instance
    for attempt in (1, 2):
        handle = _handles.get(key)
        if handle is None:
            handle = _handles[key] = settlement_actor_handle(state.settings)
        try:
            return await getattr(handle, method).remote(*args)
        except RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, PeriodNotOver):
                raise ApiError(
                    409, "period_not_over", "a period can be closed only once it is over"
                ) from exc
            if isinstance(cause, BadPeriod):
                raise ApiError(422, "invalid_request", f"period: {cause}") from exc
            log.exception("settlement actor call %s failed", method)
            raise ApiError(503, "settlement_unavailable", "please retry shortly") from exc
        except RayActorError as exc:
            # The actor died and is restarting (it rebuilds from the database): try again.
            _handles.pop(key, None)
            if attempt == 2:
                raise ApiError(503, "settlement_unavailable", "please retry shortly") from exc
    raise AssertionError("unreachable")


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


@router.get("/periods")
async def list_periods(
    request: Request, _caller: AdminCaller, limit: int | None = None, cursor: str | None = None
) -> dict[str, Any]:
    """Every period that has flows or a row, oldest first, with its totals per currency."""
    state = state_of(request)
    n = parse_limit(limit)
    after = _decode(cursor)
    lines: list[dict[str, Any]] = await _ask(state, "periods")
    page = [line for line in lines if after is None or line["period"] > after][:n]
    more = len(page) == n and any(line["period"] > page[-1]["period"] for line in lines)
    return {"items": page, "next_cursor": _encode(page[-1]["period"]) if more else None}


@router.get("/periods/{period}")
async def get_snapshot(period: str, request: Request, _caller: AdminCaller) -> dict[str, Any]:
    snapshot: dict[str, Any] = await _ask(state_of(request), "snapshot", _period(period))
    return snapshot


@router.post(
    "/periods/{period}/close",
    status_code=201,
    responses={
        200: {"description": "closed already: the stored statement, unchanged"},
        409: {"description": "period_not_over: the period is today or later"},
    },
)
async def close(period: str, request: Request, _caller: AdminCaller) -> JSONResponse:
    """201 with the new statement; 200 with the stored one if the period was closed already."""
    statement, created = await _ask(state_of(request), "close", _period(period))
    return JSONResponse(statement, status_code=201 if created else 200)


@router.get(
    "/periods/{period}/flows.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "header row, one row a flow"}},
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
