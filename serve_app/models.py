"""What the API answers, as pydantic models: the OpenAPI document's response schemas.

These models only describe. The routes build their answers as plain JSON (`serve_app.views`
and the routes themselves) and send them without validating them against a model: an answer
costs no model on the hot paths. The schema they make is checked against the real answers by
the fuzz test (`tests/e2e/test_fuzz_api.py`), which sends every operation positive and
negative data and validates every response against these models. No model allows a field it
does not name (`additionalProperties: false`), so a field added to an answer must be added
here too.

Times are RFC 3339 with an offset (`format: date-time`), in the platform's time zone unless
the field says otherwise; money is whole minor units.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

OrderStatusName = Literal[
    "NEW",
    "LOCKED",
    "LOCK_FAILED",
    "CANCELED",
    "FIXING",
    "FIXED",
    "REFUNDING",
    "REFUNDED",
    "REFUND_FAIL",
]
DeliveryStatusName = Literal["NONE", "PENDING", "SHIPPED", "DELIVERED"]
GrantScopeName = Literal["all", "supplier", "city", "category", "show", "session"]


class Model(BaseModel):
    """A documented answer: every field it has, and no other."""

    model_config = ConfigDict(extra="forbid")


# -- errors --------------------------------------------------------------------------------


class ErrorDetail(Model):
    code: str = Field(description="snake_case; the codes each status may carry are listed")
    message: str = Field(description="human text (it may change; match on `code`)")


# -- unsigned --------------------------------------------------------------------------------


class Health(Model):
    status: Literal["ok"]


class PlatformKey(Model):
    key_id: Literal["platform"]
    algorithm: Literal["ed25519"]
    public_key: str = Field(description="base64 of the raw 32-byte Ed25519 public key")


# -- orders ----------------------------------------------------------------------------------


class OrderDelivery(Model):
    method: Literal["ETICKET", "EXPRESS"]
    address: str | None


class Attendee(Model):
    """A real-name ticket's attendee, the document masked (an 18-character ID card shows its
    first 4 and last 4 characters)."""

    name: str
    id_type: Literal[
        "ID_CARD", "PASSPORT", "HK_MACAO_PERMIT", "TAIWAN_PERMIT", "FOREIGN_PERMANENT_RESIDENT"
    ]
    id_number: str = Field(description="masked")


class Ticket(Model):
    code: str
    seat: str | None
    attendee: Attendee | None = Field(default=None, description="real-name tickets only")


class StatusChange(Model):
    status: OrderStatusName
    at: datetime
    reason: str | None = Field(default=None, description="present when the move gave one")


class Order(Model):
    id: str
    distributor_order_id: str
    status: OrderStatusName
    delivery_status: DeliveryStatusName
    delivery: OrderDelivery
    supplier_id: str
    session_id: str
    tier_id: str
    quantity: int
    unit_price: int = Field(description="what the distributor pays per ticket")
    amount: int = Field(description="unit_price * quantity")
    currency: str
    lock_expires_at: datetime | None
    tickets: list[Ticket]
    attendees: list[Attendee] = Field(description="real-name orders: one per ticket, masked")
    failure_reason: str | None
    callback_url: str | None
    created_at: datetime
    updated_at: datetime
    history: list[StatusChange]


class Error(Model):
    """Every error: `error`, and for an answer about an existing order, the order."""

    error: ErrorDetail
    order: Order | None = Field(
        default=None, description="the order as it is now, when the error concerns one"
    )


class OrderPage(Model):
    items: list[Order]
    next_cursor: str | None


class AdminOrder(Order):
    distributor_id: str


class AdminOrderPage(Model):
    items: list[AdminOrder]
    next_cursor: str | None


class Negotiation(Model):
    kind: Literal["issue", "refund"]
    status: Literal["active", "flagged", "resolved"]
    started_at: datetime
    next_poll_at: datetime
    give_up_at: datetime
    attempts: int
    last_error: str | None
    resolution: str | None


class Release(Model):
    status: Literal["pending", "done"]
    attempts: int


class SupplierRefund(Model):
    refunded_at: datetime = Field(description="the supplier's own refund time")
    initiated_by: Literal["platform", "supplier"]


class CallbackState(Model):
    status: Literal["pending", "delivered", "dead"]
    attempts: int
    last_error: str | None


class AdminOrderDetail(AdminOrder):
    settlement_price: int = Field(description="what the platform owes the supplier per ticket")
    negotiations: list[Negotiation]
    release: Release | None
    supplier_refund: SupplierRefund | None
    callbacks: list[CallbackState]


# -- catalog ---------------------------------------------------------------------------------


class Show(Model):
    id: str
    supplier_id: str
    title: str
    city: str
    category: str
    venue: str
    starts_at: datetime
    status: Literal["online", "offline", "withdrawn"]
    updated_at: datetime = Field(description="the show's effective update time for the caller")


class ShowPage(Model):
    items: list[Show]
    next_cursor: str | None


class Tier(Model):
    id: str
    name: str
    face_value: int
    price: int = Field(description="what the distributor pays per ticket")
    currency: str
    available: int = Field(description="as of the last catalog sync")


class Session(Model):
    id: str
    starts_at: datetime
    status: Literal["online", "offline"]
    real_name_required: bool = Field(description="each ticket names a checked attendee")
    tickets_per_id: int = Field(description="tickets one identity document may hold")
    tiers: list[Tier]


class ShowDetail(Show):
    sessions: list[Session] = Field(description="only the sessions a live grant covers")


class TierStock(Model):
    tier_id: str
    available: int


class Stock(Model):
    session_id: str
    tiers: list[TierStock]
    as_of: datetime


# -- callbacks -------------------------------------------------------------------------------


class CallbackMessage(Model):
    id: int
    order_id: str
    distributor_id: str | None = Field(description="null for messages written before it was")
    url: str
    status: Literal["pending", "delivered", "dead"]
    attempts: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    dead_at: datetime | None


class CallbackPage(Model):
    items: list[CallbackMessage]
    next_cursor: str | None


class Redelivery(Model):
    id: int
    status: Literal["pending"]
    attempts: Literal[0]
    next_attempt_at: datetime


# -- suppliers -------------------------------------------------------------------------------


class SupplierView(Model):
    """A supplier as every supplier route shows it (the config is never shown)."""

    id: str
    name: str
    gateway: str
    status: Literal["active", "retired"]
    replicas: int
    placement: Literal["pool", "dedicated"] = Field(
        description="one replica: in the shared pool of supplier hosts; more: dedicated hosts"
    )


class SupplierList(Model):
    items: list[SupplierView]
    next_cursor: None = Field(description="always null: every supplier is on the one page")


class SupplierStats(Model):
    """The supplier's first replica's rolling window of its last calls."""

    calls: int
    done: int
    failed: int
    unknown: int
    success_rate: float
    unknown_rate: float
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    in_flight: int
    circuit: str
    poll_interval_s: float
    give_up_after_s: float
    polling_adaptive: bool


class Polling(Model):
    interval_s: float
    give_up_after_s: float
    adaptive: bool
    interval_override_ms: int | None
    give_up_override_ms: int | None


class NegotiationCounts(Model):
    active: int
    flagged: int
    resolved: int


class RefusedTier(Model):
    tier_id: str
    show_ref: str
    session_ref: str
    tier_ref: str
    reason: str = Field(description="its kind first, e.g. `settlement_above_price: ...`")


class NormalisedTier(Model):
    tier_id: str
    show_ref: str
    session_ref: str
    tier_ref: str
    currency_given: str
    currency: str


class CatalogSync(Model):
    synced_at: datetime
    shows: int
    sessions: int
    tiers: int
    tiers_refused: int
    tiers_normalised: int
    rows_changed: int
    refused: list[RefusedTier] = Field(description="at most 100")
    normalised: list[NormalisedTier] = Field(description="at most 100")


class SupplierDetail(SupplierView):
    stats: SupplierStats
    polling: Polling
    negotiations: NegotiationCounts
    catalog_sync: CatalogSync | None = Field(description="null before the first sync")


class PollingSet(Model):
    interval_ms: int | None
    give_up_ms: int | None


class SyncResult(Model):
    supplier_id: str
    rows_changed: int


class Scaled(Model):
    supplier_id: str
    replicas: int
    before: int
    placement: Literal["pool", "dedicated"]
    retiring: list[int] = Field(description="the dedicated replica numbers that retire")
    leaves_pool: bool = Field(description="the supplier moved from the pool to dedicated hosts")


class OrderHostLoad(Model):
    host: int
    partitions: int = Field(description="partitions the assignment gives this host")
    moving_out: int = Field(description="of those, being handed to another host now")
    held: int | None = Field(
        description="partitions the running host says it owns (null: not running)"
    )
    active_orders: int | None = Field(description="orders active in the host now")


class OrderHostsView(Model):
    hosts: int = Field(description="order hosts asked for")
    partitions: int = Field(description="partitions of the orders (fixed)")
    version: int = Field(description="the assignment's version; every change bumps it")
    settled: bool = Field(description="no partition is being handed over")
    moving: int = Field(description="partitions being handed over")
    assignment: list[OrderHostLoad]
    stopped: list[int] = Field(default=[], description="hosts stopped by this change")


# -- distributors, keys, grants --------------------------------------------------------------


class KeyView(Model):
    key_id: str
    type: Literal["hmac", "ed25519"]
    status: Literal["active", "revoked"]
    expires_at: datetime | None
    created_at: datetime


class DistributorSummary(Model):
    """A distributor as the list shows it (its keys: `GET /admin/v1/distributors/{id}`)."""

    id: str
    name: str
    status: Literal["active", "suspended"]
    rate_limit_per_s: int | None = Field(description="null: the platform's default applies")
    created_at: datetime


class DistributorView(DistributorSummary):
    """A distributor with its keys."""

    keys: list[KeyView]


class DistributorPage(Model):
    items: list[DistributorSummary]
    next_cursor: str | None


class NewKey(Model):
    key_id: str
    type: Literal["hmac", "ed25519"]
    expires_at: datetime | None
    secret: str | None = Field(
        default=None, description="HMAC keys only: the only time the secret is ever shown"
    )


class KeyRevoked(Model):
    key_id: str
    status: Literal["revoked"]


class GrantView(Model):
    id: str
    scope: GrantScopeName
    value: str | None
    valid_from: datetime | None
    valid_until: datetime | None
    created_at: datetime | None
    revoked_at: datetime | None


class GrantList(Model):
    items: list[GrantView]
    next_cursor: None = Field(description="always null: every grant is on the one page")


class GrantRevoked(Model):
    grant_id: str
    status: Literal["revoked"]


# -- settlement ------------------------------------------------------------------------------


class CurrencySummary(Model):
    currency: str
    receivable_net: int
    settlement_net: int
    retained: int
    retained_to_date: int


class PeriodLine(Model):
    period: str = Field(description="a calendar day, YYYY-MM-DD")
    flows: int
    currencies: list[CurrencySummary]
    holds: bool
    status: Literal["open", "closed"]
    closed_at: datetime | None


class PeriodPage(Model):
    items: list[PeriodLine]
    next_cursor: str | None


class CurrencyTotals(Model):
    currency: str
    receivable_plus: int
    receivable_minus: int
    receivable_net: int
    settlement_plus: int
    settlement_minus: int
    settlement_net: int
    retained: int
    receivable_to_date: int
    settlement_to_date: int
    retained_to_date: int


class DistributorLine(Model):
    distributor_id: str
    currency: str
    receivable_plus: int
    receivable_minus: int
    net: int


class SupplierLine(Model):
    supplier_id: str
    currency: str
    settlement_plus: int
    settlement_minus: int
    net: int


class SettlementChecks(Model):
    period: bool
    to_date: bool
    orders: bool
    violating_orders_count: int
    violating_orders: list[str] = Field(description="at most 100 order ids")


class PeriodSnapshot(Model):
    """An open period's snapshot (`closed: false`, `as_of_flow_id`) or a closed one's
    statement (`closed: true`, `closed_at`, `digest`)."""

    period: str
    flows: int
    currencies: list[CurrencyTotals]
    distributors: list[DistributorLine]
    suppliers: list[SupplierLine]
    checks: SettlementChecks
    holds: bool
    closed: bool
    as_of_flow_id: int | None = Field(default=None, description="open: the last flow counted")
    closed_at: datetime | None = Field(default=None, description="closed: when")
    digest: str | None = Field(
        default=None, description="closed: SHA-256 (hex) of the statement's canonical JSON"
    )
