# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""initial schema

Release 1.0.0: products (with the launch catalogue) and orders.

Revision ID: 967555f8ede8
Revises:
Create Date: 2026-03-02 10:14:05.118620
"""

from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "967555f8ede8"
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

LAUNCH_CATALOGUE = [
    {"sku": "MUG-001", "name": "Enamel mug", "price_cents": 1200},
    {"sku": "TEE-001", "name": "Logo t-shirt", "price_cents": 2500},
    {"sku": "CAP-001", "name": "Baseball cap", "price_cents": 1800},
    {"sku": "STK-001", "name": "Sticker pack", "price_cents": 500},
    {"sku": "BAG-001", "name": "Canvas tote bag", "price_cents": 1500},
]


def upgrade() -> None:
    """Upgrade schema."""
    products = op.create_table(
        "products",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("sku", sa.String(32), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("price_cents", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "orders",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("product_id", sa.Integer(), sa.ForeignKey("products.id"), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("total_cents", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("emailed_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_orders_product_id", "orders", ["product_id"])
    # the emails worker's queue: orders not confirmed yet
    op.create_index("ix_orders_not_emailed", "orders", ["id"], postgresql_where=sa.text("emailed_at IS NULL"))
    op.bulk_insert(products, LAUNCH_CATALOGUE)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("orders")
    op.drop_table("products")
