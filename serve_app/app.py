"""The HTTP API (FastAPI). Routes are thin: check the caller, shape the command, ask the
order's actor, render the reply."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel, ValidationError
from ray.exceptions import RayActorError, RayTaskError

from actors.order_actor import CreateOrder, OrderReply
from domain.grants import any_grant_covers
from domain.ids import order_id_for
from domain.order import DeliveryMethod, request_fingerprint
from domain.signing import SignatureError
from domain.status import OrderStatus
from serve_app.auth import Caller, RateLimited
from serve_app.errors import ApiError, describe_validation, install_error_handlers
from serve_app.paging import decode_cursor, encode_cursor, parse_limit, parse_time
from serve_app.responses import JSONResponse
from serve_app.schemas import CreateOrderBody, RefundBody
from serve_app.state import PlatformState
from serve_app.views import order_view

app = FastAPI(
    title="showdist",
    version="1",
    description="Distribution of live-show tickets: signed catalog and order API.",
    default_response_class=JSONResponse,
)
install_error_handlers(app)


_platform: list[PlatformState] = []


def install_platform(state: PlatformState) -> None:
    """Give this process's app its state. (Serve's ingress serves a copy of `app`, so the
    state lives here rather than on `app.state`.)"""
    _platform[:] = [state]


M = TypeVar("M", bound=BaseModel)


async def read_body(request: Request, model: type[M]) -> M:
    """The request's JSON body as `model`; a malformed one is 422 `invalid_request` naming the
    field. An empty body means the model's defaults."""
    raw = await request.body()
    try:
        return model.model_validate_json(raw) if raw.strip() else model.model_validate({})
    except ValidationError as exc:
        raise ApiError(422, "invalid_request", describe_validation(exc)) from exc
    except ValueError as exc:
        raise ApiError(422, "invalid_request", f"body: {exc}") from exc


def state_of(_request: Request) -> PlatformState:
    if not _platform:
        raise ApiError(503, "starting", "the API is starting")
    return _platform[0]


async def signed_caller(request: Request) -> Caller:
    state = state_of(request)
    raw_path = request.scope.get("raw_path")
    path = raw_path.decode("latin-1") if isinstance(raw_path, bytes) else request.url.path
    try:
        caller = await state.verifier.verify(
            method=request.method,
            path=path,
            raw_query=request.scope.get("query_string", b"").decode("latin-1"),
            headers=request.headers,
            body=await request.body(),
        )
    except SignatureError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from exc
    except RateLimited as exc:
        raise ApiError(
            429,
            "rate_limited",
            "too many requests for this key",
            headers={"Retry-After": str(exc.retry_after_s)},
        ) from exc
    return caller


# One dependency per route, not a chain: FastAPI's dependency solving costs per level.
async def distributor(request: Request) -> Caller:
    caller = await signed_caller(request)
    if caller.owner_kind != "distributor" or caller.distributor_id is None:
        raise ApiError(403, "forbidden", "this endpoint takes a distributor key")
    return caller


async def admin(request: Request) -> Caller:
    caller = await signed_caller(request)
    if caller.owner_kind != "admin":
        raise ApiError(403, "forbidden", "this endpoint takes an admin key")
    return caller


DistributorCaller = Annotated[Caller, Depends(distributor)]
AdminCaller = Annotated[Caller, Depends(admin)]


def reply_response(reply: OrderReply, state: PlatformState) -> JSONResponse:
    if reply.error_code is not None:
        body: dict[str, Any] = {"error": {"code": reply.error_code, "message": reply.error_message}}
        if reply.order is not None:
            body["order"] = order_view(reply.order, state.tz)
        return JSONResponse(body, status_code=reply.http_status)
    assert reply.order is not None
    return JSONResponse(order_view(reply.order, state.tz), status_code=reply.http_status)


async def ask_host(state: PlatformState, order_id: str, method: str, *args: Any) -> OrderReply:
    host = state.host_for(order_id)
    try:
        reply: OrderReply = await getattr(host, method).remote(*args)
    except (RayActorError, RayTaskError) as exc:
        # The host is restarting, or its database call failed; the order's state on disk is
        # consistent (every move is one transaction), so asking again is safe.
        raise ApiError(503, "order_host_unavailable", "please retry shortly") from exc
    return reply


async def ask_host_once(
    state: PlatformState, order_id: str, method: str, caller: Caller
) -> OrderReply:
    """get / issue / cancel of one order by one distributor: identical requests in flight at
    once share one trip to the order's host (their replies are a function of its state)."""
    return await state.in_flight.run(
        (method, order_id, caller.distributor_id),
        lambda: ask_host(state, order_id, method, order_id, caller.distributor_id),
    )


# -- unsigned ----------------------------------------------------------------------------
public = APIRouter()


@public.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@public.get("/v1/platform-key")
async def platform_key(request: Request) -> dict[str, str]:
    return {
        "key_id": "platform",
        "algorithm": "ed25519",
        "public_key": state_of(request).platform_public_key,
    }


# -- distributor -------------------------------------------------------------------------
v1 = APIRouter(prefix="/v1")


@v1.post("/orders")
async def create_order(request: Request, caller: DistributorCaller) -> JSONResponse:
    state = state_of(request)
    assert caller.distributor_id is not None
    body = await read_body(request, CreateOrderBody)
    tier = await state.catalog.tier_for_sale(body.session_id, body.tier_id)
    if tier is None:
        raise ApiError(404, "not_found", "no such session and tier")
    grants = await state.accounts.grants_of(caller.distributor_id)
    if not any_grant_covers(grants, tier.item, state.now()):
        raise ApiError(403, "forbidden", "no live grant covers this session")
    if tier.show_status != "online" or tier.session_status != "online":
        raise ApiError(409, "not_on_sale", "this session is not on sale")
    ttl = state.settings.lock_ttl_seconds
    cmd = CreateOrder(
        order_id=order_id_for(caller.distributor_id, body.distributor_order_id),
        distributor_id=caller.distributor_id,
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
        currency=tier.currency,
        delivery_method=DeliveryMethod(body.delivery.method),
        delivery_address=body.delivery.address,
        buyer={"name": body.buyer.name, "phone": body.buyer.phone},
        callback_url=body.callback_url,
        request_hash=request_fingerprint(body.fingerprint_fields()),
        lock_seconds=min(body.lock_seconds or ttl, ttl),
    )
    return reply_response(await ask_host(state, cmd.order_id, "create", cmd), state)


@v1.get("/orders")
async def list_orders(
    request: Request,
    caller: DistributorCaller,
    status: str | None = None,
    updated_since: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
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


@v1.get("/orders/{order_id}")
async def get_order(order_id: str, request: Request, caller: DistributorCaller) -> JSONResponse:
    state = state_of(request)
    return reply_response(await ask_host_once(state, order_id, "get", caller), state)


@v1.post("/orders/{order_id}/issue")
async def issue_order(order_id: str, request: Request, caller: DistributorCaller) -> JSONResponse:
    state = state_of(request)
    return reply_response(await ask_host_once(state, order_id, "issue", caller), state)


@v1.post("/orders/{order_id}/cancel")
async def cancel_order(order_id: str, request: Request, caller: DistributorCaller) -> JSONResponse:
    state = state_of(request)
    return reply_response(await ask_host_once(state, order_id, "cancel", caller), state)


@v1.post("/orders/{order_id}/refund")
async def refund_order(order_id: str, request: Request, caller: DistributorCaller) -> JSONResponse:
    state = state_of(request)
    body = await read_body(request, RefundBody)
    reply = await ask_host(state, order_id, "refund", order_id, caller.distributor_id, body.reason)
    return reply_response(reply, state)


app.include_router(public)
app.include_router(v1)
