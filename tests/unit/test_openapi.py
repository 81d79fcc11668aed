"""The OpenAPI document the API serves describes every operation whole: its request body (the
ones the routes read themselves too), its answers with their models, and every error status
it may give with the codes that status carries, in the contract's error shape (not FastAPI's
validation error). The fuzz test (tests/e2e/test_fuzz_api.py) checks the real answers
against it; this checks the document itself, without a platform."""

from __future__ import annotations

import ast
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import ValidationError

from serve_app.admin import GrantBody, ReplicasBody
from serve_app.app import build_app
from serve_app.contract import MEANING
from serve_app.errors import describe_validation
from serve_app.views import ts
from suppliers.registry import GATEWAY_KINDS

ROOT = Path(__file__).resolve().parents[2]
SIGNED_ERRORS = {"401", "403", "422", "429", "503"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    doc: dict[str, Any] = build_app().openapi()
    return doc


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, ops in document["paths"].items()
        for method, op in ops.items()
    ]


def error_codes(response: dict[str, Any]) -> list[str]:
    schema = response["content"]["application/json"]["schema"]
    assert schema["allOf"] == [{"$ref": "#/components/schemas/Error"}]
    codes: list[str] = schema["properties"]["error"]["properties"]["code"]["enum"]
    return codes


def test_no_operation_uses_fastapis_validation_error(document: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in repr(document)
    assert "ValidationError" not in document["components"]["schemas"]


def test_every_answer_has_a_schema(document: dict[str, Any]) -> None:
    for method, path, op in operations(document):
        successes = {s: r for s, r in op["responses"].items() if s.startswith("2")}
        assert successes, (method, path)
        for status, response in successes.items():
            content = response["content"]
            (media_type,) = content
            schema = content[media_type]["schema"]
            assert schema, (method, path, status)
            if media_type == "application/json":
                assert set(schema) == {"$ref"}, (method, path, status, schema)


def test_every_error_status_names_its_codes_in_the_error_shape(
    document: dict[str, Any],
) -> None:
    for method, path, op in operations(document):
        for status, response in op["responses"].items():
            if status.startswith("2"):
                continue
            codes = error_codes(response)
            assert codes, (method, path, status)
            assert set(codes) <= set(MEANING), (method, path, status)
            for code in codes:
                assert f"`{code}`" in response["description"], (method, path, status, code)
        if path in ("/healthz", "/v1/platform-key"):  # unsigned
            assert set(op["responses"]) >= {"422", "503"}
            assert "401" not in op["responses"]
        else:
            assert set(op["responses"]) >= SIGNED_ERRORS, (method, path)
            assert "Retry-After" in op["responses"]["429"]["headers"]


def test_operations_with_an_id_in_the_path_may_answer_404(document: dict[str, Any]) -> None:
    for method, path, op in operations(document):
        if "_id}" in path:
            assert "not_found" in error_codes(op["responses"]["404"]), (method, path)


def _routes_reading_a_body() -> set[str]:
    """The route functions that read a JSON body (`read_body(request, Model)`)."""
    found = set()
    for source in sorted((ROOT / "serve_app").glob("*.py")):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.AsyncFunctionDef) and any(
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Name)
                and call.func.id == "read_body"
                and len(call.args) == 2  # (`deps.read_body(request, Model)`)
                for call in ast.walk(node)
            ):
                found.add(node.name)
    return found


def test_every_body_a_route_reads_is_documented(document: dict[str, Any]) -> None:
    readers = _routes_reading_a_body()
    assert len(readers) >= 10, readers
    schemas = document["components"]["schemas"]
    documented = set()
    for route in iter_route_contexts(build_app().router.routes):
        name = getattr(route.endpoint, "__name__", "")
        if not isinstance(route.original_route, APIRoute) or name not in readers:
            continue
        documented.add(name)
        path = str(route.path_format)
        for method in route.methods or ():
            op = document["paths"][path][method.lower()]
            ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            model = schemas[ref.rsplit("/", 1)[1]]
            assert model["additionalProperties"] is False, (method, path)
            assert "payload_too_large" in error_codes(op["responses"]["413"]), path
    assert documented == readers


def test_the_body_schemas_say_what_the_routes_refuse(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    order = schemas["CreateOrderBody"]["properties"]
    assert order["quantity"] == {
        "maximum": 20,
        "minimum": 1,
        "title": "Quantity",
        "type": "integer",
    }
    supplier = schemas["SupplierBody"]["properties"]
    assert supplier["gateway"]["enum"] == list(GATEWAY_KINDS)
    kinds = supplier["config"]["anyOf"]
    assert [k["title"] for k in kinds] == ["SandboxConfig", "PretixConfig"]
    assert all("base_url" in k["required"] for k in kinds)
    grant = schemas["GrantBody"]["properties"]
    assert {"type": "string", "format": "date-time"} in grant["valid_from"]["anyOf"]


# -- what the schemas say, the models do ------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ('{"replicas": "2"}', "replicas: Input should be a valid integer"),
        ('{"replicas": true}', "replicas: Input should be a valid integer"),
        ('{"replicas": 2.0}', "replicas: Input should be a valid integer"),
    ],
)
def test_a_number_in_a_body_is_a_json_number(raw: str, error: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ReplicasBody.model_validate_json(raw)
    assert describe_validation(caught.value).startswith(error)


@pytest.mark.parametrize(
    "value",
    [
        0,
        1_700_000_000,
        "1700000000",
        "2026-11-25",
        "2026-11-25T10:00",
        "2026-11-25T10:00:00+0800",
        "9999-12-31T23:59:59Z",  # a day from the calendar's end: not shown in every zone
        "0001-01-01T00:00:00+08:00",
    ],
)
def test_a_time_in_a_body_is_rfc3339_text(value: object) -> None:
    raw = json.dumps({"scope": "all", "valid_until": value})
    with pytest.raises(ValidationError):
        GrantBody.model_validate_json(raw)


def test_rfc3339_times_are_read() -> None:
    body = GrantBody.model_validate_json(
        '{"scope": "all", "valid_from": "2026-11-25T10:00:00.5+08:00",'
        ' "valid_until": "2026-11-26 02:00:00z"}'
    )
    assert body.valid_from == datetime(2026, 11, 25, 2, 0, 0, 500_000, tzinfo=UTC)
    assert body.valid_until == datetime(2026, 11, 26, 2, tzinfo=UTC)


def test_times_in_answers_are_rfc3339_even_before_the_zone_had_whole_minutes() -> None:
    tz = ZoneInfo("Asia/Shanghai")  # local mean time, +08:05:43, until 1901
    assert ts(datetime(503, 6, 15, 19, 13, 20, tzinfo=UTC), tz) == "0503-06-15T19:13:20+00:00"
    assert ts(datetime(2026, 11, 25, 2, tzinfo=UTC), tz) == "2026-11-25T10:00:00+08:00"
