"""What every route needs from its request: the process's platform state, the signed caller,
and a JSON body read as a model."""

from __future__ import annotations

from typing import Annotated, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel, ValidationError

from actors.metrics import request_refused
from domain.ids import is_order_id
from domain.signing import SignatureError
from serve_app.auth import Caller, RateLimited
from serve_app.errors import ApiError, describe_validation
from serve_app.state import PlatformState

M = TypeVar("M", bound=BaseModel)


def state_of(request: Request) -> PlatformState:
    """This process's platform state, which `serve_app.app.build_app` puts on the app."""
    state: PlatformState | None = getattr(request.app.state, "platform", None)
    if state is None:
        raise ApiError(503, "starting", "the API is starting")
    return state


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
            read_body=request.body,
        )
    except SignatureError as exc:
        request_refused(exc.code)
        raise ApiError(exc.status, exc.code, exc.message) from exc
    except RateLimited as exc:
        request_refused("rate_limited")
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
        request_refused("forbidden")
        raise ApiError(403, "forbidden", "this endpoint takes a distributor key")
    return caller


async def admin(request: Request) -> Caller:
    caller = await signed_caller(request)
    if caller.owner_kind != "admin":
        request_refused("forbidden")
        raise ApiError(403, "forbidden", "this endpoint takes an admin key")
    return caller


DistributorCaller = Annotated[Caller, Depends(distributor)]
AdminCaller = Annotated[Caller, Depends(admin)]


def ours(order_id: str) -> str:
    """`order_id` if it may name an order; else 404 at once, without asking a host (which
    would keep an activation and read the database for it)."""
    if not is_order_id(order_id):
        raise ApiError(404, "not_found", "no such order")
    return order_id
