"""A rule whose check takes longer than a short statement_timeout."""

from alembic import op

revision = "0003_slow_rule"
down_revision = "0002_rules"


def upgrade():
    op.execute("ALTER TABLE customers ADD CONSTRAINT ck_customers_slow CHECK (pg_sleep(0.2) IS NOT NULL)")


def downgrade():
    op.execute("ALTER TABLE customers DROP CONSTRAINT ck_customers_slow")
