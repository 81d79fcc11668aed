"""`SandboxGateway`: the `SupplierGateway` adapter for the sandbox supplier, over HTTP (aiohttp).

How an answer becomes an `Outcome` (the platform acts on it, so it must never guess).

Commands (lock, release, issue, refund, catalog, supplier_refunds, delivery_updates):

- 2xx with a readable body → DONE; a 2xx whose body cannot be read → UNKNOWN `protocol` (the
  effect may have happened).
- 409 / 404 / 422 (a definitive business answer) → FAILED with the supplier's code: `sold_out`,
  `refused`, `not_found`, `invalid_request`; any other 4xx → FAILED `http_4xx`.
- 5xx → UNKNOWN `http_5xx`; a read or write timeout → UNKNOWN `timeout`; a connection dropped
  mid-exchange or a protocol error → UNKNOWN `network`.
- A connect error or connect timeout, including no free pooled connection in time → FAILED
  `connect`.

Queries (query_issue, query_refund):

- 200 with `state` issued / refunded → DONE; not_issued / not_refunded → FAILED (`not_issued`,
  `not_refunded`): definitely not done and nothing in flight; pending → UNKNOWN `pending`.
- Every error, 4xx included, and connect errors too → UNKNOWN with the codes above: a query that
  failed says nothing about the order.

The connect rule deserves a word. A connect error (refused, unreachable, TCP handshake timed out)
or a pool timeout means the request was never written to a socket, so the supplier cannot have
acted on it: for a command, FAILED is the truth (a lock that could not be placed, an issue that
was not made, and the order may be cancelled safely). A query is different, because FAILED there
means "definitely not issued", which a query that never ran cannot know, so it is UNKNOWN.

`latency_ms` is measured with `time.perf_counter` around the whole exchange (connect, send,
receive the body), also for failures. The HTTP session is created on first use (and again if the
gateway finds itself on another event loop), so a gateway can be built outside any event loop
and pickled (the session is not part of its pickled state). It ignores proxy settings in
the environment (`trust_env=False`): the sandbox is reached directly.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp

from domain.identity import Attendee
from suppliers.gateway import (
    CallResult,
    Catalog,
    CatalogSession,
    CatalogShow,
    CatalogTier,
    DeliveryUpdateEvent,
    ErrorCode,
    IssueInfo,
    LockInfo,
    Outcome,
    RefundInfo,
    SupplierRefundEvent,
    Ticket,
)

__all__ = ["SandboxGateway"]

T = TypeVar("T")


_DELIVERY_STATUSES = frozenset({"SHIPPED", "DELIVERED"})

_STATUS_ERRORS = {
    404: ErrorCode.NOT_FOUND,
    409: ErrorCode.REFUSED,
    422: ErrorCode.INVALID_REQUEST,
}


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: Any  # parsed JSON, or None when the body was not JSON
    reason: str


@dataclass(frozen=True, slots=True)
class _Unanswered:
    error: ErrorCode
    message: str
    never_sent: bool  # the request provably never reached the supplier


class SandboxGateway:
    """The sandbox supplier reached over HTTP; see the module for the outcome rules."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 5.0,
        connect_timeout_s: float = 1.0,
        max_connections: int = 100,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"SandboxGateway({self.base_url!r}, timeout_s={self.timeout_s})"

    def __getstate__(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "timeout_s": self.timeout_s,
            "connect_timeout_s": self.connect_timeout_s,
            "max_connections": self.max_connections,
        }

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self.base_url = state["base_url"]
        self.timeout_s = state["timeout_s"]
        self.connect_timeout_s = state["connect_timeout_s"]
        self.max_connections = state["max_connections"]
        self._session = None
        self._session_loop = None

    # -- SupplierGateway ------------------------------------------------------------------

    async def lock(
        self,
        order_id: str,
        session_ref: str,
        tier_ref: str,
        quantity: int,
        attendees: Sequence[Attendee] = (),
    ) -> CallResult[LockInfo]:
        body: dict[str, Any] = {
            "order_id": order_id,
            "session_ref": session_ref,
            "tier_ref": tier_ref,
            "quantity": quantity,
        }
        if attendees:
            body["attendees"] = [a.whole() for a in attendees]
        answer, latency = await self._exchange("POST", "/locks", body=body)
        return _command(answer, latency, _lock_info)

    async def release(self, order_id: str) -> CallResult[None]:
        answer, latency = await self._exchange("DELETE", f"/locks/{_segment(order_id)}")
        return _command(answer, latency, _nothing)

    async def issue(
        self, order_id: str, attendees: Sequence[Attendee] = ()
    ) -> CallResult[IssueInfo]:
        body: dict[str, Any] = {"order_id": order_id}
        if attendees:
            body["attendees"] = [a.whole() for a in attendees]
        answer, latency = await self._exchange("POST", "/issues", body=body)
        return _command(answer, latency, _issue_info)

    async def query_issue(self, order_id: str) -> CallResult[IssueInfo]:
        answer, latency = await self._exchange("GET", f"/issues/{_segment(order_id)}")
        return _query(answer, latency, "issued", "not_issued", ErrorCode.NOT_ISSUED, _issue_info)

    async def refund(self, order_id: str) -> CallResult[RefundInfo]:
        answer, latency = await self._exchange("POST", "/refunds", body={"order_id": order_id})
        return _command(answer, latency, _refund_info)

    async def query_refund(self, order_id: str) -> CallResult[RefundInfo]:
        answer, latency = await self._exchange("GET", f"/refunds/{_segment(order_id)}")
        return _query(
            answer, latency, "refunded", "not_refunded", ErrorCode.NOT_REFUNDED, _refund_info
        )

    async def catalog(self) -> CallResult[Catalog]:
        answer, latency = await self._exchange("GET", "/catalog")
        return _command(answer, latency, _catalog)

    async def supplier_refunds(self, since_seq: int) -> CallResult[list[SupplierRefundEvent]]:
        """Up to 1,000 events after `since_seq`; ask again from the last `seq` for more."""
        answer, latency = await self._exchange(
            "GET", "/supplier-refunds", params={"since_seq": str(since_seq)}
        )
        return _command(answer, latency, _refund_events)

    async def delivery_updates(self, since_seq: int) -> CallResult[list[DeliveryUpdateEvent]]:
        """Up to 1,000 events after `since_seq`; ask again from the last `seq` for more."""
        answer, latency = await self._exchange(
            "GET", "/delivery-updates", params={"since_seq": str(since_seq)}
        )
        return _command(answer, latency, _delivery_events)

    async def aclose(self) -> None:
        session, self._session = self._session, None
        self._session_loop = None
        if session is not None and not session.closed:
            await session.close()

    # -- transport ------------------------------------------------------------------------
    # aiohttp rather than httpx: measured here, an httpx client spent about four times the CPU
    # per call (its connection pool does work that grows with its size: encode/httpx #3215),
    # and the supplier actor's CPU is on the path of every lock and issue.

    def _client(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session_loop is not loop or self._session.closed:
            # a session is bound to the loop it was made on; a new loop needs a new one
            self._session = aiohttp.ClientSession(
                base_url=self.base_url,
                connector=aiohttp.TCPConnector(limit=self.max_connections, force_close=False),
                timeout=aiohttp.ClientTimeout(
                    total=self.timeout_s,
                    connect=self.timeout_s,  # waiting for a pooled connection, then connecting
                    sock_connect=self.connect_timeout_s,
                ),
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
    ) -> tuple[_Answer | _Unanswered, float]:
        client = self._client()
        started = time.perf_counter()
        outcome: _Answer | _Unanswered
        try:
            async with client.request(
                method, path.lstrip("/"), json=body, params=params
            ) as response:
                raw = await response.read()
                try:
                    parsed: Any = json.loads(raw) if raw else None
                except ValueError:
                    parsed = None
                outcome = _Answer(response.status, parsed, response.reason or "")
        except aiohttp.ConnectionTimeoutError as exc:
            # no connection within the time: the request was never written
            outcome = _Unanswered(ErrorCode.CONNECT, _describe(exc), never_sent=True)
        except aiohttp.ClientConnectorError as exc:
            outcome = _Unanswered(ErrorCode.CONNECT, _describe(exc), never_sent=True)
        except TimeoutError as exc:
            outcome = _Unanswered(ErrorCode.TIMEOUT, _describe(exc), never_sent=False)
        except aiohttp.ClientError as exc:
            outcome = _Unanswered(ErrorCode.NETWORK, _describe(exc), never_sent=False)
        return outcome, (time.perf_counter() - started) * 1000


# -- outcome mapping ------------------------------------------------------------------------


def _command(
    answer: _Answer | _Unanswered, latency_ms: float, parse: Callable[[Any], T]
) -> CallResult[T]:
    if isinstance(answer, _Unanswered):
        outcome = Outcome.FAILED if answer.never_sent else Outcome.UNKNOWN
        return CallResult(
            outcome, error=answer.error, message=answer.message, latency_ms=latency_ms
        )
    if 200 <= answer.status < 300:
        return _parsed(answer.body, latency_ms, parse)
    if 400 <= answer.status < 500:
        return CallResult(
            Outcome.FAILED,
            error=_error_code(answer),
            message=_message(answer),
            latency_ms=latency_ms,
        )
    return _unknown_status(answer, latency_ms)


def _query(
    answer: _Answer | _Unanswered,
    latency_ms: float,
    done_state: str,
    absent_state: str,
    absent_error: ErrorCode,
    parse: Callable[[Any], T],
) -> CallResult[T]:
    if isinstance(answer, _Unanswered):
        return CallResult(
            Outcome.UNKNOWN, error=answer.error, message=answer.message, latency_ms=latency_ms
        )
    if not 200 <= answer.status < 300:
        if 400 <= answer.status < 500:
            return CallResult(
                Outcome.UNKNOWN,
                error=_error_code(answer),
                message=_message(answer),
                latency_ms=latency_ms,
            )
        return _unknown_status(answer, latency_ms)
    state = answer.body.get("state") if isinstance(answer.body, dict) else None
    if state == done_state:
        return _parsed(answer.body, latency_ms, parse)
    if state == absent_state:
        return CallResult(
            Outcome.FAILED, error=absent_error, message=absent_state, latency_ms=latency_ms
        )
    if state == "pending":
        return CallResult(
            Outcome.UNKNOWN,
            error=ErrorCode.PENDING,
            message="an operation for this order is in flight at the supplier",
            latency_ms=latency_ms,
        )
    return CallResult(
        Outcome.UNKNOWN,
        error=ErrorCode.PROTOCOL,
        message=f"unexpected state {state!r}",
        latency_ms=latency_ms,
    )


def _parsed(body: Any, latency_ms: float, parse: Callable[[Any], T]) -> CallResult[T]:
    try:
        value = parse(body)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return CallResult(
            Outcome.UNKNOWN,
            error=ErrorCode.PROTOCOL,
            message=f"unreadable answer: {exc!r}",
            latency_ms=latency_ms,
        )
    return CallResult(Outcome.DONE, value, latency_ms=latency_ms)


def _unknown_status(answer: _Answer, latency_ms: float) -> CallResult[Any]:
    error = ErrorCode.HTTP_5XX if answer.status >= 500 else ErrorCode.PROTOCOL
    return CallResult(
        Outcome.UNKNOWN,
        error=error,
        message=f"HTTP {answer.status}: {_message(answer)}",
        latency_ms=latency_ms,
    )


def _error_code(answer: _Answer) -> str:
    body = answer.body
    if isinstance(body, dict):
        code = body.get("error")
        if isinstance(code, str) and code:
            return code
    return _STATUS_ERRORS.get(answer.status, ErrorCode.HTTP_4XX)


def _message(answer: _Answer) -> str:
    body = answer.body
    if isinstance(body, dict):
        message = body.get("message")
        if isinstance(message, str):
            return message
    return answer.reason


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _segment(value: str) -> str:
    return quote(value, safe="")


# -- body parsers (raise KeyError/TypeError/ValueError on a malformed answer) ----------------


def _nothing(body: Any) -> None:
    return None


def _lock_info(body: Any) -> LockInfo:
    return LockInfo(lock_ref=_str(body["lock_ref"]))


def _issue_info(body: Any) -> IssueInfo:
    tickets = tuple(
        Ticket(code=_str(t["code"]), seat=_opt_str(t.get("seat"))) for t in _list(body["tickets"])
    )
    return IssueInfo(tickets=tickets, issued_at=_utc(body["issued_at"]))


def _refund_info(body: Any) -> RefundInfo:
    return RefundInfo(
        refunded_at=_utc(body["refunded_at"]),
        initiated_by=_str(body.get("initiated_by", "platform")),
    )


def _refund_events(body: Any) -> list[SupplierRefundEvent]:
    return [
        SupplierRefundEvent(
            seq=_int(e["seq"]), order_id=_str(e["order_id"]), refunded_at=_utc(e["refunded_at"])
        )
        for e in _list(body["events"])
    ]


def _delivery_events(body: Any) -> list[DeliveryUpdateEvent]:
    return [
        DeliveryUpdateEvent(
            seq=_int(e["seq"]),
            order_id=_str(e["order_id"]),
            status=_delivery_status(e["status"]),
            at=_utc(e["at"]),
        )
        for e in _list(body["events"])
    ]


def _delivery_status(value: Any) -> str:
    status = _str(value)
    if status not in _DELIVERY_STATUSES:
        raise ValueError(f"unknown delivery status {status!r}")
    return status


def _catalog(body: Any) -> Catalog:
    return Catalog(shows=tuple(_show(s) for s in _list(body["shows"])))


def _show(raw: Any) -> CatalogShow:
    return CatalogShow(
        ref=_str(raw["ref"]),
        title=_str(raw["title"]),
        city=_str(raw["city"]),
        category=_str(raw["category"]),
        venue=_str(raw["venue"]),
        starts_at=_time(raw["starts_at"]),
        status=_str(raw["status"]),
        sessions=tuple(_session(s) for s in _list(raw["sessions"])),
    )


def _session(raw: Any) -> CatalogSession:
    real_name = raw.get("real_name_required", False)
    if not isinstance(real_name, bool):
        raise TypeError("real_name_required must be a boolean")
    return CatalogSession(
        ref=_str(raw["ref"]),
        starts_at=_time(raw["starts_at"]),
        status=_str(raw["status"]),
        tiers=tuple(_tier(t) for t in _list(raw["tiers"])),
        real_name_required=real_name,
        tickets_per_id=_int(raw.get("tickets_per_id", 1)),
    )


def _tier(raw: Any) -> CatalogTier:
    return CatalogTier(
        ref=_str(raw["ref"]),
        name=_str(raw["name"]),
        face_value=_int(raw["face_value"]),
        price=_int(raw["price"]),
        settlement_price=_int(raw["settlement_price"]),
        currency=_str(raw["currency"]),
        available=_int(raw["available"]),
    )


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _opt_str(value: Any) -> str | None:
    return None if value is None else _str(value)


def _int(value: Any) -> int:
    if type(value) is not int:  # money and counts are integers; never accept a float or bool
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return value


def _time(value: Any) -> datetime:
    parsed = datetime.fromisoformat(_str(value))
    if parsed.tzinfo is None:
        raise ValueError(f"time without an offset: {value!r}")
    return parsed


def _utc(value: Any) -> datetime:
    return _time(value).astimezone(UTC)
