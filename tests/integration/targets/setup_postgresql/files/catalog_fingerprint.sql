-- What a clean restore must bring back exactly, one line per item: schemas with owner, ACL and comment; relations
-- with kind, owner and ACL; columns; every other object of a user schema; extensions; the count of large objects.
SELECT 'schema', s.nspname::text, concat_ws(' | ', s.nspowner::regrole::text, s.nspacl::text,
       obj_description(s.oid, 'pg_namespace'))
FROM pg_namespace s WHERE s.nspname <> 'information_schema' AND s.nspname NOT LIKE 'pg\_%'
UNION ALL
SELECT 'relation', n.nspname || '.' || c.relname, concat_ws(' | ', c.relkind::text, c.relowner::regrole::text,
       c.relacl::text)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
UNION ALL
SELECT 'column', n.nspname || '.' || c.relname || '.' || a.attname, format_type(a.atttypid, a.atttypmod)
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE a.attnum > 0 AND NOT a.attisdropped AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
UNION ALL
SELECT 'object', pg_describe_object(d.classid, d.objid, d.objsubid), ''
FROM pg_depend d JOIN pg_namespace n ON d.refclassid = 'pg_namespace'::regclass AND n.oid = d.refobjid
WHERE d.deptype = 'n' AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
UNION ALL
SELECT 'extension', e.extname::text, concat_ws(' | ', e.extversion, e.extnamespace::regnamespace::text)
FROM pg_extension e
UNION ALL
SELECT 'large objects', count(*)::text, '' FROM pg_largeobject_metadata
ORDER BY 1, 2, 3;
