# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""index orders.customer_email

Release 1.1.0: built CONCURRENTLY, so orders stay writable meanwhile. CONCURRENTLY cannot run in a
transaction, hence the autocommit block, and a revision of its own: a build interrupted half-way leaves an
INVALID index and no revision recorded, so the rerun drops it first.

Revision ID: 3f2d44a88b62
Revises: 059ab399eb18
Create Date: 2026-04-13 16:05:12.904417
"""

from __future__ import annotations

from typing import Sequence, Union

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "3f2d44a88b62"
down_revision: Union[str, Sequence[str], None] = "059ab399eb18"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.get_context().autocommit_block():
        op.drop_index("ix_orders_customer_email", table_name="orders", postgresql_concurrently=True, if_exists=True)
        op.create_index("ix_orders_customer_email", "orders", ["customer_email"], postgresql_concurrently=True)


def downgrade() -> None:
    """Downgrade schema."""
    with op.get_context().autocommit_block():
        op.drop_index("ix_orders_customer_email", table_name="orders", postgresql_concurrently=True, if_exists=True)
