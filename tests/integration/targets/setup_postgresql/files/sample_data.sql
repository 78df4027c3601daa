-- A few tables with thousands of rows, constraints, an index and a sequence.
CREATE TABLE customers (id bigserial PRIMARY KEY, name text NOT NULL, email text UNIQUE, created_at timestamptz);
CREATE TABLE orders (
    id bigserial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers (id),
    total numeric(12, 2) NOT NULL,
    note text
);
CREATE INDEX orders_customer_idx ON orders (customer_id);
CREATE TABLE audit_log (at timestamptz NOT NULL, payload jsonb);
INSERT INTO customers (name, email, created_at)
SELECT 'customer ' || i, 'c' || i || '@example.com', timestamptz '2026-01-01' + i * interval '1 minute'
FROM generate_series(1, 5000) AS i;
INSERT INTO orders (customer_id, total, note)
SELECT 1 + (i % 5000), (i % 997) * 1.25, md5(i::text) FROM generate_series(1, 20000) AS i;
INSERT INTO audit_log SELECT timestamptz '2026-01-01' + i * interval '1 second', jsonb_build_object('i', i)
FROM generate_series(1, 3000) AS i;
