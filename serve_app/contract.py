"""What the OpenAPI document says of each operation: who may call it, its request body, its
answers and, for every error status it may give, the codes that status may carry.

A route declares itself with `operation(...)`, whose keywords go to the router's decorator:

    @router.post("/things", status_code=201, **operation(
        ADMIN, body=ThingBody, ok={201: (ThingView, "the new thing")}, errors={404: ...}))

- Answers are documentation only (`response_model=None`): a route builds its JSON itself and
  nothing validates it on the way out (the hot paths stay as lean as they were). The fuzz
  test checks the real answers against these schemas.
- A body that a route reads itself (`deps.read_body`, after the signature check and with the
  API's own 422) is described from its model, through `openapi_extra`, not as a FastAPI body
  parameter: FastAPI would parse it before the route (and before the signature check), and
  the hot-path dispatcher does not serve body parameters.
- Every error is `Error` (`{"error": {"code", "message"}, "order"?}`); each status's schema
  names the codes it may carry (an `enum` on `error.code`), and its description says what each
  means. The errors every caller may meet (the signature's, the input guard's, the rate limit,
  the API starting) are added by the kind of caller, so a route lists only its own.

`complete(document)` finishes the document FastAPI generated: the body models' schemas and
the error models join the components, FastAPI's own validation-error schemas, which no
operation uses, are gone, and the path and query parameters say they hold no control
character (as the bodies' strings do: `serve_app.schemas`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from serve_app.models import Error
from serve_app.schemas import refuse_controls_in_schema

REF = "#/components/schemas/"

# What each error code means (as docs/api.md says it), for the responses' descriptions.
MEANING: dict[str, str] = {
    "signature_missing": "a signature header is absent or empty",
    "signature_malformed": "a signature header is not of its form, or repeated",
    "key_unknown": "no such key",
    "key_revoked": "the key was revoked",
    "key_expired": "the key has expired",
    "timestamp_out_of_window": "the timestamp is outside the window",
    "signature_invalid": "the signature does not verify",
    "nonce_replayed": "the nonce was used before",
    "account_suspended": "the key's distributor is suspended",
    "forbidden": "wrong kind of key for the route",
    "not_found": "no such object, or not the caller's",
    "invalid_transition": "the status does not allow this command",
    "idempotency_conflict": "this distributor_order_id was used with a different body",
    "sold_out": "too few seats left; the order is LOCK_FAILED, nothing is owed",
    "not_on_sale": "the show or the session is not online",
    "attendee_limit": "an attendee's document already holds its tickets of the session",
    "issue_failed": "the supplier did not issue; the order is CANCELED, nothing is owed",
    "lock_expired": "issue came after lock_expires_at; the order is CANCELED",
    "period_not_over": "the period's day has not ended",
    "supplier_retired": "the supplier is retired",
    "scaling_in_progress": "an earlier change of the order hosts is still being carried out",
    "invalid_request": "a malformed body, query parameter, path, cursor or period",
    "payload_too_large": "the body is larger than the limit; it was not read",
    "rate_limited": "over the rate limit; Retry-After says how many seconds to wait",
    "supplier_unavailable": "the supplier (or its actor) could not be reached",
    "order_host_unavailable": "the order's host could not be reached; retry",
    "database_unavailable": "the API replica's database call failed; retry",
    "settlement_unavailable": "the settlement actor could not answer; retry",
    "nonce_store_unavailable": "the nonce store could not answer; retry",
    "rate_limiter_unavailable": "the rate limiter could not answer; retry",
    "starting": "this API replica has not finished starting",
}

_STATUS_TEXT = {
    401: "Not authenticated",
    403: "Not allowed",
    404: "Not found",
    409: "Conflict with the object's state",
    413: "Body too large",
    422: "Invalid request",
    429: "Too many requests",
    503: "Unavailable: retry",
}


class Caller(StrEnum):
    ANYONE = "anyone"
    DISTRIBUTOR = "distributor"
    ADMIN = "admin"


ANYONE, DISTRIBUTOR, ADMIN = Caller.ANYONE, Caller.DISTRIBUTOR, Caller.ADMIN

_SIGNATURE = (
    "signature_missing",
    "signature_malformed",
    "key_unknown",
    "key_revoked",
    "key_expired",
    "timestamp_out_of_window",
    "signature_invalid",
    "nonce_replayed",
)

# Every request may meet the input guard (control characters in the path or the query, a
# repeated query parameter) and an API replica that is still starting.
_ANYONE: dict[int, tuple[str, ...]] = {422: ("invalid_request",), 503: ("starting",)}
# A signed request may also fail the signature's checks, in their order (docs/signing.md).
_SIGNED: dict[int, tuple[str, ...]] = {
    401: _SIGNATURE,
    403: ("account_suspended", "forbidden"),
    422: ("invalid_request",),
    429: ("rate_limited",),
    503: (
        "starting",
        "database_unavailable",
        "nonce_store_unavailable",
        "rate_limiter_unavailable",
    ),
}

# The request bodies the document describes (their schemas join the components).
_BODIES: dict[str, type[BaseModel]] = {}

Answer = tuple[type[BaseModel], str] | dict[str, Any]


def error_schema(codes: Iterable[str]) -> dict[str, Any]:
    """An error whose code is one of `codes`."""
    return {
        "allOf": [{"$ref": REF + Error.__name__}],
        "properties": {"error": {"properties": {"code": {"enum": sorted(set(codes))}}}},
    }


def _error_response(status: int, codes: Iterable[str]) -> dict[str, Any]:
    ordered = list(dict.fromkeys(codes))
    unknown = [c for c in ordered if c not in MEANING]
    if unknown:
        raise ValueError(f"error codes without a meaning: {unknown}")
    lines = "; ".join(f"`{c}`: {MEANING[c]}" for c in ordered)
    response: dict[str, Any] = {
        "description": f"{_STATUS_TEXT.get(status, 'Error')}. {lines}",
        "content": {"application/json": {"schema": error_schema(ordered)}},
    }
    if status == 429:
        response["headers"] = {
            "Retry-After": {
                "description": "whole seconds to wait (at least 1)",
                "required": True,
                "schema": {"type": "integer", "minimum": 1},
            }
        }
    return response


def operation(
    caller: Caller,
    *,
    ok: Mapping[int, Answer],
    errors: Mapping[int, Iterable[str]] | None = None,
    body: type[BaseModel] | None = None,
) -> dict[str, Any]:
    """The keywords of a route's decorator that document it: its answers (`ok`: status ->
    (model, description), or an OpenAPI response object), its own errors (status -> codes;
    the caller's are added), and the JSON body it reads itself, if any (an empty body counts
    as `{}`)."""
    codes: dict[int, list[str]] = {}
    common = _ANYONE if caller is ANYONE else _SIGNED
    for source in (common, errors or {}):
        for status, listed in source.items():
            codes.setdefault(status, []).extend(listed)
    extra: dict[str, Any] = {}
    if body is not None:
        codes.setdefault(413, []).append("payload_too_large")
        codes.setdefault(422, []).append("invalid_request")
        known = _BODIES.setdefault(body.__name__, body)
        if known is not body:
            raise ValueError(f"two body models named {body.__name__}")
        # An empty body counts as `{}`: it may be left out when the model requires nothing.
        required = any(f.is_required() for f in body.model_fields.values())
        extra["requestBody"] = {
            "required": required,
            "description": "JSON; an empty body counts as `{}`; a field not named is refused",
            "content": {"application/json": {"schema": {"$ref": REF + body.__name__}}},
        }
    responses: dict[int | str, dict[str, Any]] = {}
    for status, answer in ok.items():
        if isinstance(answer, dict):
            responses[status] = answer
        else:
            model, description = answer
            responses[status] = {"model": model, "description": description}
    for status in sorted(codes):
        responses[status] = _error_response(status, codes[status])
    documented: dict[str, Any] = {"response_model": None, "responses": responses}
    if extra:
        documented["openapi_extra"] = extra
    return documented


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """`document` (as FastAPI generated it) with the request bodies' and the errors' schemas
    in its components, and no schema that nothing uses of FastAPI's own."""
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    wanted: list[tuple[type[BaseModel], Any]] = [(m, "validation") for m in _BODIES.values()]
    wanted.append((Error, "serialization"))
    _, top = models_json_schema(wanted, ref_template=REF + "{model}")
    for name, schema in top.get("$defs", {}).items():
        known = schemas.setdefault(name, schema)
        if _shape(known) != _shape(schema):  # (FastAPI's copy may leave out defaults)
            raise ValueError(f"two schemas named {name} in the API's document")
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    # The input guard refuses a control character in a path or a query (422).
    for operations in document["paths"].values():
        for op in operations.values():
            for parameter in op.get("parameters", ()):
                parameter["schema"] = copy.deepcopy(parameter["schema"])  # (none shared)
                refuse_controls_in_schema(parameter["schema"])
    text = repr(document["paths"])
    if "HTTPValidationError" in text:
        raise ValueError("an operation still uses FastAPI's validation error: declare its 422")
    return document


def _shape(schema: Any) -> Any:
    """A schema without its annotations (what it allows, not how it is described)."""
    if isinstance(schema, dict):
        return {
            k: _shape(v) for k, v in schema.items() if k not in ("title", "description", "default")
        }
    if isinstance(schema, list):
        return [_shape(v) for v in schema]
    return schema
