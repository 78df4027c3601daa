"""Create accounts."""

from alembic import op

revision = "0001_accounts"
down_revision = None


def upgrade():
    op.execute("CREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL)")


def downgrade():
    op.execute("DROP TABLE accounts")
