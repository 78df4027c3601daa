# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""add orders.gift_note

Test release 1.1.0-broken, BROKEN ON PURPOSE: the column is added, then the backfill names a column that does
not exist (UndefinedColumn), so this revision rolls back and the database stays at 1.0.0's head. Only the
1.1.0-broken image ships it (prune_revisions.py moves it into migrations/versions/ there).

Revision ID: 65e8d4dc88b8
Revises: 967555f8ede8
Create Date: 2026-04-10 11:20:58.002731
"""

from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "65e8d4dc88b8"
down_revision: Union[str, Sequence[str], None] = "967555f8ede8"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column("orders", sa.Column("gift_note", sa.Text(), nullable=True))
    op.execute("UPDATE orders SET gift_note = gift_message WHERE gift_note IS NULL")


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_column("orders", "gift_note")
