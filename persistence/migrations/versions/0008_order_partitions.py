"""order hosts that scale: the orders' partitions, assigned to order hosts

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 06:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "order_partitions",
        sa.Column("partition", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("host", sa.Integer(), nullable=False),
        sa.Column("moving_to", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("partition", name="pk_order_partitions"),
    )
    op.create_table(
        "order_host_plan",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("hosts", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_order_host_plan"),
    )


def downgrade() -> None:
    op.drop_table("order_host_plan")
    op.drop_table("order_partitions")
