"""callbacks that no one can stall, supplier events kept until they apply, tiers checked at
the door

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 20:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from domain.ids import stable_shard
from persistence.types import UtcDateTime

COURIER_SHARDS = 256  # as domain.callbacks.COURIER_SHARDS when this migration was written

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The outbox: whose message it is (a per-distributor share of each round), which courier
    # delivers it (a fixed hash shard of the order id; host i takes shard % hosts == i),
    # and when it was given up on ("dead").
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("distributor_id", sa.String(40), nullable=True))
        batch_op.add_column(sa.Column("shard", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("dead_at", UtcDateTime(timezone=True), nullable=True))
        batch_op.create_index(
            "ix_outbox_shard_due", ["status", "shard", "next_attempt_at"], unique=False
        )
        batch_op.create_index("ix_outbox_order", ["order_id", "id"], unique=False)
    # Rows written before: each takes its order's shard and distributor, so that an order's
    # old and new messages share one courier (and one place in line).
    conn = op.get_bind()
    owners = conn.execute(
        sa.text(
            "SELECT DISTINCT outbox.order_id, orders.distributor_id FROM outbox "
            "JOIN orders ON orders.id = outbox.order_id"
        )
    ).all()
    for order_id, distributor_id in owners:
        conn.execute(
            sa.text(
                "UPDATE outbox SET shard = :shard, distributor_id = :dist WHERE order_id = :id"
            ),
            {
                "shard": stable_shard(order_id, COURIER_SHARDS),
                "dist": distributor_id,
                "id": order_id,
            },
        )
    # A currency a supplier sent in lower case (which the platform now reads as its ISO code)
    # is stored in upper case wherever it was stored before.
    for table in ("tiers", "orders", "flows"):
        conn.execute(
            sa.text(
                f"UPDATE {table} SET currency = UPPER(currency) WHERE currency <> UPPER(currency)"
            )
        )
    # Events from a supplier's feeds, kept until they apply to their order (or are refused).
    op.create_table(
        "supplier_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("supplier_id", sa.String(40), nullable=False),
        sa.Column("feed", sa.String(10), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("order_id", sa.String(60), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("applied_at", UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["supplier_id"], ["suppliers.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("supplier_id", "feed", "seq", name="uq_supplier_events_feed_seq"),
    )
    op.create_index(
        "ix_supplier_events_pending", "supplier_events", ["supplier_id", "status"], unique=False
    )
    # A tier the platform refused at sync (bad price or currency) is not sellable.
    with op.batch_alter_table("tiers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("refused_reason", sa.String(200), nullable=True))
    # The outcome of a supplier's last catalog sync, for ops.
    with op.batch_alter_table("suppliers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_sync_at", UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("sync_report", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("suppliers", schema=None) as batch_op:
        batch_op.drop_column("sync_report")
        batch_op.drop_column("last_sync_at")
    with op.batch_alter_table("tiers", schema=None) as batch_op:
        batch_op.drop_column("refused_reason")
    op.drop_index("ix_supplier_events_pending", table_name="supplier_events")
    op.drop_table("supplier_events")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_order")
        batch_op.drop_index("ix_outbox_shard_due")
        batch_op.drop_column("dead_at")
        batch_op.drop_column("shard")
        batch_op.drop_column("distributor_id")
