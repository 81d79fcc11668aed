"""The admin API for operators (`/admin/v1`, signed with admin keys)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from domain.order import IssuedTicket
from domain.status import OrderStatus
from serve_app.app import admin, ask_host, reply_response, state_of
from serve_app.auth import Caller
from serve_app.errors import ApiError, describe_validation, error_response
from serve_app.paging import decode_cursor, encode_cursor, parse_limit
from serve_app.views import order_view, ts

AdminCaller = Annotated[Caller, Depends(admin)]
router = APIRouter(prefix="/admin/v1")


def _bool(name: str, value: str | None) -> bool | None:
    if value is None:
        return None
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise ApiError(422, "invalid_request", f"{name}: expected true or false")


@router.get("/orders")
async def list_orders(
    request: Request,
    _caller: AdminCaller,
    status: str | None = None,
    supplier_id: str | None = None,
    negotiating: str | None = None,
    flagged: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> dict[str, Any]:
    state = state_of(request)
    if status is not None and status not in OrderStatus.__members__:
        raise ApiError(422, "invalid_request", f"status: unknown status {status!r}")
    n = parse_limit(limit)
    found = await state.orders.list_admin(
        status=status,
        supplier_id=supplier_id,
        negotiating=_bool("negotiating", negotiating),
        flagged=_bool("flagged", flagged),
        after=decode_cursor(cursor),
        limit=n,
    )
    items = []
    for o in found:
        view = order_view(o, state.tz)
        view["distributor_id"] = o.distributor_id
        items.append(view)
    next_cursor = encode_cursor(found[-1].updated_at, found[-1].id) if len(found) == n else None
    return {"items": items, "next_cursor": next_cursor}


@router.get("/orders/{order_id}")
async def get_order(order_id: str, request: Request, _caller: AdminCaller) -> dict[str, Any]:
    state = state_of(request)
    order = await state.orders.get(order_id)
    if order is None:
        raise ApiError(404, "not_found", "no such order")
    view = order_view(order, state.tz)
    view["distributor_id"] = order.distributor_id
    view["settlement_price"] = order.settlement_price
    view["negotiations"] = [
        {
            "kind": n.kind,
            "status": n.status,
            "started_at": ts(n.started_at, state.tz),
            "next_poll_at": ts(n.next_poll_at, state.tz),
            "give_up_at": ts(n.give_up_at, state.tz),
            "attempts": n.attempts,
            "last_error": n.last_error,
            "resolution": n.resolution,
        }
        for n in await state.work.negotiations_of(order_id)
    ]
    release = await state.work.release_of(order_id)
    view["release"] = (
        None if release is None else {"status": release["status"], "attempts": release["attempts"]}
    )
    refund = await state.work.supplier_refund_of(order_id)
    view["supplier_refund"] = (
        None
        if refund is None
        else {
            "refunded_at": ts(refund["refunded_at"], state.tz),
            "initiated_by": refund["initiated_by"],
        }
    )
    view["callbacks"] = [
        {"status": c["status"], "attempts": c["attempts"], "last_error": c["last_error"]}
        for c in await state.work.callbacks_of(order_id)
    ]
    return view


class ResolveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["cancel", "issued", "retry"]
    tickets: list[dict[str, str | None]] = Field(default_factory=list)
    note: str = Field(default="", max_length=500)


@router.post("/orders/{order_id}/resolve")
async def resolve_order(order_id: str, request: Request, _caller: AdminCaller) -> JSONResponse:
    """Decide a flagged negotiation by hand."""
    state = state_of(request)
    try:
        body = ResolveBody.model_validate_json(await request.body())
    except ValidationError as exc:
        return error_response(422, "invalid_request", describe_validation(exc))
    tickets = tuple(
        IssuedTicket(str(t.get("code") or ""), t.get("seat")) for t in body.tickets if t.get("code")
    )
    if body.action == "issued" and not tickets:
        return error_response(422, "invalid_request", "tickets: required when action is issued")
    reply = await ask_host(
        state, order_id, "operator_resolve", order_id, body.action, tickets, body.note
    )
    return reply_response(reply, state)


@router.get("/suppliers/{supplier_id}")
async def get_supplier(supplier_id: str, request: Request, _caller: AdminCaller) -> dict[str, Any]:
    state = state_of(request)
    supplier = await state.catalog.get_supplier(supplier_id)
    handle = await state.supplier_handle(supplier_id)
    if supplier is None or handle is None:
        raise ApiError(404, "not_found", "no such supplier")
    stats = (await handle.stats.remote()).as_dict()
    interval_ms, give_up_ms = await state.work.polling_overrides(supplier_id)
    return {
        "id": supplier.id,
        "name": supplier.name,
        "gateway": supplier.gateway,
        "status": supplier.status,
        "replicas": supplier.replicas,
        "stats": stats,
        "polling": {
            "interval_s": stats["poll_interval_s"],
            "give_up_after_s": stats["give_up_after_s"],
            "adaptive": stats["polling_adaptive"],
            "interval_override_ms": interval_ms,
            "give_up_override_ms": give_up_ms,
        },
        "negotiations": await state.work.count_negotiations(supplier_id),
    }


class PollingBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    interval_ms: int | None = Field(default=None, ge=100, le=3_600_000)
    give_up_ms: int | None = Field(default=None, ge=100, le=7 * 86_400_000)


@router.put("/suppliers/{supplier_id}/polling")
async def set_polling(supplier_id: str, request: Request, _caller: AdminCaller) -> JSONResponse:
    """Override the adaptive poll interval and give-up time (null restores adaptive)."""
    state = state_of(request)
    try:
        body = PollingBody.model_validate_json(await request.body())
    except ValidationError as exc:
        return error_response(422, "invalid_request", describe_validation(exc))
    if not await state.work.set_polling_overrides(supplier_id, body.interval_ms, body.give_up_ms):
        raise ApiError(404, "not_found", "no such supplier")
    return JSONResponse({"interval_ms": body.interval_ms, "give_up_ms": body.give_up_ms})
