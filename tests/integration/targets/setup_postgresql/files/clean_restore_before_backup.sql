-- The database as a deploy backs it up: the ledger schema, an extension in public, public's owner, ACL and comment
-- changed, a grant to a role, a large object. Roles are the cluster's: made once, kept by a restore.
DO $$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['restore_public_owner', 'restore_reader', 'restore_grantee'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = role_name) THEN
            EXECUTE format('CREATE ROLE %I', role_name);
        END IF;
    END LOOP;
END
$$;
CREATE SCHEMA safedeploy;
CREATE TABLE safedeploy.deploys (id bigserial PRIMARY KEY, app_version text NOT NULL);
INSERT INTO safedeploy.deploys (app_version) VALUES ('1.0.0'), ('1.1.0');
CREATE EXTENSION hstore SCHEMA public;
CREATE TABLE public.settings (name text PRIMARY KEY, pairs public.hstore);
INSERT INTO public.settings VALUES ('mail', 'host => smtp, port => 25');
CREATE FUNCTION public.customer_label(id bigint) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT 'c' || id $$;
ALTER SCHEMA public OWNER TO restore_public_owner;
GRANT USAGE ON SCHEMA public TO restore_reader;
COMMENT ON SCHEMA public IS 'erpmax data';
GRANT SELECT ON customers TO restore_grantee;
SELECT lo_from_bytea(0, 'invoice template');
