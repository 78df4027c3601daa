"""Create invoices, a branch beside 0003_order_status."""

from alembic import op

revision = "0003_billing"
down_revision = "0002_orders"


def upgrade():
    op.execute("CREATE TABLE invoices (id bigint PRIMARY KEY, order_id bigint REFERENCES orders)")


def downgrade():
    op.execute("DROP TABLE invoices")
