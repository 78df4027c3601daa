# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""unique product names

Release 1.3.0: no two products share a name (938864403e43 told them apart). The unique index is built
CONCURRENTLY in an autocommit block, so orders keep being written while it builds.

Revision ID: 96069d0b06f2
Revises: b8fe8cc33e92
Create Date: 2026-12-02 10:26:51.640072
"""

from __future__ import annotations

from typing import Sequence, Union

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "96069d0b06f2"
down_revision: Union[str, Sequence[str], None] = "b8fe8cc33e92"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.get_context().autocommit_block():
        op.create_index("ux_products_name", "products", ["name"], unique=True, postgresql_concurrently=True)


def downgrade() -> None:
    """Downgrade schema."""
    with op.get_context().autocommit_block():
        op.drop_index("ux_products_name", table_name="products", postgresql_concurrently=True, if_exists=True)
