"""The schema, as SQLAlchemy Core tables. Alembic migrations create it; code reads it here."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

from persistence.types import BigIntPK, UtcDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

suppliers = Table(
    "suppliers",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("gateway", String(40), nullable=False),
    Column("config", JSON, nullable=False),
    Column("replicas", Integer, nullable=False, server_default="1"),
    # Ops overrides of the adaptive negotiation polling (milliseconds); NULL means adaptive.
    Column("poll_interval_override_ms", Integer, nullable=True),
    Column("give_up_override_ms", Integer, nullable=True),
    # Cursors into the supplier's own feeds (refunds it started, delivery updates).
    Column("refund_feed_seq", BigInteger, nullable=False, server_default="0"),
    Column("delivery_feed_seq", BigInteger, nullable=False, server_default="0"),
    Column("status", String(20), nullable=False, server_default="active"),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("last_sync_at", UtcDateTime, nullable=True),  # the last catalog sync's outcome
    Column("sync_report", JSON, nullable=True),
)

shows = Table(
    "shows",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("supplier_id", String(40), ForeignKey("suppliers.id"), nullable=False),
    Column("ref", String(120), nullable=False),
    Column("title", String(300), nullable=False),
    Column("city", String(100), nullable=False),
    Column("category", String(60), nullable=False),
    Column("venue", String(300), nullable=False),
    Column("starts_at", UtcDateTime, nullable=False),
    Column("status", String(20), nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("supplier_id", "ref", name="uq_shows_supplier_ref"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("show_id", String(40), ForeignKey("shows.id"), nullable=False, index=True),
    Column("ref", String(120), nullable=False),
    Column("starts_at", UtcDateTime, nullable=False),
    Column("status", String(20), nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # Real-name tickets (实名制): one attendee per ticket, each document at most
    # `tickets_per_id` tickets of the session across every distributor.
    Column("real_name_required", Boolean, nullable=False, server_default=false()),
    Column("tickets_per_id", Integer, nullable=False, server_default="1"),
    UniqueConstraint("show_id", "ref", name="uq_sessions_show_ref"),
)

tiers = Table(
    "tiers",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("session_id", String(40), ForeignKey("sessions.id"), nullable=False, index=True),
    Column("ref", String(120), nullable=False),
    Column("name", String(200), nullable=False),
    Column("face_value", BigInteger, nullable=False),
    Column("price", BigInteger, nullable=False),
    Column("settlement_price", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("available", Integer, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # Why the platform refused the supplier's tier at sync (a bad price or currency): not sold.
    Column("refused_reason", String(200), nullable=True),
    UniqueConstraint("session_id", "ref", name="uq_tiers_session_ref"),
)

distributors = Table(
    "distributors",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("status", String(20), nullable=False, server_default="active"),
    # Requests per second per key; NULL means the platform's default.
    Column("rate_limit_per_s", Integer, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(60), primary_key=True),
    # "admin" keys belong to the platform's operators; "distributor" keys to one distributor.
    Column("owner_kind", String(20), nullable=False),
    Column("distributor_id", String(40), ForeignKey("distributors.id"), nullable=True),
    Column("key_type", String(20), nullable=False),
    # AES-GCM ciphertext of an HMAC secret (never the secret itself) or an Ed25519 public key.
    Column("secret_ciphertext", Text, nullable=True),
    Column("public_key", Text, nullable=True),
    Column("status", String(20), nullable=False, server_default="active"),
    Column("expires_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
    Index("ix_api_keys_distributor", "distributor_id"),
)

grants = Table(
    "grants",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("distributor_id", String(40), ForeignKey("distributors.id"), nullable=False),
    Column("scope", String(20), nullable=False),
    Column("value", String(200), nullable=True),
    Column("valid_from", UtcDateTime, nullable=True),
    Column("valid_until", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
    Index("ix_grants_distributor", "distributor_id"),
)

orders = Table(
    "orders",
    metadata,
    Column("id", String(60), primary_key=True),
    Column("distributor_id", String(40), ForeignKey("distributors.id"), nullable=False),
    Column("distributor_order_id", String(128), nullable=False),
    Column("supplier_id", String(40), ForeignKey("suppliers.id"), nullable=False),
    Column("session_id", String(40), nullable=False),
    Column("tier_id", String(40), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", BigInteger, nullable=False),
    Column("settlement_price", BigInteger, nullable=False),
    Column("face_value", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(20), nullable=False),
    Column("delivery_method", String(20), nullable=False),
    Column("delivery_status", String(20), nullable=False),
    Column("buyer", JSON, nullable=False),
    Column("delivery_address", Text, nullable=True),
    Column("callback_url", Text, nullable=True),
    # Real-name orders: the attendees sealed (persistence/identity.py), and the session's
    # limit per document when the order was made (0: not a real-name order).
    Column("attendees_sealed", Text, nullable=True),
    Column("tickets_per_id", Integer, nullable=False, server_default="0"),
    Column("request_hash", String(64), nullable=False),
    Column("lock_expires_at", UtcDateTime, nullable=True),
    Column("supplier_lock_ref", String(120), nullable=True),
    Column("failure_reason", Text, nullable=True),
    Column("version", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("distributor_id", "distributor_order_id", name="uq_orders_distributor_ref"),
    Index("ix_orders_status", "status"),
    Index("ix_orders_supplier_status", "supplier_id", "status"),
    Index("ix_orders_distributor_updated", "distributor_id", "updated_at", "id"),
)

order_history = Table(
    "order_history",
    metadata,
    Column("id", BigIntPK, primary_key=True, autoincrement=True),
    Column("order_id", String(60), ForeignKey("orders.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("status", String(20), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("reason", Text, nullable=True),
    UniqueConstraint("order_id", "seq", name="uq_order_history_order_seq"),
)

# A real-name order's attendees' documents, as keyed hashes (persistence/identity.py): one row
# per ticket, in one of the document's `tickets_per_id` slots of the session; the primary key
# is the rule. Deleted when the order lets its seats go.
document_claims = Table(
    "document_claims",
    metadata,
    Column("session_id", String(40), primary_key=True),
    Column("document", String(64), primary_key=True),
    Column("slot", Integer, primary_key=True),
    Column("order_id", String(60), ForeignKey("orders.id"), nullable=False, index=True),
    Column("attendee_index", Integer, nullable=False),
)

tickets = Table(
    "tickets",
    metadata,
    Column("order_id", String(60), ForeignKey("orders.id"), primary_key=True),
    Column("code", String(120), primary_key=True),
    Column("seat", String(120), nullable=True),
)

nonces = Table(
    "nonces",
    metadata,
    Column("key_id", String(60), primary_key=True),
    Column("nonce", String(64), primary_key=True),
    Column("expires_at", UtcDateTime, nullable=False, index=True),
)

# An issue (or refund) whose outcome is unknown: the supplier actor polls the supplier until
# it answers, or flags the order for a person past the give-up time.
negotiations = Table(
    "negotiations",
    metadata,
    Column("order_id", String(60), ForeignKey("orders.id"), primary_key=True),
    Column("kind", String(10), primary_key=True),  # "issue" | "refund"
    Column("supplier_id", String(40), nullable=False),
    Column("status", String(12), nullable=False),  # "active" | "flagged" | "resolved"
    Column("started_at", UtcDateTime, nullable=False),
    Column("next_poll_at", UtcDateTime, nullable=False),
    Column("give_up_at", UtcDateTime, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text, nullable=True),
    Column("resolution", String(40), nullable=True),
    Column("resolved_at", UtcDateTime, nullable=True),
    Index("ix_negotiations_supplier_status_next", "supplier_id", "status", "next_poll_at"),
    Index("ix_negotiations_status_next", "status", "next_poll_at"),
)

# Seats the supplier may hold for an order we gave up on: released until the supplier says so.
releases = Table(
    "releases",
    metadata,
    Column("order_id", String(60), ForeignKey("orders.id"), primary_key=True),
    Column("supplier_id", String(40), nullable=False),
    Column("status", String(12), nullable=False),  # "pending" | "done"
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("done_at", UtcDateTime, nullable=True),
    Index("ix_releases_status_next", "status", "next_attempt_at"),
)

# The compensation log: a refund the supplier made, with the supplier's own refund time.
supplier_refunds = Table(
    "supplier_refunds",
    metadata,
    Column("order_id", String(60), ForeignKey("orders.id"), primary_key=True),
    Column("supplier_id", String(40), nullable=False),
    Column("refunded_at", UtcDateTime, nullable=False),
    Column("initiated_by", String(20), nullable=False),  # "platform" | "supplier"
    Column("recorded_at", UtcDateTime, nullable=False),
)

# Status-change callbacks to distributors, written in the transition's transaction.
outbox = Table(
    "outbox",
    metadata,
    Column("id", BigIntPK, primary_key=True, autoincrement=True),
    Column("order_id", String(60), ForeignKey("orders.id"), nullable=False),
    Column("url", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("status", String(12), nullable=False),  # "pending" | "delivered" | "dead"
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("delivered_at", UtcDateTime, nullable=True),
    # whose message it is (each distributor gets a share of a courier's round)
    Column("distributor_id", String(40), nullable=True),
    # which courier delivers it: a fixed hash shard of the order id (host i of n: shard % n == i)
    Column("shard", Integer, nullable=False, server_default="0"),
    Column("dead_at", UtcDateTime, nullable=True),  # given up on; ops may redeliver it
    Index("ix_outbox_status_next", "status", "next_attempt_at"),
    Index("ix_outbox_shard_due", "status", "shard", "next_attempt_at"),
    Index("ix_outbox_order", "order_id", "id"),
)

# Events read from a supplier's feeds (its own refunds, delivery steps), kept until they apply
# to their order: the feed's cursor passes an event once it is stored here, never before.
supplier_events = Table(
    "supplier_events",
    metadata,
    Column("id", BigIntPK, primary_key=True, autoincrement=True),
    Column("supplier_id", String(40), ForeignKey("suppliers.id"), nullable=False),
    Column("feed", String(10), nullable=False),  # "refund" | "delivery"
    Column("seq", BigInteger, nullable=False),
    Column("order_id", String(60), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("status", String(12), nullable=False),  # "pending" | "applied" | "refused"
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("applied_at", UtcDateTime, nullable=True),
    UniqueConstraint("supplier_id", "feed", "seq", name="uq_supplier_events_feed_seq"),
    Index("ix_supplier_events_pending", "supplier_id", "status"),
)

# The ledger: one immutable row per (order, kind, sign, refund). `basis_period` is the
# calendar day of the basis time; `booked_period` is where it counts: the same day, or the
# first open day after it when that day was already closed into a statement.
flows = Table(
    "flows",
    metadata,
    Column("id", BigIntPK, primary_key=True, autoincrement=True),
    Column("order_id", String(60), ForeignKey("orders.id"), nullable=False),
    Column("distributor_id", String(40), nullable=False),
    Column("supplier_id", String(40), nullable=False),
    Column("kind", String(12), nullable=False),  # "receivable" | "settlement"
    Column("sign", Integer, nullable=False),  # +1 | -1
    Column("refund_no", Integer, nullable=False),
    Column("amount", BigInteger, nullable=False),  # minor units, positive
    Column("currency", String(3), nullable=False),
    Column("basis_time", UtcDateTime, nullable=False),
    Column("basis_period", String(10), nullable=False),
    Column("booked_period", String(10), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("order_id", "kind", "sign", "refund_no", name="uq_flows_order_kind_sign"),
    Index("ix_flows_booked_period", "booked_period"),
)

# Periods that have seen flows; a closed one is frozen into its statement.
periods = Table(
    "periods",
    metadata,
    Column("period", String(10), primary_key=True),
    Column("status", String(10), nullable=False),  # "open" | "closed"
    Column("closed_at", UtcDateTime, nullable=True),
)

statements = Table(
    "statements",
    metadata,
    Column("period", String(10), primary_key=True),
    Column("body", JSON, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("closed_at", UtcDateTime, nullable=False),
)

# Which order host owns each of the orders' partitions (domain.partitions); `moving_to` names
# the host a partition is being handed to, until its owner has handed it over.
order_partitions = Table(
    "order_partitions",
    metadata,
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("host", Integer, nullable=False),
    Column("moving_to", Integer, nullable=True),
)

# One row: how many order hosts ops asked for, and the assignment's version (bumped by every
# change, so routers notice one with a one-row read).
order_host_plan = Table(
    "order_host_plan",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("hosts", Integer, nullable=False),
    Column("version", BigInteger, nullable=False),
)
