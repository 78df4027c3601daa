# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Add invoices and customers.billing_email; FAILS half-way on purpose (test revision, `alembic -n broken`).

The index names a column that does not exist (`customer` instead of `customer_id`), the kind of typo that
reaches production: the second-to-last statement fails with UndefinedColumn. With transaction_per_migration
the whole revision rolls back and the database stays at the last revision that committed. Downgrade (never
reached in practice) drops what the upgrade adds.

Revision ID: 0101_broken_invoices
Revises: 0004_drop_customer_legacy_code
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0101_broken_invoices"
down_revision = "0004_drop_customer_legacy_code"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "invoices",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("customer_id", sa.BigInteger(), sa.ForeignKey("customers.id"), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
    )
    op.add_column("customers", sa.Column("billing_email", sa.Text(), nullable=True))
    op.create_index("ix_invoices_customer", "invoices", ["customer"])
    op.execute("COMMENT ON TABLE invoices IS 'issued invoices'")


def downgrade() -> None:
    op.drop_column("customers", "billing_email")
    op.drop_table("invoices")
