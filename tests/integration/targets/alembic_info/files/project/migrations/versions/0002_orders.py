"""Create orders."""

from alembic import op

revision = "0002_orders"
down_revision = "0001_users"


def upgrade():
    op.execute("CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint REFERENCES users)")


def downgrade():
    op.execute("DROP TABLE orders")
