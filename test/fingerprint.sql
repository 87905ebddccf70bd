-- one line per llm_usage table: name=rows:md5 of its rows in sorted order.
-- Shipped rows (plans, prices) are recreated by CREATE EXTENSION with a new
-- created_at, so only their number counts.
SELECT format('SELECT %L || ''='' || count(*) || '':'' || md5(coalesce(string_agg(t::text, ''|'' ORDER BY t::text) %s, '''')) FROM llm_usage.%I t',
              c.relname,
              CASE WHEN EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'is_shipped')
                   THEN 'FILTER (WHERE NOT t.is_shipped)' ELSE '' END,
              c.relname)
  FROM pg_class c
 WHERE c.relnamespace = 'llm_usage'::regnamespace AND c.relkind = 'r'
 ORDER BY c.relname
\gexec
