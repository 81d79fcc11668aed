"""The distributors' order routes (`/v1/orders`) and the unsigned ones. Routes are thin:
check the caller, shape the command, ask the order's host, render the reply.

Identical get / issue / cancel calls of one order by one distributor in flight at once share
one trip to the order's host (`serve_app.coalesce`): their replies are a function of the
order's state."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from actors.interfaces import CreateOrder, OrderHostCalls
from actors.metrics import request_refused
from domain.callback_urls import CallbackUrlRefused, check_callback_url
from domain.grants import any_grant_covers
from domain.identity import Attendee, AttendeeLimit, DocumentInvalid, check_document
from domain.ids import order_id_for
from domain.order import DeliveryMethod, request_fingerprint
from domain.replies import OrderReply, Verdict
from domain.status import OrderStatus
from domain.tier_rules import TierCheck, check_tier
from persistence.catalog import TierForSale
from serve_app.contract import ANYONE, DISTRIBUTOR, operation
from serve_app.deps import DistributorCaller, ours, read_body, state_of
from serve_app.errors import ApiError
from serve_app.errors import refusal as refusal_of
from serve_app.hot_paths import hot
from serve_app.models import Health, Order, OrderPage, PlatformKey
from serve_app.paging import (
    TIME,
    CursorParam,
    LimitParam,
    decode_cursor,
    encode_cursor,
    parse_limit,
    parse_time,
)
from serve_app.replies import reply_response
from serve_app.responses import JSONResponse
from serve_app.schemas import CreateOrderBody, RefundBody
from serve_app.state import PlatformState
from serve_app.views import order_view

# The statuses an order list may be filtered by (documented; the route checks them).
STATUS_ENUM: dict[str, Any] = {"enum": [s.value for s in OrderStatus]}

# -- unsigned ----------------------------------------------------------------------------
public = APIRouter()


@public.get("/healthz", **operation(ANYONE, ok={200: (Health, "the replica serves HTTP")}))
@hot
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@public.get(
    "/v1/platform-key",
    **operation(ANYONE, ok={200: (PlatformKey, "the key that signs the platform's callbacks")}),
)
async def platform_key(request: Request) -> dict[str, str]:
    return {
        "key_id": "platform",
        "algorithm": "ed25519",
        "public_key": state_of(request).platform_public_key,
    }


# -- distributor -------------------------------------------------------------------------
v1 = APIRouter(prefix="/v1")


@v1.post(
    "/orders",
    **operation(
        DISTRIBUTOR,
        body=CreateOrderBody,
        ok={
            201: (Order, "a new order: LOCKED (or NEW if the lock's answer is awaited)"),
            200: (Order, "a repeat of a create: the order as it is now"),
        },
        errors={
            403: ("forbidden",),
            404: ("not_found",),
            409: ("sold_out", "idempotency_conflict", "not_on_sale", "attendee_limit"),
            503: ("supplier_unavailable", "order_host_unavailable"),
        },
    ),
)
@hot
async def create_order(request: Request, caller: DistributorCaller) -> JSONResponse:
    state = state_of(request)
    assert caller.distributor_id is not None
    body = await read_body(request, CreateOrderBody)
    if body.callback_url is not None:
        try:  # the addresses it names; a host name's are checked when the courier connects
            check_callback_url(body.callback_url, state.settings.callback_allowed_networks)
        except CallbackUrlRefused as exc:
            raise ApiError(422, "invalid_request", f"callback_url: {exc}") from None
    tier = await state.catalog.tier_for_sale(body.session_id, body.tier_id)
    # The catalog sync's rule again (domain/tier_rules.py): a tier it refuses is not sold,
    # whatever a cache or a row stored before the rule holds; to a buyer it is not there.
    terms = (
        None
        if tier is None
        else check_tier(tier.face_value, tier.price, tier.settlement_price, tier.currency)
    )
    if tier is None or terms is None or not terms.accepted:
        raise ApiError(404, "not_found", "no such session and tier")
    attendees = _attendees(body, tier.real_name_required, state.now().astimezone(state.tz).date())
    refusal: ApiError | None = None
    grants = await state.accounts.grants_of(caller.distributor_id)
    if not any_grant_covers(grants, tier.item, state.now()):
        refusal = ApiError(403, "forbidden", "no live grant covers this session")
    elif tier.show_status != "online" or tier.session_status != "online":
        refusal = ApiError(409, "not_on_sale", "this session is not on sale")
    asked = time.monotonic()
    distributor_id = caller.distributor_id
    order_id = order_id_for(distributor_id, body.distributor_order_id)
    host = state.hosts.for_order(order_id)

    def command() -> CreateOrder:
        return _command(state, distributor_id, order_id, body, tier, terms, attendees)

    if refusal is not None:
        # A repeat of a create that was made while it was allowed answers as every repeat
        # does (the order, or idempotency_conflict for another body); only a new one is refused.
        known = await host.get(order_id, distributor_id)
        if known.verdict is Verdict.NOT_FOUND:
            raise refusal
        return reply_response(await host.create(command()), state)
    if state.sold_out.check(tier.tier_id, body.quantity, asked):
        # Known sold out a moment ago: refused with nothing asked of the supplier and nothing
        # recorded (so the same distributor_order_id may be tried again later), before the
        # command is even made. Only a repeat of a create that was made before goes on, to
        # answer as every repeat does.
        if not await state.orders.exists(order_id):
            request_refused("sold_out")  # (no order moved, no supplier called: counted here)
            raise ApiError(409, "sold_out", _KNOWN_SOLD_OUT)
        return reply_response(await host.create(command()), state)
    # (Nothing between the view's check and the try that answers it: a probe it let through
    # is always answered, or the view would refuse on a guess.)
    return reply_response(
        await _asking_the_supplier(state, host, command, tier.tier_id, body.quantity, asked),
        state,
    )


def _command(
    state: PlatformState,
    distributor_id: str,
    order_id: str,
    body: CreateOrderBody,
    tier: TierForSale,
    terms: TierCheck,
    attendees: tuple[Attendee, ...],
) -> CreateOrder:
    ttl = state.settings.lock_ttl_seconds
    return CreateOrder(
        order_id=order_id,
        distributor_id=distributor_id,
        distributor_order_id=body.distributor_order_id,
        supplier_id=tier.supplier_id,
        session_id=tier.session_id,
        tier_id=tier.tier_id,
        session_ref=tier.session_ref,
        tier_ref=tier.tier_ref,
        quantity=body.quantity,
        unit_price=tier.price,
        settlement_price=tier.settlement_price,
        face_value=tier.face_value,
        currency=terms.currency,
        delivery_method=DeliveryMethod(body.delivery.method),
        delivery_address=body.delivery.address,
        buyer={"name": body.buyer.name, "phone": body.buyer.phone},
        callback_url=body.callback_url,
        request_hash=request_fingerprint(body.fingerprint_fields()),
        lock_seconds=min(body.lock_seconds or ttl, ttl),
        attendees=attendees,
        tickets_per_id=tier.tickets_per_id if tier.real_name_required else 0,
    )


_KNOWN_SOLD_OUT = "not enough seats left (the supplier said so a moment ago); no order was made"


async def _asking_the_supplier(
    state: PlatformState,
    host: OrderHostCalls,
    command: Callable[[], CreateOrder],
    tier_id: str,
    quantity: int,
    asked: float,
) -> OrderReply:
    """A create whose lock goes to the supplier; its answer teaches the stock view."""
    asked_wall = state.now()
    sold_out = False
    try:
        reply = await host.create(command())
        # Sold out just now (a repeat of an old sold-out create is no news of the stock).
        sold_out = (
            reply.verdict is Verdict.SOLD_OUT
            and reply.order is not None
            and reply.order.updated_at >= asked_wall
        )
        return reply
    finally:
        state.sold_out.answered(
            tier_id, quantity, sold_out=sold_out, asked_at=asked, now=time.monotonic()
        )


def _attendees(body: CreateOrderBody, real_name: bool, today: date) -> tuple[Attendee, ...]:
    """A real-name session's attendees, one per ticket, each document checked
    (`domain.identity`); a session that is not real-name takes none."""
    given = body.attendees
    if not real_name:
        if given is not None:
            raise ApiError(422, "invalid_request", "attendees: this session is not real-name")
        return ()
    if not given or len(given) != body.quantity:
        raise ApiError(
            422,
            "invalid_request",
            f"attendees: a real-name session needs one attendee per ticket ({body.quantity})",
        )
    seen: dict[str, int] = {}
    out = []
    for i, a in enumerate(given):
        try:
            document = check_document(a.id_type, a.id_number, today=today)
        except DocumentInvalid as exc:
            raise ApiError(422, "invalid_request", f"attendees[{i}].id_number: {exc}") from None
        if document.key in seen:
            raise ApiError(
                422,
                "invalid_request",
                f"attendees[{i}]: the same document as attendees[{seen[document.key]}]",
            )
        seen[document.key] = i
        out.append(Attendee(a.name, document))
    return tuple(out)


refusal_of(AttendeeLimit, lambda exc: ApiError(409, "attendee_limit", str(exc)))


@v1.get(
    "/orders",
    **operation(
        DISTRIBUTOR, ok={200: (OrderPage, "a page of the caller's orders, by (updated_at, id)")}
    ),
)
async def list_orders(
    request: Request,
    caller: DistributorCaller,
    status: Annotated[str | None, Query(json_schema_extra=STATUS_ENUM)] = None,
    updated_since: Annotated[str | None, Query(json_schema_extra=TIME)] = None,
    limit: LimitParam = None,
    cursor: CursorParam = None,
) -> dict[str, Any]:
    state = state_of(request)
    assert caller.distributor_id is not None
    if status is not None and status not in OrderStatus.__members__:
        raise ApiError(422, "invalid_request", f"status: unknown status {status!r}")
    n = parse_limit(limit)
    found = await state.orders.list_for_distributor(
        caller.distributor_id,
        status=status,
        updated_since=parse_time("updated_since", updated_since),
        after=decode_cursor(cursor),
        limit=n,
    )
    next_cursor = encode_cursor(found[-1].updated_at, found[-1].id) if len(found) == n else None
    return {"items": [order_view(o, state.tz) for o in found], "next_cursor": next_cursor}


async def _shared(
    request: Request,
    key: tuple[str, str, str | None],
    call: Callable[[OrderHostCalls], Awaitable[OrderReply]],
) -> JSONResponse:
    """One order's call to its host, shared with identical calls in flight (same operation,
    order and distributor: `key`)."""
    state = state_of(request)
    host = state.hosts.for_order(ours(key[1]))
    return reply_response(await state.in_flight.run(key, lambda: call(host)), state)


_ORDER_ERRORS = {404: ("not_found",), 503: ("order_host_unavailable",)}


@v1.get(
    "/orders/{order_id}",
    **operation(DISTRIBUTOR, ok={200: (Order, "the order")}, errors=_ORDER_ERRORS),
)
@hot
async def get_order(order_id: str, request: Request, caller: DistributorCaller) -> JSONResponse:
    who = caller.distributor_id
    return await _shared(request, ("get", order_id, who), lambda h: h.get(order_id, who))


@v1.post(
    "/orders/{order_id}/issue",
    **operation(
        DISTRIBUTOR,
        ok={
            200: (Order, "issued: FIXED with its tickets (or already past it)"),
            202: (Order, "FIXING: the supplier's answer is not known yet"),
        },
        errors={**_ORDER_ERRORS, 409: ("issue_failed", "lock_expired", "invalid_transition")},
    ),
)
@hot
async def issue_order(order_id: str, request: Request, caller: DistributorCaller) -> JSONResponse:
    who = caller.distributor_id
    assert who is not None
    return await _shared(request, ("issue", order_id, who), lambda h: h.issue(order_id, who))


@v1.post(
    "/orders/{order_id}/cancel",
    **operation(
        DISTRIBUTOR,
        ok={200: (Order, "CANCELED, the seats released")},
        errors={**_ORDER_ERRORS, 409: ("invalid_transition",)},
    ),
)
@hot
async def cancel_order(order_id: str, request: Request, caller: DistributorCaller) -> JSONResponse:
    who = caller.distributor_id
    return await _shared(request, ("cancel", order_id, who), lambda h: h.cancel(order_id, who))


@v1.post(
    "/orders/{order_id}/refund",
    **operation(
        DISTRIBUTOR,
        body=RefundBody,
        ok={
            200: (Order, "decided: REFUNDED or REFUND_FAIL"),
            202: (Order, "REFUNDING: the supplier's answer is not known yet"),
        },
        errors={**_ORDER_ERRORS, 409: ("invalid_transition",)},
    ),
)
async def refund_order(order_id: str, request: Request, caller: DistributorCaller) -> JSONResponse:
    state = state_of(request)
    ours(order_id)
    body = await read_body(request, RefundBody)
    assert caller.distributor_id is not None
    host = state.hosts.for_order(order_id)
    return reply_response(await host.refund(order_id, caller.distributor_id, body.reason), state)
