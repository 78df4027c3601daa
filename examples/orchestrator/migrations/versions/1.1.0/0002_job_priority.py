# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Add jobs.priority, nullable, and backfill it in batches.

Release 1.1.0, backward compatible: 1.0.0 keeps working, its inserts leave priority NULL and the 1.1.0 worker
orders NULL last. Downgrade drops the column (the priorities set since are lost, nothing else).

Revision ID: 0002_job_priority
Revises: 0001_initial
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0002_job_priority"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

BATCH_SIZE = 1000
PRIORITY_BY_KIND = "CASE kind WHEN 'provision' THEN 10 ELSE 0 END"
BATCH_UPPER_ID = sa.text("SELECT max(id) FROM (SELECT id FROM jobs WHERE id > :after_id ORDER BY id LIMIT :size) AS b")
BACKFILL_RANGE = sa.text(
    "UPDATE jobs SET priority = %s WHERE id > :after_id AND id <= :upper_id AND priority IS NULL" % PRIORITY_BY_KIND
)


def upgrade() -> None:
    op.add_column("jobs", sa.Column("priority", sa.SmallInteger(), nullable=True))
    if context.is_offline_mode():
        # offline SQL cannot loop on results: one statement that does the same
        op.execute("UPDATE jobs SET priority = %s WHERE priority IS NULL" % PRIORITY_BY_KIND)
        return
    # keyset batches keep every statement short, well under the statement_timeout a deploy sets
    bind = op.get_bind()
    after_id = 0
    while True:
        upper_id = bind.execute(BATCH_UPPER_ID, {"after_id": after_id, "size": BATCH_SIZE}).scalar()
        if upper_id is None:
            return
        bind.execute(BACKFILL_RANGE, {"after_id": after_id, "upper_id": upper_id})
        after_id = upper_id


def downgrade() -> None:
    op.drop_column("jobs", "priority")
