# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""add orders.customer_email

Release 1.1.0, backward compatible: a nullable column, which the 1.0.0 app never reads nor writes.

Revision ID: 059ab399eb18
Revises: 967555f8ede8
Create Date: 2026-04-13 16:02:41.551908
"""

from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "059ab399eb18"
down_revision: Union[str, Sequence[str], None] = "967555f8ede8"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column("orders", sa.Column("customer_email", sa.String(320), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_column("orders", "customer_email")
