# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""add daily_sales

Release 1.2.0, backward compatible: a new table that only the 1.2.0 reports worker writes.

Revision ID: ee429f4cee53
Revises: 3f2d44a88b62
Create Date: 2026-05-20 09:41:37.260113
"""

from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "ee429f4cee53"
down_revision: Union[str, Sequence[str], None] = "3f2d44a88b62"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "daily_sales",
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("orders", sa.BigInteger(), nullable=False),
        sa.Column("revenue_cents", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("daily_sales")
