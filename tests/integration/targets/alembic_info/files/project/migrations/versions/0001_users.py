"""Create users."""

from alembic import op

revision = "0001_users"
down_revision = None


def upgrade():
    op.execute("CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL)")


def downgrade():
    op.execute("DROP TABLE users")
