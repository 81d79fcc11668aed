"""suppliers hosted in a pool: the pool's hosts look for due negotiations of every pooled
supplier at once

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 22:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("negotiations", schema=None) as batch_op:
        batch_op.create_index("ix_negotiations_status_next", ["status", "next_poll_at"])


def downgrade() -> None:
    with op.batch_alter_table("negotiations", schema=None) as batch_op:
        batch_op.drop_index("ix_negotiations_status_next")
