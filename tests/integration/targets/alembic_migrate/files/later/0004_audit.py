"""Create audit_log, then fail before the revision ends."""

from alembic import op

revision = "0004_audit"
down_revision = "0003_status"


def upgrade():
    op.execute("CREATE TABLE audit_log (id bigint PRIMARY KEY, account_id bigint)")
    raise RuntimeError("audit backfill refused: no source for audit_log")


def downgrade():
    op.execute("DROP TABLE audit_log")
