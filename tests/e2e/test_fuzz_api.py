"""The fuzzer: schemathesis sends every operation of the API's own OpenAPI document, loaded
over HTTP from the running platform (`GET /admin/v1/openapi.json`, signed), positive and
negative data, and checks every answer:

- no 5xx (`not_a_server_error`);
- the status is documented for the operation (`status_code_conformance`), with its media
  type, headers (`Retry-After` on 429) and schema (`content_type_conformance`,
  `response_headers_conformance`, `response_schema_conformance`: every answer model forbids
  undeclared fields, and an error's code must be one its status lists);
- data the schema does not allow is refused (`negative_data_rejection`), and a method the
  path does not have is 405 with an `Allow` header (`unsupported_method`);
- `error_contract` below: every 4xx is the contract's error shape with a code documented for
  that operation and status.

Every request is signed, by a requests auth hook that runs after the request is prepared: it
signs the method, the path and query as they go on the wire and the exact body bytes (a text
body is encoded here, so the bytes signed are the bytes sent). Distributor operations are
signed with a distributor of the test's own, admin operations with the world's admin key.

The platform's database is shared by every e2e test, so the fuzzer keeps off the world's
objects: it works in a supplier of its own (a sandbox process of its own, so its locks and
their expiries never move the world's inventory) and with distributors of its own. What it
sends is aimed (`_aim`) before it goes:

- positive path parameters name, about half the time, an object the test made (its orders,
  its supplier, its victim distributor with its keys and grants), so the fuzzer reaches
  real answers and not only 404s; nothing it is aimed at is the world's;
- commands that would change what other tests rely on are pointed away from it: a period is
  never closed (a past day becomes a day far in the future: 409 `period_not_over`), no
  callback is redelivered (message ids are moved past any real one), a supplier made by the
  fuzzer calls a closed local port (it never reaches another address), an order's
  `callback_url` is taken out (the courier would resolve and call whatever host it names),
  only the test's own supplier is scaled, to one replica (more would start dedicated host
  processes on a 2-core machine), the order hosts are "scaled" to the count they have, and
  only a supplier made to be retired is retired;
- creation is bounded: a few dozen suppliers and distributors a run. A supplier is a row and
  an actor the pool hosts activate for its catalog pulls (of a closed port: refused at once);
  every supplier the test made is retired when it ends, so none is pulled from after it.

Deterministic (fixed seed, derandomized, no example database) and bounded: `MAX_EXAMPLES`
fuzzing examples per operation plus the coverage phase's cases; the run prints how many
cases it sent and what came back.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import schemathesis
from schemathesis.core.parameters import ParameterLocation

from persistence.catalog import catalog_id
from showdist.client import Credentials, SignedClient
from suppliers.sandbox.process import SandboxAdmin, SandboxProcess
from tests.support.world import World

Case = schemathesis.Case[Any]

SEED = 20261201
MAX_EXAMPLES = 40  # per operation in the fuzzing phase, positive and negative together
CLOSED = "http://127.0.0.1:9/"  # the discard port: nothing listens there
ORDER_HOSTS = 2  # the run's platform's (tests/conftest.py)

CONFIG: dict[str, Any] = {
    "seed": SEED,
    "generation": {
        "mode": "all",
        "max-examples": MAX_EXAMPLES,
        "deterministic": True,
        "database": "none",
    },
    "phases": {
        "examples": {"enabled": False},  # the document has no examples
        "coverage": {"enabled": True},
        "fuzzing": {"enabled": True},
        "stateful": {"enabled": False},  # not run by the pytest integration
    },
    "checks": {
        "enabled": False,
        "not_a_server_error": {"enabled": True},
        "status_code_conformance": {"enabled": True},
        "content_type_conformance": {"enabled": True},
        "response_headers_conformance": {"enabled": True},
        "response_schema_conformance": {"enabled": True},
        "negative_data_rejection": {"enabled": True},
        "unsupported_method": {"enabled": True},
        "error_contract": {"enabled": True},
    },
    "request-timeout": 30,
}


def _fuzz_catalog() -> dict[str, Any]:
    def tier(ref: str) -> dict[str, Any]:
        return {
            "ref": ref,
            "name": ref,
            "face_value": 38000,
            "price": 36000,
            "settlement_price": 32400,
            "currency": "CNY",
            "stock": 1_000_000,
        }

    return {
        "shows": [
            {
                "ref": "fuzz_show",
                "title": "模糊测试演出",
                "city": "杭州",
                "category": "concert",
                "venue": "测试剧场",
                "starts_at": "2027-03-01T19:30:00+08:00",
                "status": "online",
                "sessions": [
                    {
                        "ref": "fuzz_session",
                        "starts_at": "2027-03-01T19:30:00+08:00",
                        "status": "online",
                        "tiers": [tier("fuzz_tier")],
                    }
                ],
            }
        ]
    }


class Signed(requests.auth.AuthBase):
    """Signs a prepared request: its method, the path and query as sent, and its body bytes."""

    def __init__(self, creds: Credentials) -> None:
        self.creds = creds

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        body = r.body if r.body is not None else b""
        if isinstance(body, str):  # (http.client would encode it as latin-1: send UTF-8)
            body = body.encode("utf-8")
            r.body = body
            r.prepare_content_length(body)
        assert isinstance(body, bytes), f"cannot sign a {type(body).__name__} body"
        assert r.method is not None
        r.headers.update(self.creds.headers(r.method, r.path_url, body))
        return r


@dataclass
class Targets:
    """What the fuzzer may aim at: objects this test made, and nothing of the world's."""

    base_url: str
    admin: Credentials
    caller: Credentials  # a distributor of the test's own, for the distributor operations
    caller_id: str
    victim_id: str  # the distributor the admin operations may change
    victim_keys: list[str]
    victim_grants: list[str]
    supplier_id: str  # backed by the test's own sandbox
    retiree_id: str  # a supplier the fuzzer may retire
    show_id: str
    session_id: str
    tier_id: str
    orders: list[str]
    world_ids: frozenset[str]  # never to be aimed at
    made_suppliers: list[str] = field(default_factory=list)  # by the fuzzer, retired after

    def pool(self, method: str, path: str, name: str) -> list[str]:
        """The objects a positive path parameter may be aimed at."""
        if name == "order_id":
            return self.orders
        if name == "show_id":
            return [self.show_id]
        if name == "session_id":
            return [self.session_id]
        if name == "supplier_id":
            return [self.retiree_id] if path.endswith("/retire") else [self.supplier_id]
        if name == "distributor_id":
            return [self.victim_id]
        if name == "key_id":
            return self.victim_keys
        if name == "grant_id":
            return self.victim_grants
        if name == "period":
            return [datetime.now(UTC).date().isoformat()]
        return []


def _ok(r: Any, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    return body


@pytest.fixture(scope="module")
def fuzz_sandbox() -> Iterator[SandboxProcess]:
    proc = SandboxProcess.start()
    SandboxAdmin(proc.url).load_catalog(_fuzz_catalog())
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def targets(world: World, fuzz_sandbox: SandboxProcess) -> Iterator[Targets]:
    admin = SignedClient(world.base_url, world.admin)
    try:
        sandbox = {"base_url": fuzz_sandbox.url, "timeout_s": 2.0}
        supplier = _ok(
            admin.request(
                "POST",
                "/admin/v1/suppliers",
                {"name": "Fuzz Box Office", "gateway": "sandbox", "config": sandbox},
            ),
            201,
        )["id"]
        _ok(admin.request("POST", f"/admin/v1/suppliers/{supplier}/sync"))
        retiree = _ok(
            admin.request(
                "POST",
                "/admin/v1/suppliers",
                {"name": "Fuzz Retiree", "gateway": "sandbox", "config": {"base_url": CLOSED}},
            ),
            201,
        )["id"]

        def distributor(
            name: str, *grants: dict[str, Any]
        ) -> tuple[str, list[Credentials], list[str]]:
            did = _ok(admin.request("POST", "/admin/v1/distributors", {"name": name}), 201)["id"]
            keys = []
            for _ in range(2):
                key = _ok(
                    admin.request("POST", f"/admin/v1/distributors/{did}/keys", {"type": "hmac"}),
                    201,
                )
                keys.append(Credentials(key["key_id"], secret=key["secret"]))
            granted = [
                _ok(admin.request("POST", f"/admin/v1/distributors/{did}/grants", g), 201)["id"]
                for g in grants
            ]
            return did, keys, granted

        caller_id, caller_keys, _ = distributor(
            "Fuzz Caller", {"scope": "supplier", "value": supplier}
        )
        victim_id, victim_keys, victim_grants = distributor(
            "Fuzz Victim", {"scope": "all"}, {"scope": "city", "value": "杭州"}
        )
        synced = _ok(admin.request("GET", f"/admin/v1/suppliers/{supplier}"))
        assert synced["catalog_sync"]["tiers"] == 1, synced
    finally:
        admin.close()
    show_id = catalog_id("shw", supplier, "fuzz_show")
    session_id = catalog_id("ses", supplier, "fuzz_show", "fuzz_session")
    tier_id = catalog_id("tir", supplier, "fuzz_show", "fuzz_session", "fuzz_tier")

    # The caller's orders, one in each state a command can meet.
    caller = SignedClient(world.base_url, caller_keys[0])
    try:

        def order(n: int, *moves: str) -> str:
            body = world.order_body(f"fuzz-{n}", session_id=session_id, tier_id=tier_id)
            made = _ok(caller.request("POST", "/v1/orders", body), 201)
            for move in moves:
                caller.request("POST", f"/v1/orders/{made['id']}/{move}").raise_for_status()
            return str(made["id"])

        orders = [order(1), order(2, "issue"), order(3, "cancel"), order(4, "issue", "refund")]
    finally:
        caller.close()

    world_ids = frozenset(
        {
            world.supplier_id,
            world.a.distributor_id,
            world.b.distributor_id,
            world.a.creds.key_id,
            world.b.creds.key_id,
            world.admin.key_id,
            *(p.ed25519.key_id for p in (world.a, world.b) if p.ed25519 is not None),
        }
    )
    made = Targets(
        base_url=world.base_url,
        admin=world.admin,
        caller=caller_keys[0],
        caller_id=caller_id,
        victim_id=victim_id,
        victim_keys=[k.key_id for k in victim_keys],
        victim_grants=victim_grants,
        supplier_id=supplier,
        retiree_id=retiree,
        show_id=show_id,
        session_id=session_id,
        tier_id=tier_id,
        orders=orders,
        world_ids=world_ids,
    )
    yield made
    # Every supplier the test made is retired: the pool hosts pull no catalog from them.
    admin = SignedClient(world.base_url, world.admin)
    try:
        for sid in (made.supplier_id, made.retiree_id, *made.made_suppliers):
            _ok(admin.request("POST", f"/admin/v1/suppliers/{sid}/retire"))
    finally:
        admin.close()


@pytest.fixture(scope="module")
def api_schema(targets: Targets) -> schemathesis.BaseSchema:
    config = schemathesis.Config.from_dict(CONFIG)
    schema = schemathesis.openapi.from_url(
        f"{targets.base_url}/admin/v1/openapi.json",
        config=config,
        auth=Signed(targets.admin),
        timeout=30,
    )
    for path, operations in schema.raw_schema["paths"].items():
        for method, operation in operations.items():
            for status in operation["responses"]:
                if int(status) >= 400:  # every error status names its codes
                    assert documented_codes(operation, int(status)), (method, path, status)
    return schema


@pytest.fixture(scope="module")
def fuzz_http(targets: Targets) -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.trust_env = False  # (no proxy from the environment: the platform is local)
        yield session


@dataclass
class Tally:
    cases: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    answers: Counter[tuple[str, int]] = field(default_factory=Counter)  # (operation, status)
    phases: Counter[str] = field(default_factory=Counter)
    modes: Counter[str] = field(default_factory=Counter)


@pytest.fixture(scope="module")
def tally(request: pytest.FixtureRequest, api_schema: schemathesis.BaseSchema) -> Iterator[Tally]:
    counted = Tally()
    yield counted
    lines = [
        f"fuzz: {sum(counted.cases.values())} cases over {len(counted.cases)} operations",
        "  by phase: " + ", ".join(f"{k} {v}" for k, v in sorted(counted.phases.items())),
        "  by mode: " + ", ".join(f"{k} {v}" for k, v in sorted(counted.modes.items())),
        "  by status: " + ", ".join(f"{k}: {v}" for k, v in sorted(counted.statuses.items())),
    ]
    for label in counted.cases:
        answers = sorted((s, n) for (op, s), n in counted.answers.items() if op == label)
        lines.append(f"  {label}: " + " ".join(f"{s}x{n}" for s, n in answers))
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # (shown without -s)
            reporter.write_line("")
            for line in lines:
                reporter.write_line(line)
    documented = sum(len(ops) for ops in api_schema.raw_schema["paths"].values())
    assert len(counted.cases) == documented, "an operation was not fuzzed"


# -- the error contract ------------------------------------------------------------------------


def documented_codes(operation: dict[str, Any], status: int) -> frozenset[str] | None:
    """The error codes an operation's document lists for `status` (None: no error schema)."""
    response = operation.get("responses", {}).get(str(status), {})
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    codes = schema.get("properties", {}).get("error", {}).get("properties", {}).get("code", {})
    listed = codes.get("enum")
    return None if listed is None else frozenset(listed)


@schemathesis.check
def error_contract(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Case
) -> bool | None:
    """A 4xx is `{"error": {"code", "message"}}` (with the order beside it, for an answer
    about one), and its code is one the document lists for this operation and status (a
    method the path does not have: 405 `method_not_allowed`)."""
    if response.status_code < 400:
        return None
    body = response.json()
    assert isinstance(body, dict), f"not the error shape: {body!r}"
    assert "error" in body, f"not the error shape: {body!r}"
    assert set(body) <= {"error", "order"}, f"unexpected fields beside the error: {sorted(body)}"
    error = body["error"]
    assert isinstance(error, dict), error
    assert set(error) == {"code", "message"}, error
    assert isinstance(error["code"], str), error
    assert isinstance(error["message"], str), error
    if case.method.upper() != case.operation.method.upper():  # (a method the path lacks)
        assert (response.status_code, error["code"]) == (405, "method_not_allowed"), body
        return None
    status = response.status_code
    documented = documented_codes(case.operation.definition.raw, status)
    assert documented is not None, f"{case.operation.label}: no error schema for {status}"
    assert error["code"] in documented, (
        f"{case.operation.label} {status}: {error['code']} is not one of {sorted(documented)}"
    )
    return None


# -- aiming ------------------------------------------------------------------------------------


def _pick(case: Case, pool: list[str]) -> str | None:
    """About half the time, one of `pool` (the same for the same case: the run is repeatable)."""
    digest = zlib.crc32(repr((case.operation.label, case.path_parameters, case.query)).encode())
    return pool[digest // 2 % len(pool)] if pool and digest % 2 == 0 else None


def _http_url(value: Any) -> bool:
    if not isinstance(value, str) or len(value) > 2000:
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _a_past_day(value: Any) -> bool:
    try:
        return isinstance(value, str) and date.fromisoformat(value) <= datetime.now(UTC).date()
    except ValueError:
        return False


def _aim(case: Case, targets: Targets) -> None:
    """Point the case at the test's own objects and away from what others rely on."""
    method, path = case.method.upper(), case.operation.path
    meta = case.meta
    negative = {
        loc for loc, info in (meta.components.items() if meta else ()) if info.mode.is_negative
    }
    params = case.path_parameters
    if params and ParameterLocation.PATH not in negative:
        for name in list(params):
            chosen = _pick(case, targets.pool(method, path, name))
            if chosen is not None:
                params[name] = chosen
    if params:
        if "message_id" in params:  # no real callback is redelivered
            value = str(params["message_id"])
            if value.isascii() and value.isdigit() and len(value) <= 18:
                params["message_id"] = str(10**17 + int(value) % 10**17)
        if path.endswith("/close") and _a_past_day(params.get("period")):
            params["period"] = "2999-12-31"  # no period is closed: 409 period_not_over
        touched = {str(v) for v in params.values()} & targets.world_ids
        assert not touched or method == "GET", f"aimed at the world's {touched}"
    body = case.body
    if not isinstance(body, dict):
        return
    if (method, path) == ("POST", "/v1/orders"):
        if ParameterLocation.BODY not in negative and _pick(case, ["aim"]) is not None:
            body["session_id"], body["tier_id"] = targets.session_id, targets.tier_id
        if isinstance(body.get("callback_url"), str):
            # The courier would call whatever the URL names: no URL goes in. A negative case
            # keeps a value the platform refuses, as the one it had may have been why.
            body["callback_url"] = "not a url" if ParameterLocation.BODY in negative else None
    elif (method, path) == ("POST", "/admin/v1/suppliers"):
        # Whatever a made supplier would call is a closed local port. (A positive body's
        # base_url becomes that URL: the schema says only "a string", the route wants a URL.)
        config = body.get("config")
        positive = ParameterLocation.BODY not in negative
        if isinstance(config, dict) and (positive or _http_url(config.get("base_url"))):
            config["base_url"] = CLOSED
    elif (method, path) == ("PUT", "/admin/v1/order-hosts"):
        hosts = body.get("hosts")
        if isinstance(hosts, int) and not isinstance(hosts, bool) and 1 <= hosts <= 64:
            # The count in force: no partition moves and no host starts or stops (the other
            # tests hold handles to the run's two hosts).
            body["hosts"] = ORDER_HOSTS
    elif path.endswith("/replicas") and params and params.get("supplier_id") == targets.supplier_id:
        replicas = body.get("replicas")
        if isinstance(replicas, int) and not isinstance(replicas, bool) and 1 <= replicas <= 32:
            body["replicas"] = 1  # stays in the pool: no dedicated host process starts


def _signer(path: str, targets: Targets) -> Signed | None:
    if path.startswith("/admin/"):
        return Signed(targets.admin)
    if path.startswith("/v1/") and path != "/v1/platform-key":
        return Signed(targets.caller)
    return None  # unsigned routes


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
def test_every_operation_keeps_the_contract(
    case: Case, targets: Targets, fuzz_http: requests.Session, tally: Tally
) -> None:
    _aim(case, targets)
    response = case.call(session=fuzz_http, auth=_signer(case.operation.path, targets))
    tally.cases[case.operation.label] += 1
    tally.statuses[response.status_code] += 1
    tally.answers[(case.operation.label, response.status_code)] += 1
    if case.operation.label == "POST /admin/v1/suppliers" and response.status_code == 201:
        targets.made_suppliers.append(response.json()["id"])
    if case.meta is not None:
        tally.phases[case.meta.phase.name.value] += 1
        tally.modes[case.meta.generation.mode.value] += 1
    case.validate_response(response)
