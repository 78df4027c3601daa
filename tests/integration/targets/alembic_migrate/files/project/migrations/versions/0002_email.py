"""Add accounts.email."""

from alembic import op

revision = "0002_email"
down_revision = "0001_accounts"


def upgrade():
    op.execute("ALTER TABLE accounts ADD COLUMN email text")


def downgrade():
    op.execute("ALTER TABLE accounts DROP COLUMN email")
