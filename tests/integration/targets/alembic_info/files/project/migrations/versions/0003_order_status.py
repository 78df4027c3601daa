"""Add orders.status."""

from alembic import op

revision = "0003_order_status"
down_revision = "0002_orders"


def upgrade():
    op.execute("ALTER TABLE orders ADD COLUMN status text")


def downgrade():
    op.execute("ALTER TABLE orders DROP COLUMN status")
