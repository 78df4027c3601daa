# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Add jobs.tags: the other BRANCH head on 0004 (test revision, `alembic -n branch`).

Sibling of 0103_customer_notes; see there. Downgrade drops the column.

Revision ID: 0104_job_tags
Revises: 0004_drop_customer_legacy_code
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0104_job_tags"
down_revision = "0004_drop_customer_legacy_code"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("tags", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False))


def downgrade() -> None:
    op.drop_column("jobs", "tags")
