# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""require orders.customer_email

Release 1.3.0: every order has an address now (938864403e43 filled the gaps). DDL that depends on what exists,
as revisions written over years do: the column is made NOT NULL only where it is still nullable, which an
inspector on the live connection tells (alembic's offline mode has none).

Revision ID: b8fe8cc33e92
Revises: 938864403e43
Create Date: 2026-12-02 10:20:03.007113
"""

from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "b8fe8cc33e92"
down_revision: Union[str, Sequence[str], None] = "938864403e43"
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


def downgrade() -> None:
    """Downgrade schema."""
    op.alter_column("orders", "customer_email", existing_type=sa.String(320), nullable=True)
