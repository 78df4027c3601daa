"""Rules the rows of 0001 may break: each is a statement that fails on existing rows."""

from alembic import op

revision = "0002_rules"
down_revision = "0001_shop"


def upgrade():
    op.execute("ALTER TABLE orders ALTER COLUMN status SET NOT NULL")
    op.execute("CREATE UNIQUE INDEX ux_customers_email ON customers (lower(email))")
    op.execute("ALTER TABLE orders ADD CONSTRAINT fk_orders_customer FOREIGN KEY (customer_id) REFERENCES customers")
    op.execute("ALTER TABLE orders ADD CONSTRAINT ck_orders_quantity CHECK (quantity > 0)")
    op.execute("ALTER TABLE orders ALTER COLUMN total TYPE integer USING total::integer")
    op.execute("CREATE TABLE tags (id bigint, name text)")
    op.execute("CREATE UNIQUE INDEX ux_tags_name ON tags (name)")


def downgrade():
    op.execute("DROP TABLE tags")
    op.execute("ALTER TABLE orders ALTER COLUMN total TYPE text")
    op.execute("ALTER TABLE orders DROP CONSTRAINT ck_orders_quantity")
    op.execute("ALTER TABLE orders DROP CONSTRAINT fk_orders_customer")
    op.execute("DROP INDEX ux_customers_email")
    op.execute("ALTER TABLE orders ALTER COLUMN status DROP NOT NULL")
