"""The shop's first tables."""

from alembic import op

revision = "0001_shop"
down_revision = None


def upgrade():
    op.execute("CREATE TABLE customers (id bigint PRIMARY KEY, email text)")
    op.execute("CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint, status text, quantity int, total text)")


def downgrade():
    op.execute("DROP TABLE orders")
    op.execute("DROP TABLE customers")
