-- One line per table: row count and an order-independent checksum of the rows.
SELECT 'customers', count(*), md5(string_agg(c::text, ',' ORDER BY id)) FROM customers c
UNION ALL SELECT 'orders', count(*), md5(string_agg(o::text, ',' ORDER BY id)) FROM orders o
UNION ALL SELECT 'audit_log', count(*), md5(string_agg(a::text, ',' ORDER BY at)) FROM audit_log a
UNION ALL SELECT 'orders_id_seq', last_value, '' FROM orders_id_seq;
