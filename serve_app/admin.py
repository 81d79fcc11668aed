"""The admin API for operators (`/admin/v1`, signed with admin keys)."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import Field, ValidationError, WithJsonSchema

from actors.startup import (
    order_host_report,
    placement,
    retire_supplier,
    scale_order_hosts,
    scale_supplier,
)
from domain.grants import GrantScope
from domain.order import IssuedTicket
from domain.partitions import MAX_ORDER_HOSTS, PARTITIONS, Assignment
from domain.status import OrderStatus
from persistence.accounts import DISTRIBUTOR
from persistence.catalog import RETIRED
from persistence.partitions import ScalingInProgress
from serve_app.contract import ADMIN, operation
from serve_app.deps import AdminCaller, ours, read_body, state_of
from serve_app.errors import ApiError, describe_validation, error_response
from serve_app.models import (
    AdminOrderDetail,
    AdminOrderPage,
    DistributorPage,
    DistributorView,
    GrantList,
    GrantRevoked,
    GrantView,
    KeyRevoked,
    NewKey,
    Order,
    OrderHostsView,
    PollingSet,
    Scaled,
    SupplierDetail,
    SupplierList,
    SupplierView,
    SyncResult,
)
from serve_app.paging import (
    CursorParam,
    LimitParam,
    decode_cursor,
    encode_cursor,
    parse_limit,
)
from serve_app.replies import reply_response
from serve_app.responses import JSONResponse
from serve_app.schemas import Body, Time
from serve_app.views import order_view, ts
from suppliers.registry import GATEWAY_KINDS, PretixConfig, SandboxConfig, stored_gateway_config

log = logging.getLogger(__name__)
router = APIRouter(prefix="/admin/v1")


def _bool(name: str, value: str | None) -> bool | None:
    if value is None:
        return None
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise ApiError(422, "invalid_request", f"{name}: expected true or false")


_FLAG: dict[str, Any] = {"description": "true or false (also 1/0, yes/no)"}
_STATUS: dict[str, Any] = {"enum": [s.value for s in OrderStatus]}
_NO_SUCH = {404: ("not_found",)}


@router.get(
    "/orders",
    **operation(ADMIN, ok={200: (AdminOrderPage, "a page of orders, by (updated_at, id)")}),
)
async def list_orders(
    request: Request,
    _caller: AdminCaller,
    status: Annotated[str | None, Query(json_schema_extra=_STATUS)] = None,
    supplier_id: str | None = None,
    negotiating: Annotated[str | None, Query(json_schema_extra=_FLAG)] = None,
    flagged: Annotated[str | None, Query(json_schema_extra=_FLAG)] = None,
    limit: LimitParam = None,
    cursor: CursorParam = None,
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


@router.get(
    "/orders/{order_id}",
    **operation(ADMIN, ok={200: (AdminOrderDetail, "the order and its work")}, errors=_NO_SUCH),
)
async def get_order(order_id: str, request: Request, _caller: AdminCaller) -> dict[str, Any]:
    state = state_of(request)
    order = await state.orders.get(ours(order_id))
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


class ResolveBody(Body):
    FREE_TEXT = frozenset({"note"})
    action: Literal["cancel", "issued", "retry"]
    tickets: list[dict[str, str | None]] = Field(default_factory=list)
    note: str = Field(default="", max_length=500)


@router.post(
    "/orders/{order_id}/resolve",
    **operation(
        ADMIN,
        body=ResolveBody,
        ok={200: (Order, "decided: the order as it is now")},
        errors={
            404: ("not_found",),
            409: ("invalid_transition",),
            503: ("order_host_unavailable",),
        },
    ),
)
async def resolve_order(order_id: str, request: Request, _caller: AdminCaller) -> JSONResponse:
    """Decide a flagged negotiation by hand."""
    state = state_of(request)
    body = await read_body(request, ResolveBody)
    tickets = tuple(
        IssuedTicket(str(t.get("code") or ""), t.get("seat")) for t in body.tickets if t.get("code")
    )
    if body.action == "issued" and not tickets:
        return error_response(422, "invalid_request", "tickets: required when action is issued")
    host = state.hosts.for_order(ours(order_id))
    reply = await host.operator_resolve(order_id, body.action, tickets, body.note)
    return reply_response(reply, state)


@router.get(
    "/suppliers/{supplier_id}",
    **operation(
        ADMIN,
        ok={200: (SupplierDetail, "the supplier with its live figures")},
        errors={404: ("not_found",), 503: ("supplier_unavailable",)},
    ),
)
async def get_supplier(supplier_id: str, request: Request, _caller: AdminCaller) -> dict[str, Any]:
    state = state_of(request)
    supplier = await state.catalog.get_supplier(supplier_id)
    actor = await state.supplier_actor(supplier_id)
    if supplier is None or actor is None:
        raise ApiError(404, "not_found", "no such supplier")
    stats = (await actor.stats()).as_dict()
    interval_ms, give_up_ms = await state.work.polling_overrides(supplier_id)
    synced_at, sync_report = await state.catalog.sync_report(supplier_id)
    return {
        "id": supplier.id,
        "name": supplier.name,
        "gateway": supplier.gateway,
        "status": supplier.status,
        "replicas": supplier.replicas,
        "placement": placement(supplier.replicas),
        "stats": stats,
        "polling": {
            "interval_s": stats["poll_interval_s"],
            "give_up_after_s": stats["give_up_after_s"],
            "adaptive": stats["polling_adaptive"],
            "interval_override_ms": interval_ms,
            "give_up_override_ms": give_up_ms,
        },
        "negotiations": await state.work.count_negotiations(supplier_id),
        "catalog_sync": None
        if sync_report is None
        else {"synced_at": ts(synced_at, state.tz), **sync_report},
    }


class PollingBody(Body):
    interval_ms: int | None = Field(default=None, ge=100, le=3_600_000)
    give_up_ms: int | None = Field(default=None, ge=100, le=7 * 86_400_000)


@router.put(
    "/suppliers/{supplier_id}/polling",
    **operation(ADMIN, body=PollingBody, ok={200: (PollingSet, "the values set")}, errors=_NO_SUCH),
)
async def set_polling(supplier_id: str, request: Request, _caller: AdminCaller) -> JSONResponse:
    """Override the adaptive poll interval and give-up time (null restores adaptive)."""
    state = state_of(request)
    body = await read_body(request, PollingBody)
    if not await state.work.set_polling_overrides(supplier_id, body.interval_ms, body.give_up_ms):
        raise ApiError(404, "not_found", "no such supplier")
    return JSONResponse({"interval_ms": body.interval_ms, "give_up_ms": body.give_up_ms})


# -- suppliers ---------------------------------------------------------------------------------


def _gateway_config_schema() -> dict[str, Any]:
    """The configuration's schema: the model of the kind `gateway` names."""
    kinds = [SandboxConfig.model_json_schema(), PretixConfig.model_json_schema()]
    for kind in kinds:
        kind["properties"]["base_url"]["description"] = "an absolute http(s) URL"
    return {"anyOf": kinds}


class SupplierBody(Body):
    name: str = Field(min_length=1, max_length=200)
    gateway: str = Field(
        min_length=1, max_length=40, json_schema_extra={"enum": list(GATEWAY_KINDS)}
    )
    # Checked by the route as the gateway kind's model (`gateway_config`), which names the
    # field it refuses; documented as one of the kinds' models.
    config: Annotated[dict[str, Any], WithJsonSchema(_gateway_config_schema())] = Field(
        default_factory=dict, description="the gateway kind's configuration"
    )


def _supplier_view(s: Any) -> dict[str, Any]:
    return {
        "id": s.id,
        "name": s.name,
        "gateway": s.gateway,
        "status": s.status,
        "replicas": s.replicas,
        "placement": placement(s.replicas),
    }


@router.post(
    "/suppliers",
    status_code=201,
    **operation(ADMIN, body=SupplierBody, ok={201: (SupplierView, "the new supplier")}),
)
async def create_supplier(request: Request, _caller: AdminCaller) -> JSONResponse:
    state = state_of(request)
    body = await read_body(request, SupplierBody)
    try:
        # The kind's typed model, with its ranges; its secrets (a pretix token) sealed.
        stored = stored_gateway_config(body.gateway, body.config, state.supplier_secrets)
    except ValidationError as exc:
        return error_response(422, "invalid_request", f"config.{describe_validation(exc)}")
    except ValueError as exc:
        return error_response(422, "invalid_request", f"gateway: {exc}")
    supplier = await state.catalog.create_supplier(body.name, body.gateway, stored, state.now())
    return JSONResponse(_supplier_view(supplier), status_code=201)


@router.get("/suppliers", **operation(ADMIN, ok={200: (SupplierList, "every supplier")}))
async def list_suppliers(request: Request, _caller: AdminCaller) -> dict[str, Any]:
    state = state_of(request)
    return {
        "items": [_supplier_view(s) for s in await state.catalog.list_suppliers()],
        "next_cursor": None,
    }


@router.post(
    "/suppliers/{supplier_id}/sync",
    **operation(
        ADMIN,
        ok={200: (SyncResult, "the catalog was pulled")},
        errors={404: ("not_found",), 503: ("supplier_unavailable",)},
    ),
)
async def sync_supplier(supplier_id: str, request: Request, _caller: AdminCaller) -> dict[str, Any]:
    state = state_of(request)
    actor = await state.supplier_actor(supplier_id)
    if actor is None:
        raise ApiError(404, "not_found", "no such supplier")
    try:
        changed = await actor.sync_catalog()
    except Exception as exc:
        # The details (a remote traceback, paths, addresses) go to the log, not to the caller.
        log.warning("catalog sync of %s failed: %r", supplier_id, exc)
        raise ApiError(
            503, "supplier_unavailable", "catalog sync failed: the supplier could not be read"
        ) from exc
    state.catalog.invalidate()
    return {"supplier_id": supplier_id, "rows_changed": changed}


class ReplicasBody(Body):
    replicas: int = Field(ge=1, le=32)


@router.put(
    "/suppliers/{supplier_id}/replicas",
    **operation(
        ADMIN,
        body=ReplicasBody,
        ok={200: (Scaled, "the new count serves")},
        errors={
            404: ("not_found",),
            409: ("supplier_retired",),
            503: ("supplier_unavailable",),
        },
    ),
)
async def set_replicas(supplier_id: str, request: Request, _caller: AdminCaller) -> JSONResponse:
    """1 replica: the supplier's actor lives in the shared pool; n > 1: n dedicated hosts."""
    state = state_of(request)
    body = await read_body(request, ReplicasBody)
    supplier = await state.catalog.get_supplier(supplier_id)
    if supplier is None:
        raise ApiError(404, "not_found", "no such supplier")
    if supplier.status == RETIRED:
        raise ApiError(409, "supplier_retired", "a retired supplier is not scaled")
    result = await scale_supplier(state.platform, state.catalog, supplier_id, body.replicas)
    if result is None:
        raise ApiError(404, "not_found", "no such supplier")
    state.forget_supplier(supplier_id)
    return JSONResponse(result)


@router.post(
    "/suppliers/{supplier_id}/retire",
    **operation(ADMIN, ok={200: (SupplierView, "retired")}, errors=_NO_SUCH),
)
async def retire(supplier_id: str, request: Request, _caller: AdminCaller) -> JSONResponse:
    """Retire a supplier: nothing of it is sold any more and its actors go; its orders,
    flows and history stay (a refund of one of its orders still reaches it)."""
    state = state_of(request)
    supplier = await retire_supplier(state.platform, state.catalog, supplier_id, state.now())
    if supplier is None:
        raise ApiError(404, "not_found", "no such supplier")
    state.catalog.invalidate()
    state.forget_supplier(supplier_id)
    return JSONResponse(_supplier_view(supplier))


# -- order hosts ----------------------------------------------------------------------------


class OrderHostsBody(Body):
    hosts: int = Field(ge=1, le=MAX_ORDER_HOSTS)


def _order_hosts_view(
    assignment: Assignment, stats: dict[int, Any], stopped: list[int]
) -> dict[str, Any]:
    counts = assignment.counts()
    leaving = Counter(assignment.owners[p] for p in assignment.moving_to)
    rows = []
    for host in sorted(set(counts) | set(stats)):
        held = stats.get(host)
        rows.append(
            {
                "host": host,
                "partitions": counts.get(host, 0),
                "moving_out": leaving.get(host, 0),
                "held": None if held is None else held["partitions"],
                "active_orders": None if held is None else held["active_orders"],
            }
        )
    return {
        "hosts": assignment.hosts,
        "partitions": PARTITIONS,
        "version": assignment.version,
        "settled": assignment.settled,
        "moving": len(assignment.moving_to),
        "assignment": rows,
        "stopped": stopped,
    }


@router.get(
    "/order-hosts",
    **operation(ADMIN, ok={200: (OrderHostsView, "the order hosts and their partitions")}),
)
async def get_order_hosts(request: Request, _caller: AdminCaller) -> JSONResponse:
    state = state_of(request)
    assignment, stats = await order_host_report(state.platform)
    return JSONResponse(_order_hosts_view(assignment, stats, []))


@router.put(
    "/order-hosts",
    **operation(
        ADMIN,
        body=OrderHostsBody,
        ok={
            200: (OrderHostsView, "the partitions are handed over; the new count serves"),
            202: (OrderHostsView, "the handovers are still under way (read it again)"),
        },
        errors={409: ("scaling_in_progress",)},
    ),
)
async def set_order_hosts(request: Request, _caller: AdminCaller) -> JSONResponse:
    """Change the number of order hosts while orders flow: the partitions that move are
    handed over one host to the other (docs/design.md, "Order hosts that scale")."""
    state = state_of(request)
    body = await read_body(request, OrderHostsBody)
    try:
        assignment, stopped = await scale_order_hosts(state.platform, body.hosts)
    except ScalingInProgress as exc:
        raise ApiError(409, "scaling_in_progress", str(exc)) from exc
    _, stats = await order_host_report(state.platform)
    view = _order_hosts_view(assignment, stats, stopped)
    return JSONResponse(view, status_code=200 if assignment.settled else 202)


# -- distributors, keys, grants -------------------------------------------------------------


class DistributorBody(Body):
    name: str = Field(min_length=1, max_length=200)
    rate_limit_per_s: int | None = Field(default=None, ge=1, le=100_000)


class DistributorPatch(Body):
    rate_limit_per_s: int | None = Field(default=None, ge=1, le=100_000)


class KeyBody(Body):
    type: Literal["hmac", "ed25519"]
    public_key: str | None = Field(default=None, max_length=100)
    expires_at: Time | None = None


class GrantBody(Body):
    scope: GrantScope
    value: str | None = Field(default=None, min_length=1, max_length=200)
    valid_from: Time | None = None
    valid_until: Time | None = None


def _distributor_summary(d: Any, tz: Any) -> dict[str, Any]:
    return {
        "id": d.id,
        "name": d.name,
        "status": d.status,
        "rate_limit_per_s": d.rate_limit_per_s,
        "created_at": ts(d.created_at, tz),
    }


async def _distributor_view(state: Any, distributor_id: str) -> dict[str, Any]:
    d = await state.accounts.get_distributor(distributor_id)
    if d is None:
        raise ApiError(404, "not_found", "no such distributor")
    keys = await state.accounts.keys_of(distributor_id)
    return {
        **_distributor_summary(d, state.tz),
        "keys": [
            {
                "key_id": k["id"],
                "type": k["key_type"],
                "status": k["status"],
                "expires_at": ts(k["expires_at"], state.tz),
                "created_at": ts(k["created_at"], state.tz),
            }
            for k in keys
        ],
    }


def _aware(name: str, value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ApiError(422, "invalid_request", f"{name}: needs a UTC offset")
    return value


@router.post(
    "/distributors",
    status_code=201,
    **operation(ADMIN, body=DistributorBody, ok={201: (DistributorView, "the new distributor")}),
)
async def create_distributor(request: Request, _caller: AdminCaller) -> JSONResponse:
    state = state_of(request)
    body = await read_body(request, DistributorBody)
    d = await state.accounts.create_distributor(body.name, state.now())
    if body.rate_limit_per_s is not None:
        await state.accounts.set_rate_limit(d.id, body.rate_limit_per_s, state.now())
    return JSONResponse(await _distributor_view(state, d.id), status_code=201)


@router.get(
    "/distributors",
    **operation(ADMIN, ok={200: (DistributorPage, "a page of distributors, oldest first")}),
)
async def list_distributors(
    request: Request,
    _caller: AdminCaller,
    limit: LimitParam = None,
    cursor: CursorParam = None,
) -> dict[str, Any]:
    """Every distributor by (created_at, id), without its keys."""
    state = state_of(request)
    n = parse_limit(limit)
    found = await state.accounts.list_distributors(after=decode_cursor(cursor), limit=n)
    items = [_distributor_summary(d, state.tz) for d in found]
    next_cursor = encode_cursor(found[-1].created_at, found[-1].id) if len(found) == n else None
    return {"items": items, "next_cursor": next_cursor}


@router.get(
    "/distributors/{distributor_id}",
    **operation(ADMIN, ok={200: (DistributorView, "the distributor")}, errors=_NO_SUCH),
)
async def get_distributor(
    distributor_id: str, request: Request, _caller: AdminCaller
) -> dict[str, Any]:
    return await _distributor_view(state_of(request), distributor_id)


@router.patch(
    "/distributors/{distributor_id}",
    **operation(
        ADMIN,
        body=DistributorPatch,
        ok={200: (DistributorView, "the distributor as it is now")},
        errors=_NO_SUCH,
    ),
)
async def patch_distributor(
    distributor_id: str, request: Request, _caller: AdminCaller
) -> JSONResponse:
    """Changes only the fields the body names (`{"rate_limit_per_s": null}` restores the
    platform's default; `{}` changes nothing)."""
    state = state_of(request)
    body = await read_body(request, DistributorPatch)
    if "rate_limit_per_s" in body.model_fields_set:
        found = await state.accounts.set_rate_limit(
            distributor_id, body.rate_limit_per_s, state.now()
        )
    else:
        found = await state.accounts.get_distributor(distributor_id) is not None
    if not found:
        raise ApiError(404, "not_found", "no such distributor")
    return JSONResponse(await _distributor_view(state, distributor_id))


async def _set_status(request: Request, distributor_id: str, status: str) -> dict[str, Any]:
    state = state_of(request)
    if not await state.accounts.set_distributor_status(distributor_id, status, state.now()):
        raise ApiError(404, "not_found", "no such distributor")
    return await _distributor_view(state, distributor_id)


@router.post(
    "/distributors/{distributor_id}/suspend",
    **operation(ADMIN, ok={200: (DistributorView, "suspended")}, errors=_NO_SUCH),
)
async def suspend(distributor_id: str, request: Request, _caller: AdminCaller) -> dict[str, Any]:
    return await _set_status(request, distributor_id, "suspended")


@router.post(
    "/distributors/{distributor_id}/activate",
    **operation(ADMIN, ok={200: (DistributorView, "active")}, errors=_NO_SUCH),
)
async def activate(distributor_id: str, request: Request, _caller: AdminCaller) -> dict[str, Any]:
    return await _set_status(request, distributor_id, "active")


@router.post(
    "/distributors/{distributor_id}/keys",
    status_code=201,
    **operation(
        ADMIN,
        body=KeyBody,
        ok={201: (NewKey, "the new key (an HMAC key's secret, once)")},
        errors=_NO_SUCH,
    ),
)
async def create_key(distributor_id: str, request: Request, _caller: AdminCaller) -> JSONResponse:
    """`hmac`: the secret is in this reply and nowhere else, ever. `ed25519`: the distributor
    keeps its private key and registers the public one."""
    state = state_of(request)
    body = await read_body(request, KeyBody)
    expires_at = _aware("expires_at", body.expires_at)
    if expires_at is not None and expires_at <= state.now():
        raise ApiError(422, "invalid_request", "expires_at: must be in the future")
    if await state.accounts.get_distributor(distributor_id) is None:
        raise ApiError(404, "not_found", "no such distributor")
    now = state.now()
    if body.type == "hmac":
        key_id, secret = await state.accounts.create_hmac_key(
            owner_kind=DISTRIBUTOR, distributor_id=distributor_id, now=now, expires_at=expires_at
        )
        reply: dict[str, Any] = {"key_id": key_id, "type": "hmac", "secret": secret}
    else:
        if not body.public_key:
            return error_response(422, "invalid_request", "public_key: required for ed25519")
        try:
            key_id = await state.accounts.create_ed25519_key(
                distributor_id=distributor_id,
                public_key_b64=body.public_key,
                now=now,
                expires_at=expires_at,
            )
        except ValueError as exc:
            return error_response(422, "invalid_request", f"public_key: {exc}")
        reply = {"key_id": key_id, "type": "ed25519"}
    reply["expires_at"] = ts(expires_at, state.tz)
    return JSONResponse(reply, status_code=201)


@router.delete(
    "/keys/{key_id}",
    **operation(ADMIN, ok={200: (KeyRevoked, "revoked")}, errors=_NO_SUCH),
)
async def revoke_key(key_id: str, request: Request, _caller: AdminCaller) -> dict[str, Any]:
    state = state_of(request)
    if not await state.accounts.revoke_key(key_id, state.now()):
        raise ApiError(404, "not_found", "no such key")
    return {"key_id": key_id, "status": "revoked"}


def _grant_view(g: Any, tz: Any) -> dict[str, Any]:
    return {
        "id": g.id,
        "scope": g.scope.value,
        "value": g.value,
        "valid_from": ts(g.valid_from, tz),
        "valid_until": ts(g.valid_until, tz),
        "created_at": ts(g.created_at, tz),
        "revoked_at": ts(g.revoked_at, tz),
    }


@router.post(
    "/distributors/{distributor_id}/grants",
    status_code=201,
    **operation(ADMIN, body=GrantBody, ok={201: (GrantView, "the new grant")}, errors=_NO_SUCH),
)
async def create_grant(distributor_id: str, request: Request, _caller: AdminCaller) -> JSONResponse:
    state = state_of(request)
    body = await read_body(request, GrantBody)
    if (body.scope is GrantScope.ALL) != (body.value is None):
        return error_response(
            422, "invalid_request", "value: required for every scope but all, and only then"
        )
    valid_from = _aware("valid_from", body.valid_from)
    valid_until = _aware("valid_until", body.valid_until)
    if valid_from and valid_until and valid_until <= valid_from:
        return error_response(422, "invalid_request", "valid_until: must be after valid_from")
    if await state.accounts.get_distributor(distributor_id) is None:
        raise ApiError(404, "not_found", "no such distributor")
    g = await state.accounts.create_grant(
        distributor_id,
        body.scope,
        body.value,
        now=state.now(),
        valid_from=valid_from,
        valid_until=valid_until,
    )
    return JSONResponse(_grant_view(g, state.tz), status_code=201)


@router.get(
    "/distributors/{distributor_id}/grants",
    **operation(
        ADMIN, ok={200: (GrantList, "every grant ever made, revoked ones too")}, errors=_NO_SUCH
    ),
)
async def list_grants(
    distributor_id: str, request: Request, _caller: AdminCaller
) -> dict[str, Any]:
    state = state_of(request)
    if await state.accounts.get_distributor(distributor_id) is None:
        raise ApiError(404, "not_found", "no such distributor")
    grants = await state.accounts.grants_of(distributor_id)
    return {"items": [_grant_view(g, state.tz) for g in grants], "next_cursor": None}


@router.delete(
    "/grants/{grant_id}",
    **operation(ADMIN, ok={200: (GrantRevoked, "revoked")}, errors=_NO_SUCH),
)
async def revoke_grant(grant_id: str, request: Request, _caller: AdminCaller) -> dict[str, Any]:
    state = state_of(request)
    if await state.accounts.revoke_grant(grant_id, state.now()) is None:
        raise ApiError(404, "not_found", "no such grant")
    return {"grant_id": grant_id, "status": "revoked"}
