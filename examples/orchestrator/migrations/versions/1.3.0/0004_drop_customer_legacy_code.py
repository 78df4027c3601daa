# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Drop customers.legacy_code, which releases 1.0.0 to 1.2.x still read.

Release 1.3.0, NOT backward compatible: an older app selects the column and fails once it is gone, so the app
must stop before this runs (or already be 1.3.0). Downgrade re-adds the column, nullable and empty: the values
are lost, and a rollback that needs them restores the backup taken before the deploy.

Revision ID: 0004_drop_customer_legacy_code
Revises: 0003_jobs_queue_index
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_drop_customer_legacy_code"
down_revision = "0003_jobs_queue_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_column("customers", "legacy_code")


def downgrade() -> None:
    op.add_column("customers", sa.Column("legacy_code", sa.Text(), nullable=True))
