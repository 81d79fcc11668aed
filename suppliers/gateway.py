"""The protocol every supplier adapter implements, and the values that cross it.

A gateway call never raises for a supplier or network problem; it returns a `CallResult` whose
`outcome` says what the platform may conclude:

- `DONE`: the supplier did it (the value is set).
- `FAILED`: the supplier definitely did not do it and nothing is in flight (a business refusal
  such as `sold_out`, or a request that provably never reached the supplier).
- `UNKNOWN`: it cannot be told now (a 5xx, a timeout, a dropped connection). For an issue this
  is the case the platform must negotiate: poll `query_issue` until it answers DONE or FAILED.

Every value here is a frozen, slotted dataclass of plain fields so that it pickles across Ray
process boundaries. Money is an integer number of minor units; there are no floats.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

from domain.identity import Attendee

__all__ = [
    "CallResult",
    "Catalog",
    "CatalogSession",
    "CatalogShow",
    "CatalogTier",
    "DeliveryUpdateEvent",
    "ErrorCode",
    "IssueInfo",
    "LockInfo",
    "Outcome",
    "RefundInfo",
    "SupplierGateway",
    "SupplierRefundEvent",
    "Ticket",
]


class Outcome(StrEnum):
    DONE = "done"
    FAILED = "failed"
    UNKNOWN = "unknown"


class ErrorCode(StrEnum):
    """Well-known values of `CallResult.error` (a `StrEnum`, so each compares equal to its text)."""

    # definitive business answers (FAILED)
    SOLD_OUT = "sold_out"
    REFUSED = "refused"
    NOT_FOUND = "not_found"
    INVALID_REQUEST = "invalid_request"
    HTTP_4XX = "http_4xx"
    NOT_ISSUED = "not_issued"  # query_issue: definitely not issued, nothing in flight
    NOT_REFUNDED = "not_refunded"  # query_refund: definitely not refunded, nothing in flight
    # the request never reached the supplier (FAILED for commands, UNKNOWN for queries)
    CONNECT = "connect"
    POOL_TIMEOUT = "pool_timeout"
    # outcome cannot be told (UNKNOWN)
    TIMEOUT = "timeout"
    NETWORK = "network"  # connection dropped while the request or its answer was on the wire
    HTTP_5XX = "http_5xx"
    PROTOCOL = "protocol"  # an answer the adapter could not understand
    PENDING = "pending"  # the supplier says an operation for this order is still in flight
    CIRCUIT_OPEN = "circuit_open"  # set by callers that short-circuit a failing supplier


# Definite business answers: the supplier is up and said no.
BUSINESS_ERRORS = frozenset(
    {
        ErrorCode.SOLD_OUT,
        ErrorCode.REFUSED,
        ErrorCode.NOT_FOUND,
        ErrorCode.INVALID_REQUEST,
        ErrorCode.HTTP_4XX,
        ErrorCode.NOT_ISSUED,
        ErrorCode.NOT_REFUNDED,
    }
)


def breaks_circuit(outcome: Outcome, error: str | None) -> bool:
    """Is this answer one a circuit breaker counts as the supplier failing? (Done, or a
    definite business answer, says the supplier is up.)"""
    return outcome is not Outcome.DONE and error not in BUSINESS_ERRORS


@dataclass(frozen=True, slots=True)
class Ticket:
    code: str
    seat: str | None = None


@dataclass(frozen=True, slots=True)
class LockInfo:
    lock_ref: str


@dataclass(frozen=True, slots=True)
class IssueInfo:
    tickets: tuple[Ticket, ...]
    issued_at: datetime  # tz-aware, UTC


@dataclass(frozen=True, slots=True)
class RefundInfo:
    refunded_at: datetime  # tz-aware, UTC
    initiated_by: str  # "platform" | "supplier"


@dataclass(frozen=True, slots=True)
class SupplierRefundEvent:
    """A refund the supplier made on its own (for example because it cancelled the show)."""

    seq: int
    order_id: str
    refunded_at: datetime  # tz-aware, UTC


@dataclass(frozen=True, slots=True)
class DeliveryUpdateEvent:
    """A step in the express delivery of an order's paper tickets, reported by the supplier."""

    seq: int
    order_id: str
    status: str  # "SHIPPED" | "DELIVERED"
    at: datetime  # tz-aware, UTC


@dataclass(frozen=True, slots=True)
class CatalogTier:
    ref: str
    name: str
    face_value: int
    price: int  # what the platform pays per ticket (distribution price), <= face_value
    settlement_price: int
    currency: str
    available: int


@dataclass(frozen=True, slots=True)
class CatalogSession:
    ref: str
    starts_at: datetime
    status: str
    tiers: tuple[CatalogTier, ...]
    # Real-name tickets (实名制): a lock names one attendee per ticket, and one document
    # holds at most `tickets_per_id` tickets of the session.
    real_name_required: bool = False
    tickets_per_id: int = 1


@dataclass(frozen=True, slots=True)
class CatalogShow:
    ref: str
    title: str
    city: str
    category: str
    venue: str
    starts_at: datetime
    status: str  # "online" | "offline"
    sessions: tuple[CatalogSession, ...]


@dataclass(frozen=True, slots=True)
class Catalog:
    shows: tuple[CatalogShow, ...]


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CallResult(Generic[T]):
    outcome: Outcome
    value: T | None = None
    error: str | None = None  # an `ErrorCode` value, or a supplier-specific code
    message: str = ""
    latency_ms: float = 0.0


class SupplierGateway(Protocol):
    async def lock(
        self,
        order_id: str,
        session_ref: str,
        tier_ref: str,
        quantity: int,
        attendees: Sequence[Attendee] = (),
    ) -> CallResult[LockInfo]:
        """`attendees`: one per ticket for a real-name session (whole: the gate checks the
        documents), else none."""
        ...

    async def release(self, order_id: str) -> CallResult[None]: ...

    async def issue(
        self, order_id: str, attendees: Sequence[Attendee] = ()
    ) -> CallResult[IssueInfo]: ...

    async def query_issue(self, order_id: str) -> CallResult[IssueInfo]:
        """DONE = issued (with the tickets); FAILED = definitely not issued and nothing in
        flight; UNKNOWN = cannot tell now (ask again later)."""
        ...

    async def refund(self, order_id: str) -> CallResult[RefundInfo]: ...

    async def query_refund(self, order_id: str) -> CallResult[RefundInfo]: ...

    async def catalog(self) -> CallResult[Catalog]: ...

    async def supplier_refunds(self, since_seq: int) -> CallResult[list[SupplierRefundEvent]]:
        """Refunds the supplier started on its own with `seq > since_seq`, oldest first."""
        ...

    async def delivery_updates(self, since_seq: int) -> CallResult[list[DeliveryUpdateEvent]]:
        """Express delivery updates (paper tickets) with `seq > since_seq`, oldest first."""
        ...

    async def aclose(self) -> None: ...
