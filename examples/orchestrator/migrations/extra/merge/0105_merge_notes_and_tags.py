# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""MERGE the two branch heads 0103_customer_notes and 0104_job_tags (test revision, `alembic -n merge`).

No schema change of its own; upgrade and downgrade are empty, as `alembic merge` writes them.

Revision ID: 0105_merge_notes_and_tags
Revises: 0103_customer_notes, 0104_job_tags
"""

from __future__ import annotations

revision = "0105_merge_notes_and_tags"
down_revision = ("0103_customer_notes", "0104_job_tags")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
