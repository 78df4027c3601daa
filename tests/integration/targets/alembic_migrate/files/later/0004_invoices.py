"""Create invoices, a second branch off 0003_status."""

from alembic import op

revision = "0004_invoices"
down_revision = "0003_status"


def upgrade():
    op.execute("CREATE TABLE invoices (id bigint PRIMARY KEY)")


def downgrade():
    op.execute("DROP TABLE invoices")
