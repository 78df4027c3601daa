# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Add customers.phone: the ordinary revision of an UNHEALTHY release (test revision, `alembic -n unhealthy`).

The migration itself succeeds and is reversible; what fails is the app of release 1.4.0-unhealthy, whose
/health answers 503 forever, so a deploy must stop at its health gate and roll back. Downgrade drops the column.

Revision ID: 0107_customer_phone
Revises: 0004_drop_customer_legacy_code
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0107_customer_phone"
down_revision = "0004_drop_customer_legacy_code"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("customers", sa.Column("phone", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("customers", "phone")
