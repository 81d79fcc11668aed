"""What an order's verdict (`domain.replies`) means in HTTP: a status, and for a refusal the
contract's error code. The body is the order, or the error with the order beside it."""

from __future__ import annotations

from typing import Any

from domain.replies import OrderReply, Verdict
from serve_app.responses import JSONResponse
from serve_app.state import PlatformState
from serve_app.views import order_view

# verdict -> (HTTP status, error code or None for a success)
HTTP_OF: dict[Verdict, tuple[int, str | None]] = {
    Verdict.CREATED: (201, None),
    Verdict.REPLAYED: (200, None),
    Verdict.DONE: (200, None),
    Verdict.IN_PROGRESS: (202, None),
    Verdict.NOT_FOUND: (404, "not_found"),
    Verdict.SOLD_OUT: (409, "sold_out"),
    Verdict.SUPPLIER_UNAVAILABLE: (503, "supplier_unavailable"),
    Verdict.ISSUE_FAILED: (409, "issue_failed"),
    Verdict.LOCK_EXPIRED: (409, "lock_expired"),
    Verdict.INVALID_TRANSITION: (409, "invalid_transition"),
    Verdict.IDEMPOTENCY_CONFLICT: (409, "idempotency_conflict"),
}


def reply_response(reply: OrderReply, state: PlatformState) -> JSONResponse:
    status, code = HTTP_OF[reply.verdict]
    if code is not None:
        body: dict[str, Any] = {"error": {"code": code, "message": reply.message}}
        if reply.order is not None:
            body["order"] = order_view(reply.order, state.tz)
        return JSONResponse(body, status_code=status)
    assert reply.order is not None
    return JSONResponse(order_view(reply.order, state.tz), status_code=status)
