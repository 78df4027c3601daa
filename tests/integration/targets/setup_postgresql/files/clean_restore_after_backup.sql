-- What a deploy does after its backup, up to the migration that fails: alembic_migrate's checksum table in the
-- ledger schema, then the migration's schema, type, extension, tables, index, sequence and function, rows changed,
-- public's ACL and comment changed, a large object.
CREATE TABLE safedeploy.revision_checksums (revision text PRIMARY KEY, sha256 text NOT NULL);
INSERT INTO safedeploy.revision_checksums VALUES ('0001_billing', 'e3b0c442');
INSERT INTO safedeploy.deploys (app_version) VALUES ('1.2.0');
CREATE TABLE public.alembic_version (version_num varchar(32) PRIMARY KEY);
INSERT INTO public.alembic_version VALUES ('0001_billing');
CREATE SCHEMA billing;
CREATE EXTENSION citext SCHEMA billing;
CREATE TYPE public.invoice_status AS ENUM ('open', 'paid');
CREATE TABLE billing.invoices (id bigserial PRIMARY KEY, status public.invoice_status, email billing.citext);
CREATE SEQUENCE public.invoice_numbers;
CREATE FUNCTION billing.total() RETURNS numeric LANGUAGE sql AS $$ SELECT sum(total) FROM public.orders $$;
ALTER TABLE customers ADD COLUMN invoice_email text;
CREATE INDEX customers_invoice_email_idx ON customers (invoice_email);
DELETE FROM orders WHERE id <= 100;
GRANT CREATE ON SCHEMA public TO PUBLIC;
COMMENT ON SCHEMA public IS 'billing';
SELECT lo_from_bytea(0, 'invoice 1');
