"""real-name tickets: sessions that require them, orders' sealed attendees, and the claims
that hold one document to its tickets per session

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 23:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("real_name_required", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("tickets_per_id", sa.Integer(), nullable=False, server_default="1")
        )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attendees_sealed", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("tickets_per_id", sa.Integer(), nullable=False, server_default="0")
        )
    op.create_table(
        "document_claims",
        sa.Column("session_id", sa.String(40), nullable=False),
        sa.Column("document", sa.String(64), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.String(60), nullable=False),
        sa.Column("attendee_index", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name="fk_document_claims_order_id_orders"
        ),
        sa.PrimaryKeyConstraint("session_id", "document", "slot", name="pk_document_claims"),
    )
    op.create_index("ix_document_claims_order_id", "document_claims", ["order_id"])


def downgrade() -> None:
    op.drop_index("ix_document_claims_order_id", table_name="document_claims")
    op.drop_table("document_claims")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("tickets_per_id")
        batch_op.drop_column("attendees_sealed")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_column("tickets_per_id")
        batch_op.drop_column("real_name_required")
