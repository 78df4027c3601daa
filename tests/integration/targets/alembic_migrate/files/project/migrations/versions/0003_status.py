"""Add accounts.status."""

from alembic import op

revision = "0003_status"
down_revision = "0002_email"


def upgrade():
    op.execute("ALTER TABLE accounts ADD COLUMN status text NOT NULL DEFAULT 'active'")


def downgrade():
    op.execute("ALTER TABLE accounts DROP COLUMN status")
