# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Add customers.notes: one of two BRANCH heads on 0004 (test revision, `alembic -n branch`).

With its sibling 0104_job_tags the scripts have two heads, so `alembic upgrade head` refuses to choose;
`alembic -n merge` adds the merge revision that joins them. Downgrade drops the column.

Revision ID: 0103_customer_notes
Revises: 0004_drop_customer_legacy_code
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0103_customer_notes"
down_revision = "0004_drop_customer_legacy_code"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("customers", sa.Column("notes", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("customers", "notes")
