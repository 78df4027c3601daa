# Copyright (c) safedeploy.migrations contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Lower-case every customer email: IRREVERSIBLE (test revision, `alembic -n irreversible`).

The original spelling of each address is overwritten and recorded nowhere, so no downgrade can bring it back:
downgrade() raises NotImplementedError. Rolling back past this revision means restoring the backup taken before
it. (Two addresses that differ only in case make the upgrade fail on uq_customers_email, as it should.)

Revision ID: 0106_lowercase_emails
Revises: 0004_drop_customer_legacy_code
"""

from __future__ import annotations

from alembic import op

revision = "0106_lowercase_emails"
down_revision = "0004_drop_customer_legacy_code"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE customers SET email = lower(email) WHERE email <> lower(email)")
    op.create_check_constraint("ck_customers_email_lowercase", "customers", "email = lower(email)")


def downgrade() -> None:
    raise NotImplementedError(
        "revision 0106_lowercase_emails is irreversible: the original spelling of the emails is gone; "
        "restore the backup taken before it"
    )
