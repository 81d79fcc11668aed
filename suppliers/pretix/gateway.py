"""`PretixGateway`: one pretix event as a supplier, over pretix's REST API (aiohttp).

Every call keeps the outcome rules of `suppliers/gateway.py` (DONE / FAILED / UNKNOWN, never a
guess); docs/pretix.md has the table. What makes them hold against a real box office:

- **One pretix order per showdist order, whatever is retried.** A lock places a pending
  pretix order under a code derived from the showdist order id (`mapping.order_code`), with
  that id in its `api_meta` and comment, and pretix's `X-Idempotency-Key` (a key per order and
  step). A repeated request with the key is answered with the first answer and not acted on;
  a code already in use is refused by pretix. So a lost reply or a retry cannot make a second
  order, and every later call finds the order by its code.
- **Fences.** A query that finds an order not (yet) paid, or a release that finds no order,
  cannot tell "never happened" from "still on its way": the request may be in pretix's socket
  backlog. It sends a harmless request (an empty order, `simulate`, which pretix refuses) with
  the step's idempotency key. pretix keeps the first request with a key and answers every later
  one with that answer, so the fence either *claims* the key (pretix stores its refusal: the
  step can never happen any more, FAILED / nothing to release), or is answered with the
  step's own answer (it happened: look again), or with 409 (the step is running: UNKNOWN).
- **Transport**, as the sandbox gateway: a connect error or connect timeout means the request
  was never written (FAILED for a command, UNKNOWN for a query); a timeout, a dropped
  connection, a 5xx or an answer that cannot be read is UNKNOWN; pretix's 409 (a request with
  that key in flight) is UNKNOWN. A release answers only DONE (nothing is held any more, or
  there was nothing) or UNKNOWN (ask again): FAILED would make the platform stop releasing.
- **A lock answered 5xx is asked again** (at most three times, with short pauses, while within
  half the call's timeout): the derived code makes a second order impossible, and pretix does
  not keep a 5xx under the key. pretix on SQLite answers concurrent orders with 500 ("database
  is locked": it has no row locks there), which would otherwise fail locks that the quota had
  seats for.

The HTTP session is made on first use (again on another event loop); the gateway pickles
without it (it travels to the supplier hosts). Its repr never shows the token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp

from suppliers.gateway import (
    CallResult,
    Catalog,
    DeliveryUpdateEvent,
    ErrorCode,
    IssueInfo,
    LockInfo,
    Outcome,
    RefundInfo,
    SupplierRefundEvent,
)
from suppliers.pretix.config import PretixSettings
from suppliers.pretix.mapping import (
    META_KEY,
    REFUND_COMMENT,
    CatalogInput,
    CatalogView,
    OrderState,
    build_catalog,
    feed_seq,
    idempotency_key,
    order_code,
    parse_session_ref,
    parse_tier_ref,
    seq_time,
)

__all__ = ["PretixGateway"]

log = logging.getLogger(__name__)
T = TypeVar("T")

RATE_LIMITED = "rate_limited"
PAGE_SIZE = 50  # pretix's largest page
_MAX_CATALOG_PAGES = 100
_LOCK_RETRY_PAUSES_S = (0.05, 0.1, 0.2)  # a lock answered 5xx is asked again after these (+ jitter)


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: Any  # parsed JSON, or None when the body was not JSON

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True, slots=True)
class _Unanswered:
    error: ErrorCode
    message: str
    never_sent: bool  # the request provably never reached pretix


_Reply = _Answer | _Unanswered


class _Stop(Exception):
    """A call decided early (carries its result)."""

    def __init__(self, result: CallResult[Any]) -> None:
        super().__init__(result.error)
        self.result = result


class PretixGateway:
    """One pretix event reached over its REST API; see the module for the outcome rules."""

    def __init__(self, settings: PretixSettings, token: str) -> None:
        self.settings = settings
        self._token = token
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        s = self.settings
        return f"PretixGateway({s.base_url!r}, organizer={s.organizer!r}, event={s.event!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {"settings": self.settings.settings_dict(), "token": self._token}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self.settings = PretixSettings.model_validate(state["settings"])
        self._token = state["token"]
        self._session = None
        self._session_loop = None

    @property
    def event_path(self) -> str:
        s = self.settings
        return f"api/v1/organizers/{_seg(s.organizer)}/events/{_seg(s.event)}/"

    # -- lock / release ---------------------------------------------------------------------

    async def lock(
        self,
        order_id: str,
        session_ref: str,
        tier_ref: str,
        quantity: int,
        attendees: Sequence[object] = (),
    ) -> CallResult[LockInfo]:
        started = time.perf_counter()
        if attendees:
            return _failed(ErrorCode.INVALID_REQUEST, "pretix sessions are not real-name", started)
        try:
            subevent = parse_session_ref(session_ref)
            tier = parse_tier_ref(tier_ref)
        except ValueError as exc:
            return _failed(ErrorCode.INVALID_REQUEST, str(exc), started)
        if not 1 <= quantity <= 500:
            return _failed(ErrorCode.INVALID_REQUEST, "quantity out of range", started)
        code = order_code(order_id)
        position = {"item": tier.item, "variation": tier.variation, "subevent": subevent}
        expires = datetime.now(UTC) + timedelta(seconds=self.settings.hold_seconds)
        body = {
            "code": code,
            "status": "n",
            "expires": expires.isoformat(),
            "sales_channel": self.settings.sales_channel,
            "send_email": False,
            "comment": f"showdist order {order_id}",
            "api_meta": {META_KEY: order_id},
            "positions": [dict(position) for _ in range(quantity)],
        }
        key = idempotency_key("lock", order_id)
        reply = await self._post("orders/", body, key)
        for pause in _LOCK_RETRY_PAUSES_S:
            # A 5xx is not kept under the key, and the code is unique: asking again can never
            # make a second order, and turns pretix's contention (SQLite's "database is
            # locked") into the answer. Only while well inside the call's time.
            if not (isinstance(reply, _Answer) and reply.status >= 500):
                break
            wait = pause * (1 + random.random())
            if time.perf_counter() - started + wait > self.settings.timeout_s / 2:
                break
            await asyncio.sleep(wait)
            reply = await self._post("orders/", body, key)
        if isinstance(reply, _Answer) and reply.ok:
            try:
                state = OrderState.of(reply.body)
            except (KeyError, TypeError, ValueError) as exc:
                return _unknown(ErrorCode.PROTOCOL, f"unreadable order: {exc!r}", started)
            if state.code != code:
                return _unknown(ErrorCode.PROTOCOL, "pretix gave another order code", started)
            return _done(LockInfo(lock_ref=code), started)
        if isinstance(reply, _Answer) and reply.status == 400 and _field_errors(reply, "code"):
            # The code is in use: this order's own (placed before), or, unthinkably, another.
            found = await self._get_order(code)
            if isinstance(found, OrderState) and found.showdist_order_id == order_id:
                if found.status in ("n", "p"):
                    return _done(LockInfo(lock_ref=code), started)
                return _failed(ErrorCode.REFUSED, f"pretix order is {found.status}", started)
            if isinstance(found, OrderState):
                return _failed(ErrorCode.REFUSED, "order code in use", started)
            return _unknown(ErrorCode.PROTOCOL, "order code in use, order unreadable", started)
        if isinstance(reply, _Answer) and reply.status == 400:
            text = _detail(reply)
            if "quota" in text.lower():
                return _failed(ErrorCode.SOLD_OUT, text, started)
            return _failed(ErrorCode.REFUSED, text, started)
        return _command_error(reply, started)

    async def release(self, order_id: str) -> CallResult[None]:
        started = time.perf_counter()
        code = order_code(order_id)
        for _ in range(2):
            found = await self._get_order(code)
            if isinstance(found, _Answer) and found.status == 404:
                fence = await self._fence(idempotency_key("lock", order_id))
                if fence is _FENCED:
                    return _done(None, started)  # no order, and none can be placed any more
                if fence is _HAPPENED:
                    continue  # it was placed after all: look again
                return _unknown(ErrorCode.PENDING, "the lock may still be on its way", started)
            if not isinstance(found, OrderState):
                return _unknown_of(found, started)
            if found.status == "c":
                return _done(None, started)
            if found.status == "p" or found.ever_paid:
                log.warning("pretix order %s of %s is paid: not released", code, order_id)
                return CallResult(
                    Outcome.FAILED,
                    error=ErrorCode.REFUSED,
                    message="the pretix order is paid; it is not cancelled by a release",
                    latency_ms=_ms(started),
                )
            reply = await self._post(
                f"orders/{code}/mark_canceled/",
                {"send_email": False},
                idempotency_key("release", order_id),
            )
            if isinstance(reply, _Answer) and reply.ok:
                return _done(None, started)
            if isinstance(reply, _Answer) and reply.status == 400:
                continue  # its state changed meanwhile: look again
            return _unknown_of(reply, started)
        return _unknown(ErrorCode.PENDING, "the pretix order keeps changing", started)

    # -- issue ------------------------------------------------------------------------------

    async def issue(self, order_id: str, attendees: Sequence[object] = ()) -> CallResult[IssueInfo]:
        started = time.perf_counter()
        code = order_code(order_id)
        reply = await self._post(
            f"orders/{code}/mark_paid/", {"send_email": False}, idempotency_key("issue", order_id)
        )
        if isinstance(reply, _Answer) and reply.ok:
            return self._issued(reply.body, started)
        if isinstance(reply, _Answer) and reply.status == 400:
            # Not pending (paid already, or cancelled) or no quota left for an expired order.
            found = await self._get_order(code)
            if isinstance(found, OrderState) and found.ever_paid:
                return _issue_done(found, started)
            # pretix keeps this refusal under the step's key: the issue can never happen now.
            text = _detail(reply)
            error = ErrorCode.SOLD_OUT if "quota" in text.lower() else ErrorCode.REFUSED
            return _failed(error, text, started)
        return _command_error(reply, started)

    async def query_issue(self, order_id: str) -> CallResult[IssueInfo]:
        started = time.perf_counter()
        code = order_code(order_id)
        for _ in range(2):
            found = await self._get_order(code)
            if not isinstance(found, OrderState):
                return _query_unknown(found, started)
            if found.ever_paid:
                return _issue_done(found, started)
            fence = await self._fence(idempotency_key("issue", order_id))
            if fence is _FENCED:
                return CallResult(
                    Outcome.FAILED,
                    error=ErrorCode.NOT_ISSUED,
                    message=f"not paid in pretix ({found.status}), and it can no longer be",
                    latency_ms=_ms(started),
                )
            if fence is not _HAPPENED:
                return _unknown(ErrorCode.PENDING, "the issue may still be on its way", started)
        return _unknown(ErrorCode.PROTOCOL, "pretix says issued, the order is unpaid", started)

    # -- refund -----------------------------------------------------------------------------

    async def refund(self, order_id: str) -> CallResult[RefundInfo]:
        started = time.perf_counter()
        code = order_code(order_id)
        found = await self._get_order(code)
        if isinstance(found, _Answer) and found.status == 404:
            return _failed(ErrorCode.NOT_FOUND, "no such pretix order", started)
        if not isinstance(found, OrderState):
            return _command_error(found, started)
        if found.status == "c" and found.ever_paid:
            return _refund_done(found, started)
        if found.status != "p":
            text = f"the pretix order is not paid ({found.status})"
            return _failed(ErrorCode.REFUSED, text, started)
        key = idempotency_key("refund", order_id)
        if found.paid_amount <= 0 or found.payment is None:
            reply = await self._post(f"orders/{code}/mark_canceled/", {"send_email": False}, key)
        else:
            local_id, provider = found.payment
            reply = await self._post(
                f"orders/{code}/refunds/",
                {
                    "state": "done",
                    "source": "admin",
                    "amount": str(found.paid_amount),
                    "payment": local_id,
                    "provider": provider,
                    "mark_canceled": True,  # refund and cancellation in one transaction
                    "comment": f"{REFUND_COMMENT} {order_id}",
                },
                key,
            )
        if isinstance(reply, _Answer) and (reply.ok or reply.status == 400):
            after = await self._get_order(code)
            if isinstance(after, OrderState) and after.status == "c" and after.ever_paid:
                return _refund_done(after, started)
            if reply.ok:
                # Done in one transaction; only the look afterwards failed.
                return _done(
                    RefundInfo(refunded_at=datetime.now(UTC), initiated_by="platform"), started
                )
            return _failed(ErrorCode.REFUSED, _detail(reply), started)
        return _command_error(reply, started)

    async def query_refund(self, order_id: str) -> CallResult[RefundInfo]:
        started = time.perf_counter()
        code = order_code(order_id)
        for _ in range(2):
            found = await self._get_order(code)
            if not isinstance(found, OrderState):
                return _query_unknown(found, started)
            if found.status == "c" and found.ever_paid:
                return _refund_done(found, started)
            fence = await self._fence(idempotency_key("refund", order_id))
            if fence is _FENCED:
                return CallResult(
                    Outcome.FAILED,
                    error=ErrorCode.NOT_REFUNDED,
                    message=f"not refunded in pretix ({found.status}), and it can no longer be",
                    latency_ms=_ms(started),
                )
            if fence is not _HAPPENED:
                return _unknown(ErrorCode.PENDING, "the refund may still be on its way", started)
        return _unknown(ErrorCode.PROTOCOL, "pretix answered the refund, the order is not", started)

    # -- catalog and feeds ------------------------------------------------------------------

    async def catalog(self) -> CallResult[Catalog]:
        started = time.perf_counter()
        try:
            event = await self._read("")
            items = await self._read_all("items/", {})
            subevents = await self._read_all("subevents/", {}) if event.get("has_subevents") else []
            quotas = await self._read_all("quotas/", {"with_availability": "true"})
        except _Stop as stop:
            return stop.result
        s = self.settings
        view = CatalogView(
            sales_channel=s.sales_channel,
            distribution_bp=s.distribution_bp,
            settlement_bp=s.settlement_bp,
            timezone=s.timezone,
            locale=s.locale,
            city=s.city,
            category=s.category,
        )
        try:
            built = build_catalog(
                CatalogInput(event, items, subevents, quotas), view, datetime.now(UTC)
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            return _unknown(ErrorCode.PROTOCOL, f"unreadable catalog: {exc!r}", started)
        for reason in built.skipped:
            log.warning("pretix %s/%s: tier left out: %s", s.organizer, s.event, reason)
        return _done(built.catalog, started)

    async def supplier_refunds(self, since_seq: int) -> CallResult[list[SupplierRefundEvent]]:
        """Paid orders of ours that pretix cancelled (an order or the event cancelled there, or
        our own refunds), by their last change; the last `feed_lookback_seconds` before
        `since_seq` are read again (an event kept already is not kept twice)."""
        started = time.perf_counter()
        since = seq_time(since_seq)
        lookback = timedelta(seconds=self.settings.feed_lookback_seconds)
        params = {"status": "c", "ordering": "last_modified", "page_size": str(PAGE_SIZE)}
        bound = self.settings.feed_max_pages
        try:
            if since is not None:
                params["modified_since"] = _iso(since - lookback)
            first = await self._read("orders/", {**params, "page": "1"})
            if since is not None and _count(first) > bound * PAGE_SIZE:
                # More in the window than a read takes: no look back, or it would never end.
                params["modified_since"] = _iso(since)
                first = await self._read("orders/", {**params, "page": "1"})
            orders = await self._pages(first, "orders/", params, bound)
        except _Stop as stop:
            return stop.result
        events: list[SupplierRefundEvent] = []
        for raw in orders:
            try:
                state = OrderState.of(raw)
            except (KeyError, TypeError, ValueError) as exc:
                return _unknown(ErrorCode.PROTOCOL, f"unreadable order: {exc!r}", started)
            if state.showdist_order_id is None or not state.ever_paid:
                continue  # not ours, or a lock we released (never paid)
            if state.showdist_order_id and order_code(state.showdist_order_id) != state.code:
                continue  # a meta id that this order was not placed for
            changed = state.last_modified or state.cancelled_at
            if changed is None:
                return _unknown(ErrorCode.PROTOCOL, "an order without a change time", started)
            events.append(
                SupplierRefundEvent(
                    seq=feed_seq(changed, state.code),
                    order_id=state.showdist_order_id,
                    refunded_at=(state.cancelled_at or changed).astimezone(UTC),
                )
            )
        events.sort(key=lambda e: e.seq)
        return _done(events, started)

    async def delivery_updates(self, since_seq: int) -> CallResult[list[DeliveryUpdateEvent]]:
        """pretix issues e-tickets: there is no delivery of paper tickets to report."""
        return CallResult(Outcome.DONE, [], latency_ms=0.0)

    async def aclose(self) -> None:
        session, self._session = self._session, None
        self._session_loop = None
        if session is not None and not session.closed:
            await session.close()

    # -- pieces -----------------------------------------------------------------------------

    def _issued(self, body: Any, started: float) -> CallResult[IssueInfo]:
        try:
            state = OrderState.of(body)
        except (KeyError, TypeError, ValueError) as exc:
            return _unknown(ErrorCode.PROTOCOL, f"unreadable order: {exc!r}", started)
        if not state.ever_paid:
            return _unknown(ErrorCode.PROTOCOL, "pretix answered, the order is unpaid", started)
        return _issue_done(state, started)

    async def _get_order(self, code: str) -> OrderState | _Reply:
        reply = await self._exchange("GET", f"orders/{code}/")
        if isinstance(reply, _Answer) and reply.ok:
            try:
                return OrderState.of(reply.body)
            except (KeyError, TypeError, ValueError) as exc:
                return _Unanswered(ErrorCode.PROTOCOL, f"unreadable order: {exc!r}", False)
        return reply

    async def _fence(self, key: str) -> object:
        """Claim an idempotency key (see the module): `_FENCED` when pretix kept our refusal
        (or the step's own refusal) under it, `_HAPPENED` when it answered with the step's
        success, anything else when it cannot be told now."""
        reply = await self._post("orders/", {"positions": [], "simulate": True}, key)
        if not isinstance(reply, _Answer):
            return None
        if reply.ok:
            return _HAPPENED
        if 400 <= reply.status < 500 and reply.status not in (409, 429):
            return _FENCED
        return None

    async def _read(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        started = time.perf_counter()
        reply = await self._exchange("GET", path, params=params)
        if isinstance(reply, _Answer) and reply.ok and isinstance(reply.body, dict):
            return reply.body
        if isinstance(reply, _Answer) and reply.ok:
            raise _Stop(_unknown(ErrorCode.PROTOCOL, "an answer that is not an object", started))
        raise _Stop(_command_error(reply, started))

    async def _read_all(self, path: str, params: Mapping[str, str]) -> list[Any]:
        query = {**params, "page_size": str(PAGE_SIZE)}
        first = await self._read(path, {**query, "page": "1"})
        return await self._pages(first, path, query, _MAX_CATALOG_PAGES)

    async def _pages(
        self, first: Any, path: str, params: Mapping[str, str], bound: int
    ) -> list[Any]:
        """The results of a paginated list, page by page by number (pretix's `next` link
        names pretix's own idea of its host, which need not be ours)."""
        results = list(_results(first))
        page, body = 1, first
        while body.get("next") and page < bound:
            page += 1
            body = await self._read(path, {**params, "page": str(page)})
            results.extend(_results(body))
        return results

    async def _post(self, path: str, body: Mapping[str, Any], key: str) -> _Reply:
        return await self._exchange("POST", path, body=body, key=key)

    def _client(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session_loop is not loop or self._session.closed:
            s = self.settings
            self._session = aiohttp.ClientSession(
                base_url=s.base_url + "/",
                connector=aiohttp.TCPConnector(limit=s.max_connections),
                timeout=aiohttp.ClientTimeout(
                    total=s.timeout_s, connect=s.timeout_s, sock_connect=s.connect_timeout_s
                ),
                headers={
                    "Authorization": f"Token {self._token}",
                    "Accept": "application/json",
                    "Accept-Language": "en",
                },
                trust_env=False,
            )
            self._session_loop = loop
        return self._session

    async def _exchange(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        key: str | None = None,
    ) -> _Reply:
        client = self._client()
        headers = {"X-Idempotency-Key": key} if key else None
        try:
            async with client.request(
                method, self.event_path + path, json=body, params=params, headers=headers
            ) as response:
                raw = await response.read()
                try:
                    parsed: Any = json.loads(raw) if raw else None
                except ValueError:
                    parsed = None
                return _Answer(response.status, parsed)
        except aiohttp.ConnectionTimeoutError as exc:
            return _Unanswered(ErrorCode.CONNECT, _describe(exc), never_sent=True)
        except aiohttp.ClientConnectorError as exc:
            return _Unanswered(ErrorCode.CONNECT, _describe(exc), never_sent=True)
        except TimeoutError as exc:
            return _Unanswered(ErrorCode.TIMEOUT, _describe(exc), never_sent=False)
        except aiohttp.ClientError as exc:
            return _Unanswered(ErrorCode.NETWORK, _describe(exc), never_sent=False)


_FENCED = object()
_HAPPENED = object()
_FENCE_ANSWER = {"positions": ["An order cannot be empty."]}  # what pretix keeps for a fence


# -- results ---------------------------------------------------------------------------------


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _done(value: T, started: float) -> CallResult[T]:
    return CallResult(Outcome.DONE, value, latency_ms=_ms(started))


def _failed(error: str, message: str, started: float) -> CallResult[Any]:
    return CallResult(Outcome.FAILED, error=error, message=message, latency_ms=_ms(started))


def _unknown(error: str, message: str, started: float) -> CallResult[Any]:
    return CallResult(Outcome.UNKNOWN, error=error, message=message, latency_ms=_ms(started))


def _issue_done(state: OrderState, started: float) -> CallResult[IssueInfo]:
    if not state.tickets:
        return _unknown(ErrorCode.PROTOCOL, "a paid pretix order without tickets", started)
    issued_at = (state.paid_at or state.last_modified or datetime.now(UTC)).astimezone(UTC)
    return _done(IssueInfo(tickets=state.tickets, issued_at=issued_at), started)


def _refund_done(state: OrderState, started: float) -> CallResult[RefundInfo]:
    at = (state.cancelled_at or state.last_modified or datetime.now(UTC)).astimezone(UTC)
    by = "platform" if state.refunded_by_us else "supplier"
    return _done(RefundInfo(refunded_at=at, initiated_by=by), started)


def _command_error(reply: _Reply | OrderState, started: float) -> CallResult[Any]:
    """A command's answer that is neither its success nor a refusal it reads itself."""
    if isinstance(reply, OrderState):
        return _unknown(ErrorCode.PROTOCOL, "unexpected order", started)
    if isinstance(reply, _Unanswered):
        outcome = Outcome.FAILED if reply.never_sent else Outcome.UNKNOWN
        return CallResult(
            outcome, error=reply.error, message=reply.message, latency_ms=_ms(started)
        )
    if reply.status == 409:  # a request with this key is in flight at pretix
        return _unknown(ErrorCode.PENDING, _detail(reply), started)
    if reply.status == 429:  # not acted on, and not kept under the key
        return _failed(RATE_LIMITED, _detail(reply), started)
    if reply.status == 404:
        return _failed(ErrorCode.NOT_FOUND, _detail(reply), started)
    if 400 <= reply.status < 500:
        return _failed(ErrorCode.HTTP_4XX, f"HTTP {reply.status}: {_detail(reply)}", started)
    if reply.status >= 500:
        return _unknown(ErrorCode.HTTP_5XX, f"HTTP {reply.status}: {_detail(reply)}", started)
    return _unknown(ErrorCode.PROTOCOL, f"HTTP {reply.status}", started)


def _query_unknown(reply: _Reply, started: float) -> CallResult[Any]:
    """A query that could not read the order says nothing about it."""
    if isinstance(reply, _Unanswered):
        return _unknown(reply.error, reply.message, started)
    if reply.status == 404:
        return _unknown(ErrorCode.NOT_FOUND, "no such pretix order", started)
    error = ErrorCode.HTTP_5XX if reply.status >= 500 else ErrorCode.PROTOCOL
    return _unknown(error, f"HTTP {reply.status}: {_detail(reply)}", started)


def _unknown_of(reply: _Reply | OrderState, started: float) -> CallResult[Any]:
    """A release that could not finish: ask again later, whatever went wrong."""
    if isinstance(reply, _Unanswered):
        return _unknown(reply.error, reply.message, started)
    if isinstance(reply, OrderState):
        return _unknown(ErrorCode.PROTOCOL, "unexpected order", started)
    return _unknown(
        ErrorCode.HTTP_5XX if reply.status >= 500 else ErrorCode.HTTP_4XX,
        f"HTTP {reply.status}: {_detail(reply)}",
        started,
    )


def _field_errors(answer: _Answer, name: str) -> bool:
    return isinstance(answer.body, dict) and name in answer.body


def _detail(answer: _Answer) -> str:
    """pretix's error text, flattened (`{"detail": ...}` or field errors), at most 500
    characters."""
    if answer.status == 400 and answer.body == _FENCE_ANSWER:
        return "a query claimed this step's idempotency key first: the step can no longer happen"
    parts: list[str] = []

    def walk(value: Any, where: str) -> None:
        if isinstance(value, str):
            parts.append(f"{where}: {value}" if where else value)
        elif isinstance(value, list):
            for v in value:
                walk(v, where)
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(v, k if k == "detail" or not where else f"{where}.{k}")

    walk(answer.body, "")
    text = "; ".join(p.removeprefix("detail: ") for p in parts) or f"HTTP {answer.status}"
    return text[:500]


def _results(body: Any) -> list[Any]:
    results = body.get("results")
    if not isinstance(results, list):
        raise _Stop(CallResult(Outcome.UNKNOWN, error=ErrorCode.PROTOCOL, message="not a list"))
    return results


def _count(body: Any) -> int:
    count = body.get("count")
    return count if type(count) is int else 0


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _seg(value: str) -> str:
    return quote(value, safe="")


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
