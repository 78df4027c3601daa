# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Index the job queue by priority, built with CREATE INDEX CONCURRENTLY.

Release 1.2.0, backward compatible. CONCURRENTLY cannot run in a transaction, so it runs in an autocommit
block: the revision's transaction commits before it and a new one records the revision after it. A run killed
in between leaves the index (possibly INVALID) without the revision recorded, hence the DROP ... IF EXISTS
first, so a rerun rebuilds it. Downgrade drops the index CONCURRENTLY.

Revision ID: 0003_jobs_queue_index
Revises: 0002_job_priority
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_jobs_queue_index"
down_revision = "0002_job_priority"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index("ix_jobs_queue", table_name="jobs", postgresql_concurrently=True, if_exists=True)
        op.create_index(
            "ix_jobs_queue",
            "jobs",
            [sa.text("priority DESC NULLS LAST"), "id"],
            postgresql_where=sa.text("status = 'queued'"),
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index("ix_jobs_queue", table_name="jobs", postgresql_concurrently=True, if_exists=True)
