# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""backfill customer emails, tell products of one name apart

Release 1.3.0, a data migration through the database: orders placed before 1.1.0 (or without an address) get a
placeholder address, so that the next revision can make the column NOT NULL; products that share a name get
their SKU appended, so that the last revision can make names unique. An ORM session and a query on the live rows,
which alembic's offline mode (`--sql`) cannot run. Its downgrade keeps the data: the new values are valid.

Revision ID: 938864403e43
Revises: ee429f4cee53
Create Date: 2026-12-02 10:12:44.518201
"""

from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy import orm

# revision identifiers, used by Alembic.
revision: str = "938864403e43"
down_revision: Union[str, Sequence[str], None] = "ee429f4cee53"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


class Base(orm.DeclarativeBase):
    pass


class Order(Base):
    """The orders table as this revision knows it, not as the app's models may describe it later."""

    __tablename__ = "orders"
    id = sa.Column(sa.BigInteger, primary_key=True)
    customer_email = sa.Column(sa.String(320))


def upgrade() -> None:
    """Upgrade schema."""
    bind = op.get_bind()
    session = orm.Session(bind=bind)
    for order in session.scalars(sa.select(Order).where(Order.customer_email.is_(None))):
        order.customer_email = "unknown+%d@storefront.invalid" % order.id
    session.flush()
    shared = bind.execute(
        sa.text(
            "SELECT p.id, p.name, p.sku FROM products p"
            " WHERE EXISTS (SELECT 1 FROM products q WHERE q.name = p.name AND q.id < p.id)"
        )
    ).all()
    for product_id, name, sku in shared:
        bind.execute(
            sa.text("UPDATE products SET name = :name WHERE id = :id"),
            {"name": "%s (%s)" % (name, sku), "id": product_id},
        )


def downgrade() -> None:
    """Downgrade schema: nothing to undo, the placeholders and the new names are valid data."""
