# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Add customer_audit, then sleep: a SLOW revision for kill and timeout tests (`alembic -n slow`).

It creates a table first and then runs `SELECT pg_sleep(ORCHESTRATOR_SLOW_SECONDS)` (default 12) in the same
transaction, so a run killed or cancelled (statement_timeout) while it sleeps proves the rollback: no
customer_audit table, the revision not recorded. Downgrade drops the table.

Revision ID: 0102_slow_customer_audit
Revises: 0004_drop_customer_legacy_code
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import op

revision = "0102_slow_customer_audit"
down_revision = "0004_drop_customer_legacy_code"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customer_audit",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("change", sa.Text(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    seconds = float(os.environ.get("ORCHESTRATOR_SLOW_SECONDS", "12"))
    op.execute(sa.text("SELECT pg_sleep(:seconds)").bindparams(seconds=seconds))
    op.create_index("ix_customer_audit_customer_id", "customer_audit", ["customer_id"])


def downgrade() -> None:
    op.drop_table("customer_audit")
