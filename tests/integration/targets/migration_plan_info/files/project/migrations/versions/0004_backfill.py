"""What real histories do: read the schema and the rows, migrate data through the ORM, index concurrently."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy import orm

revision = "0004_backfill"
down_revision = "0003_slow_rule"


class Base(orm.DeclarativeBase):
    pass


class Order(Base):
    __tablename__ = "orders"
    id = sa.Column(sa.BigInteger, primary_key=True)
    status = sa.Column(sa.Text)


def upgrade():
    bind = op.get_bind()
    # DDL that depends on what exists: alembic's offline mode cannot run an inspector
    if "note" not in {column["name"] for column in sa.inspect(bind).get_columns("orders")}:
        op.add_column("orders", sa.Column("note", sa.Text))
    session = orm.Session(bind=bind)
    for order in session.query(Order).filter(Order.status == "new"):
        order.status = "open"
    session.flush()
    with op.get_context().autocommit_block():
        op.create_index("ix_orders_status", "orders", ["status"], postgresql_concurrently=True)


def downgrade():
    with op.get_context().autocommit_block():
        op.drop_index("ix_orders_status", table_name="orders", postgresql_concurrently=True)
    op.drop_column("orders", "note")
