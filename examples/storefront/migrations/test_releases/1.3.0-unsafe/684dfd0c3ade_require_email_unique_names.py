# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""require orders.customer_email, unique product names

Test release 1.3.0-unsafe, UNSAFE ON PURPOSE: 1.3.0's schema without 1.3.0's data migration. Orders without an
address make SET NOT NULL fail and products that share a name make the unique index fail, on the live rows only:
the plan's data checks must refuse it before the backup. The NOT NULL is conditional on an inspector, so the
plan is traced. Only the 1.3.0-unsafe image ships it.

Revision ID: 684dfd0c3ade
Revises: ee429f4cee53
Create Date: 2026-12-02 09:58:12.331090
"""

from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "684dfd0c3ade"
down_revision: Union[str, Sequence[str], None] = "ee429f4cee53"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

CHECK = "ck_orders_customer_email_not_null"


def upgrade() -> None:
    """Upgrade schema."""
    columns = {column["name"]: column for column in sa.inspect(op.get_bind()).get_columns("orders")}
    if columns["customer_email"]["nullable"]:
        # each statement commits on its own, so the scan runs under VALIDATE's SHARE UPDATE EXCLUSIVE lock, which
        # lets orders be written, and SET NOT NULL trusts the validated CHECK instead of scanning again
        with op.get_context().autocommit_block():
            op.execute("ALTER TABLE orders DROP CONSTRAINT IF EXISTS %s" % CHECK)
            op.create_check_constraint(CHECK, "orders", "customer_email IS NOT NULL", postgresql_not_valid=True)
            op.execute("ALTER TABLE orders VALIDATE CONSTRAINT %s" % CHECK)
            op.alter_column("orders", "customer_email", existing_type=sa.String(320), nullable=False)
            op.drop_constraint(CHECK, "orders", type_="check")
    with op.get_context().autocommit_block():
        op.create_index("ux_products_name", "products", ["name"], unique=True, postgresql_concurrently=True)


def downgrade() -> None:
    """Downgrade schema."""
    with op.get_context().autocommit_block():
        op.drop_index("ux_products_name", table_name="products", postgresql_concurrently=True, if_exists=True)
    op.alter_column("orders", "customer_email", existing_type=sa.String(320), nullable=True)
