"""A revision that fails whatever the rows: a plan to it must stop before anything changes."""

import sqlalchemy as sa
from alembic import op

revision = "0005_fails_on_copy"
down_revision = "0004_backfill"


def upgrade():
    op.get_bind().execute(sa.text("SELECT count(*) FROM orders"))
    op.execute("ALTER TABLE orders ADD COLUMN note text")


def downgrade():
    pass
