"""The sandbox supplier: a real HTTP server with its own inventory and fault injection.

Run it with `python -m suppliers.sandbox --host 127.0.0.1 --port N [--demo]`.

Supplier API (all JSON; errors are `{"error": code, "message": text}`):

- `GET /healthz`
- `GET /catalog` → `{"shows": [{ref, title, city, category, venue, starts_at, status,
  sessions: [{ref, starts_at, status, tiers: [{ref, name, face_value, price, settlement_price,
  currency, available}]}]}]}`
- `POST /locks` `{order_id, session_ref, tier_ref, quantity}` → 200 `{lock_ref}`; 409
  `sold_out` or `refused`; 404 `not_found`; 422 `invalid_request`. Idempotent on order_id.
- `DELETE /locks/{order_id}` → 200 (also when already released or unknown); 409 `refused` when
  the order is issued or its issue is in flight.
- `POST /issues` `{order_id}` → 200 `{tickets: [{code, seat}], issued_at}`; 409 `refused`
  without a held lock. Idempotent: a repeat (even a concurrent one) answers the first result.
- `GET /issues/{order_id}` → `{"state": "issued", tickets, issued_at}` | `{"state": "pending"}`
  (an issue request is in flight) | `{"state": "not_issued"}`.
- `POST /refunds` `{order_id}` → 200 `{refunded_at, initiated_by}`; idempotent.
- `GET /refunds/{order_id}` → `{"state": "refunded", refunded_at, initiated_by}` |
  `{"state": "pending"}` | `{"state": "not_refunded"}`.
- `GET /supplier-refunds?since_seq=N&limit=M` → `{"events": [{seq, order_id, refunded_at}],
  "last_seq": n}`, the refunds the supplier made on its own, `seq > since_seq`, oldest first.
- `GET /delivery-updates?since_seq=N&limit=M` → `{"events": [{seq, order_id, status, at}],
  "last_seq": n}`, express delivery updates of paper tickets (status `SHIPPED` | `DELIVERED`),
  `seq > since_seq`, oldest first.

Admin API (never faulted): `POST /admin/catalog` (replace the catalog, tiers carry `stock`;
clears orders, feeds and counters; with `"check_prices": false` prices are kept as given, even
negative or out of order, to play a faulty supplier), `POST /admin/shows/{show_ref}/cancel`,
`POST /admin/orders/{order_id}/supplier-refund` (the supplier refunds one issued order on its
own and reports it in the refund feed; answers the event; 409 `refused` if not issued or
already refunded), `POST /admin/feeds/supplier-refunds` `{"order_id"}` and
`POST /admin/feeds/delivery-updates` `{"order_id", "status"}` (append an event to a feed without
looking at the books: a faulty supplier reporting an order it never saw; answers the event),
`POST /admin/orders/{order_id}/delivery` `{"status": "SHIPPED" | "DELIVERED"}` (records a
delivery update of an issued, unrefunded order and answers the event; 409 `refused` otherwise;
a status already recorded for the order answers the existing event; SHIPPED before DELIVERED is
not enforced), `PUT|GET /admin/faults` (see `faults.py`; a PUT replaces the whole configuration),
`POST /admin/reset` (clears faults, counters, locks, issues, refunds and both feeds; restores the
stock), `GET /admin/counters` (calls received
per operation; effects performed: `locks_performed`, `releases_performed`, `issues_performed`
(distinct orders issued), `issue_effects` (never above `issues_performed`), `refunds_performed`,
`supplier_refunds_performed`; faults injected: `injected_error`, `injected_refuse`,
`injected_hang`, `injected_lost_response`), `GET /admin/inventory` (per tier ref: `stock`,
`available`, `locked`, `sold`).

Everything runs on one event loop: `SupplierBook` methods never await, so their check-and-update
steps are atomic. Requests that must wait (latency or hang knobs) run as shielded tasks so that a
client giving up does not stop the effect, as with a real supplier; a reset bumps an epoch so
that a request still waiting from before the reset answers 503 and changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from suppliers.sandbox.book import (
    DELIVERY_STATUSES,
    FEED_PAGE_MAX,
    MAX_ID_LENGTH,
    MAX_QUANTITY,
    CatalogError,
    Clock,
    Reply,
    SupplierBook,
    refusal,
    utc_now,
)
from suppliers.sandbox.demo import demo_catalog
from suppliers.sandbox.faults import (
    NO_FAULT,
    Action,
    FaultError,
    FaultInjector,
    Plan,
    parse_faults,
)

__all__ = ["SandboxSupplier", "create_app"]

UNAVAILABLE: Reply = (503, {"error": "unavailable", "message": "service temporarily unavailable"})
INJECTED_REFUSAL: Reply = (409, {"error": "refused", "message": "the supplier refused the request"})
_INJECTED = {
    Action.ERROR: "injected_error",
    Action.REFUSE: "injected_refuse",
    Action.LOSE_RESPONSE: "injected_lost_response",
}


class BadRequest(Exception):
    """A request body or parameter that cannot be used (answered 422)."""


class SandboxSupplier:
    """The supplier's behaviour: its books plus fault injection and in-flight tracking."""

    def __init__(
        self,
        *,
        clock: Clock = utc_now,
        rng: random.Random | None = None,
        fault_rng: random.Random | None = None,
    ) -> None:
        self.book = SupplierBook(clock=clock, rng=rng)
        self.faults = FaultInjector(fault_rng)
        self._issuing: dict[str, asyncio.Future[Reply]] = {}
        self._refunding: dict[str, asyncio.Future[Reply]] = {}
        self._background: set[asyncio.Task[Reply]] = set()
        self._epoch = 0

    # -- supplier operations ----------------------------------------------------------------

    async def lock(
        self,
        order_id: str,
        session_ref: str,
        tier_ref: str,
        quantity: int,
        attendees: tuple[tuple[str, str, str], ...] = (),
    ) -> Reply:
        return await self._run(
            "lock",
            lambda: self.book.lock(order_id, session_ref, tier_ref, quantity, attendees),
            order_id=order_id,
        )

    async def release(self, order_id: str) -> Reply:
        def perform() -> Reply:
            if _running(self._issuing, order_id):
                return refusal(409, "refused", "an issue of this order is in progress")
            return self.book.release(order_id)

        return await self._run("release", perform, order_id=order_id)

    async def issue(self, order_id: str) -> Reply:
        return await self._run(
            "issue",
            lambda: self.book.issue(order_id),
            inflight=self._issuing,
            key=order_id,
            order_id=order_id,
        )

    async def query_issue(self, order_id: str) -> Reply:
        def perform() -> Reply:
            if order_id not in self.book.issues and _running(self._issuing, order_id):
                return 200, {"state": "pending"}
            return self.book.query_issue(order_id)

        return await self._run("query_issue", perform)

    async def refund(self, order_id: str) -> Reply:
        return await self._run(
            "refund",
            lambda: self.book.refund(order_id),
            inflight=self._refunding,
            key=order_id,
            order_id=order_id,
        )

    async def query_refund(self, order_id: str) -> Reply:
        def perform() -> Reply:
            if order_id not in self.book.refunds and _running(self._refunding, order_id):
                return 200, {"state": "pending"}
            return self.book.query_refund(order_id)

        return await self._run("query_refund", perform)

    async def catalog(self) -> Reply:
        return await self._run("catalog", lambda: (200, self.book.catalog()))

    async def supplier_refunds(self, since_seq: int, limit: int) -> Reply:
        return await self._run(
            "supplier_refunds", lambda: self.book.supplier_refunds(since_seq, limit)
        )

    async def delivery_updates(self, since_seq: int, limit: int) -> Reply:
        return await self._run(
            "delivery_updates", lambda: self.book.delivery_updates(since_seq, limit)
        )

    # -- admin ------------------------------------------------------------------------------

    def load_catalog(self, spec: object) -> None:
        self.book.load(spec)
        self._forget_in_flight()

    def reset(self) -> None:
        self.book.reset()
        self.faults.clear()
        self._forget_in_flight()

    def _forget_in_flight(self) -> None:
        self._epoch += 1
        self._issuing = {}
        self._refunding = {}

    # -- fault injection --------------------------------------------------------------------

    async def _run(
        self,
        op: str,
        perform: Callable[[], Reply],
        *,
        inflight: dict[str, asyncio.Future[Reply]] | None = None,
        key: str = "",
        order_id: str | None = None,
    ) -> Reply:
        self.book.counters.calls[op] += 1
        if order_id is not None:
            per = self.book.counters.per_order.setdefault(order_id, {})
            per[op] = per.get(op, 0) + 1
        if inflight is not None:
            running = inflight.get(key)
            if running is not None and not running.done():
                # a concurrent repeat: wait for the first request and answer what it answers
                return await asyncio.shield(running)
        plan = self.faults.plan(op)
        if plan is not NO_FAULT:
            self._count_injected(plan)
        if plan.delay_s <= 0:
            return self._finish(plan, perform)
        task = asyncio.create_task(self._later(plan, perform, self._epoch))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        if inflight is not None:
            inflight[key] = task
            task.add_done_callback(lambda done: _forget(inflight, key, done))
        return await asyncio.shield(task)

    def _count_injected(self, plan: Plan) -> None:
        injected = self.book.counters.injected
        if plan.hung:
            injected["injected_hang"] += 1
        name = _INJECTED.get(plan.action)
        if name is not None:
            injected[name] += 1

    async def _later(self, plan: Plan, perform: Callable[[], Reply], epoch: int) -> Reply:
        await asyncio.sleep(plan.delay_s)
        if epoch != self._epoch:
            return UNAVAILABLE  # the sandbox was reset meanwhile; touch nothing
        return self._finish(plan, perform)

    def _finish(self, plan: Plan, perform: Callable[[], Reply]) -> Reply:
        action = plan.action
        if action is Action.PERFORM:
            return perform()
        if action is Action.ERROR:
            return UNAVAILABLE
        if action is Action.REFUSE:
            return INJECTED_REFUSAL
        perform()
        return UNAVAILABLE  # performed, but the answer is "lost"


def _running(inflight: dict[str, asyncio.Future[Reply]], key: str) -> bool:
    future = inflight.get(key)
    return future is not None and not future.done()


def _forget(inflight: dict[str, asyncio.Future[Reply]], key: str, done: object) -> None:
    if inflight.get(key) is done:
        del inflight[key]


# -- HTTP layer ------------------------------------------------------------------------------


def _respond(reply: Reply) -> Response:
    status, body = reply
    content = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return Response(content, status_code=status, media_type="application/json")


def _invalid(message: str) -> Response:
    return _respond(refusal(422, "invalid_request", message))


async def _json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw)
    except ValueError:
        raise BadRequest("the body must be JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _ref(value: object, name: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_LENGTH:
        raise BadRequest(f"{name} must be a string of 1 to {MAX_ID_LENGTH} characters")
    return value


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be from {low} to {high}")
    return value


Handler = Callable[[Request], Awaitable[Response]]


def _guarded(handler: Handler) -> Handler:
    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except BadRequest as exc:
            return _invalid(str(exc))

    return guarded


def create_app(*, demo: bool = False, supplier: SandboxSupplier | None = None) -> Starlette:
    """The sandbox as an ASGI app; `supplier` lets tests inject clocks and random sources."""
    sandbox = supplier or SandboxSupplier()
    if demo:
        sandbox.load_catalog(demo_catalog())

    async def healthz(request: Request) -> Response:
        return _respond((200, {"status": "ok"}))

    async def catalog(request: Request) -> Response:
        return _respond(await sandbox.catalog())

    async def lock(request: Request) -> Response:
        body = await _json_object(request)
        order_id = _ref(body.get("order_id"), "order_id")
        session_ref = _ref(body.get("session_ref"), "session_ref")
        tier_ref = _ref(body.get("tier_ref"), "tier_ref")
        quantity = body.get("quantity")
        if type(quantity) is not int or not 0 < quantity <= MAX_QUANTITY:
            raise BadRequest(f"quantity must be an integer from 1 to {MAX_QUANTITY}")
        attendees = _attendees(body.get("attendees", []))
        return _respond(await sandbox.lock(order_id, session_ref, tier_ref, quantity, attendees))

    async def release(request: Request) -> Response:
        order_id = _ref(request.path_params["order_id"], "order_id")
        return _respond(await sandbox.release(order_id))

    async def issue(request: Request) -> Response:
        body = await _json_object(request)
        return _respond(await sandbox.issue(_ref(body.get("order_id"), "order_id")))

    async def query_issue(request: Request) -> Response:
        order_id = _ref(request.path_params["order_id"], "order_id")
        return _respond(await sandbox.query_issue(order_id))

    async def refund(request: Request) -> Response:
        body = await _json_object(request)
        return _respond(await sandbox.refund(_ref(body.get("order_id"), "order_id")))

    async def query_refund(request: Request) -> Response:
        order_id = _ref(request.path_params["order_id"], "order_id")
        return _respond(await sandbox.query_refund(order_id))

    async def supplier_refunds(request: Request) -> Response:
        since_seq = _int_param(request, "since_seq", 0, 0, 2**62)
        limit = _int_param(request, "limit", 1000, 1, FEED_PAGE_MAX)
        return _respond(await sandbox.supplier_refunds(since_seq, limit))

    async def delivery_updates(request: Request) -> Response:
        since_seq = _int_param(request, "since_seq", 0, 0, 2**62)
        limit = _int_param(request, "limit", 1000, 1, FEED_PAGE_MAX)
        return _respond(await sandbox.delivery_updates(since_seq, limit))

    async def admin_catalog(request: Request) -> Response:
        body = await _json_object(request)
        try:
            sandbox.load_catalog(body)
        except CatalogError as exc:
            raise BadRequest(str(exc)) from None
        return _respond((200, {"shows": len(sandbox.book.shows)}))

    async def admin_cancel_show(request: Request) -> Response:
        return _respond(sandbox.book.cancel_show(request.path_params["show_ref"]))

    async def admin_set_delivery(request: Request) -> Response:
        order_id = _ref(request.path_params["order_id"], "order_id")
        status = (await _json_object(request)).get("status")
        if status not in DELIVERY_STATUSES:
            raise BadRequest(f"status must be one of {', '.join(DELIVERY_STATUSES)}")
        return _respond(sandbox.book.set_delivery(order_id, str(status)))

    async def admin_supplier_refund(request: Request) -> Response:
        order_id = _ref(request.path_params["order_id"], "order_id")
        return _respond(sandbox.book.supplier_refund(order_id))

    async def admin_inject_event(request: Request) -> Response:
        body = await _json_object(request)
        order_id = _ref(body.get("order_id"), "order_id")
        status = body.get("status")
        return _respond(
            sandbox.book.inject_feed_event(
                request.path_params["feed"], order_id, None if status is None else str(status)
            )
        )

    async def admin_put_faults(request: Request) -> Response:
        body = await _json_object(request)
        try:
            faults, seed = parse_faults(body)
        except FaultError as exc:
            raise BadRequest(str(exc)) from None
        sandbox.faults.configure(faults, seed)
        return _respond((200, sandbox.faults.describe()))

    async def admin_get_faults(request: Request) -> Response:
        return _respond((200, sandbox.faults.describe()))

    async def admin_reset(request: Request) -> Response:
        sandbox.reset()
        return _respond((200, {"status": "reset"}))

    async def admin_counters(request: Request) -> Response:
        return _respond((200, sandbox.book.counter_values()))

    async def admin_inventory(request: Request) -> Response:
        return _respond((200, sandbox.book.inventory()))

    async def admin_order_calls(request: Request) -> Response:
        return _respond((200, dict(sandbox.book.counters.per_order)))

    routes = [
        Route("/healthz", _guarded(healthz), methods=["GET"]),
        Route("/catalog", _guarded(catalog), methods=["GET"]),
        Route("/locks", _guarded(lock), methods=["POST"]),
        Route("/locks/{order_id:path}", _guarded(release), methods=["DELETE"]),
        Route("/issues", _guarded(issue), methods=["POST"]),
        Route("/issues/{order_id:path}", _guarded(query_issue), methods=["GET"]),
        Route("/refunds", _guarded(refund), methods=["POST"]),
        Route("/refunds/{order_id:path}", _guarded(query_refund), methods=["GET"]),
        Route("/supplier-refunds", _guarded(supplier_refunds), methods=["GET"]),
        Route("/delivery-updates", _guarded(delivery_updates), methods=["GET"]),
        Route("/admin/catalog", _guarded(admin_catalog), methods=["POST"]),
        Route("/admin/shows/{show_ref}/cancel", _guarded(admin_cancel_show), methods=["POST"]),
        Route(
            "/admin/orders/{order_id:path}/delivery",
            _guarded(admin_set_delivery),
            methods=["POST"],
        ),
        Route(
            "/admin/orders/{order_id:path}/supplier-refund",
            _guarded(admin_supplier_refund),
            methods=["POST"],
        ),
        Route("/admin/feeds/{feed}", _guarded(admin_inject_event), methods=["POST"]),
        Route("/admin/faults", _guarded(admin_put_faults), methods=["PUT"]),
        Route("/admin/faults", _guarded(admin_get_faults), methods=["GET"]),
        Route("/admin/reset", _guarded(admin_reset), methods=["POST"]),
        Route("/admin/counters", _guarded(admin_counters), methods=["GET"]),
        Route("/admin/inventory", _guarded(admin_inventory), methods=["GET"]),
        Route("/admin/order-calls", _guarded(admin_order_calls), methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    app.state.sandbox = sandbox
    return app


def _attendees(raw: Any) -> tuple[tuple[str, str, str], ...]:
    """A lock's attendees: [{"name", "id_type", "id_number"}], each a non-empty string."""
    if not isinstance(raw, list) or len(raw) > MAX_QUANTITY:
        raise BadRequest(f"attendees must be a list of at most {MAX_QUANTITY}")
    out = []
    for i, a in enumerate(raw):
        if not isinstance(a, dict):
            raise BadRequest(f"attendees[{i}] must be an object")
        fields = tuple(a.get(k) for k in ("name", "id_type", "id_number"))
        if not all(isinstance(f, str) and 0 < len(f) <= 200 for f in fields):
            raise BadRequest(f"attendees[{i}]: name, id_type and id_number are needed")
        out.append((str(fields[0]), str(fields[1]), str(fields[2])))
    return tuple(out)
