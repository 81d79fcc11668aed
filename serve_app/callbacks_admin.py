"""Callbacks for operators (`/admin/v1/callbacks`, admin key): the outbox's messages by status,
dead ones above all, and sending a dead message again."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from serve_app.contract import ADMIN, operation
from serve_app.deps import AdminCaller, state_of
from serve_app.errors import ApiError
from serve_app.models import CallbackPage, Redelivery
from serve_app.paging import (
    CursorParam,
    LimitParam,
    decode_cursor,
    encode_cursor,
    parse_limit,
)
from serve_app.views import ts

router = APIRouter(prefix="/admin/v1/callbacks")

_STATUSES = ("pending", "delivered", "dead")


def _after(cursor: str | None) -> tuple[datetime, int] | None:
    after = decode_cursor(cursor)
    if after is None:
        return None
    at, row_id = after
    if not (row_id.isascii() and row_id.isdigit()):
        raise ApiError(422, "invalid_request", "cursor: not a cursor this API issued")
    return at, int(row_id)


@router.get(
    "",
    **operation(ADMIN, ok={200: (CallbackPage, "a page of messages, oldest first")}),
)
async def list_callbacks(
    request: Request,
    _caller: AdminCaller,
    status: Annotated[str | None, Query(json_schema_extra={"enum": list(_STATUSES)})] = None,
    distributor_id: str | None = None,
    limit: LimitParam = None,
    cursor: CursorParam = None,
) -> dict[str, Any]:
    """The messages, oldest first; `status=dead` lists the dead letters."""
    state = state_of(request)
    if status is not None and status not in _STATUSES:
        raise ApiError(422, "invalid_request", f"status: one of {', '.join(_STATUSES)}")
    n = parse_limit(limit)
    found = await state.work.list_callbacks(
        status=status, distributor_id=distributor_id, after=_after(cursor), limit=n
    )
    items = [
        {
            "id": m["id"],
            "order_id": m["order_id"],
            "distributor_id": m["distributor_id"],
            "url": m["url"],
            "status": m["status"],
            "attempts": m["attempts"],
            "last_error": m["last_error"],
            "created_at": ts(m["created_at"], state.tz),
            "next_attempt_at": ts(m["next_attempt_at"], state.tz),
            "delivered_at": ts(m["delivered_at"], state.tz),
            "dead_at": ts(m["dead_at"], state.tz),
        }
        for m in found
    ]
    last = found[-1] if len(found) == n else None
    next_cursor = None if last is None else encode_cursor(last["created_at"], str(last["id"]))
    return {"items": items, "next_cursor": next_cursor}


@router.post(
    "/{message_id}/redeliver",
    **operation(
        ADMIN,
        ok={200: (Redelivery, "pending again, from its first attempt, due now")},
        errors={404: ("not_found",), 409: ("invalid_transition",)},
    ),
)
async def redeliver_callback(
    message_id: str, request: Request, _caller: AdminCaller
) -> dict[str, Any]:
    """A dead message is sent again: pending, from its first attempt, due now."""
    state = state_of(request)
    # Message ids are positive 64-bit integers; anything else names no message.
    if not (message_id.isascii() and message_id.isdigit() and len(message_id) <= 18):
        raise ApiError(404, "not_found", "no such callback")
    now = state.now()
    refused = await state.work.redeliver_callback(int(message_id), now)
    if refused == "missing":
        raise ApiError(404, "not_found", "no such callback")
    if refused is not None:
        raise ApiError(409, "invalid_transition", f"the callback is {refused}, not dead")
    return {
        "id": int(message_id),
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": ts(now, state.tz),
    }
