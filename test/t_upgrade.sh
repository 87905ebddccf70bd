#!/usr/bin/env bash
# t_upgrade: CREATE EXTENSION llm_usage VERSION '1.0' with data, then
# ALTER EXTENSION llm_usage UPDATE, gives the same objects as a fresh
# CREATE EXTENSION of the newest version (schema-only pg_dump, and a catalog
# listing of functions, privileges, policies and extension membership), and
# the data and its behaviour survive the update.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
OLD=llm_usage_upgrade_old
NEW=llm_usage_upgrade_new
fresh_db "$OLD"
fresh_db "$NEW"
latest=$(psql_q -At -d postgres -c "SELECT default_version FROM pg_available_extensions WHERE name = 'llm_usage'")

psql_q -d "$OLD" -o /dev/null <<'SQL'
CREATE EXTENSION llm_usage VERSION '1.0';
SELECT llm_usage.create_tenant('u1', 'pro');
SELECT llm_usage.set_custom_quota('u1', 'api_calls', 2, 'day');
SELECT llm_usage.enforce_quota('u1', 'api_calls', 2);
SELECT llm_usage.track_usage('u1', 'chat', 'gpt-4o', 1000, 100, request_id => 'before-upgrade');
SELECT llm_usage.aggregate_usage_metrics('daily');
SELECT llm_usage.add_provider_key('u1', 'openai', 'sk-admin-upgrade-test-0001');
SQL
echo "1.0 installed with data: $(psql_q -At -d "$OLD" -c "SELECT count(*) FROM llm_usage.usage_events") event(s)"
psql_q -d "$OLD" -c "ALTER EXTENSION llm_usage UPDATE" >/dev/null
psql_q -d "$NEW" -c "CREATE EXTENSION llm_usage" >/dev/null
v_old=$(psql_q -At -d "$OLD" -c "SELECT extversion FROM pg_extension WHERE extname = 'llm_usage'")
v_new=$(psql_q -At -d "$NEW" -c "SELECT extversion FROM pg_extension WHERE extname = 'llm_usage'")
echo "updated: $v_old; fresh: $v_new; control file: $latest"
[[ $v_old == "$v_new" && $v_new == "$latest" ]] || fail "versions differ"

schema() {
    as_user "$PGBIN/pg_dump" -d "$1" --schema-only --no-owner | grep -vE '^(--|SET |SELECT pg_catalog.set_config|\\(un)?restrict )' | sed '/^$/d'
}
schema "$OLD" >"$WORK/schema_old.sql"
schema "$NEW" >"$WORK/schema_new.sql"
if ! diff "$WORK/schema_old.sql" "$WORK/schema_new.sql" >"$WORK/schema.diff"; then
    head -50 "$WORK/schema.diff"; fail "schema of the updated extension differs from a fresh install"
fi
catalog() {
    psql_q -At -d "$1" <<'SQL'
SELECT 'member ' || pg_describe_object(d.classid, d.objid, d.objsubid)
  FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
 WHERE d.refclassid = 'pg_extension'::regclass AND e.extname = 'llm_usage' AND d.deptype = 'e'
UNION ALL
SELECT 'function ' || p.oid::regprocedure || ' ' || coalesce(array_to_string(p.proacl, ','), '') || ' '
       || p.prosecdef || ' ' || coalesce(array_to_string(p.proconfig, ','), '') || ' ' || md5(p.prosrc)
       || ' ' || coalesce(obj_description(p.oid, 'pg_proc'), '')
  FROM pg_proc p WHERE p.pronamespace = 'llm_usage'::regnamespace
UNION ALL
SELECT 'relation ' || c.relname || ' ' || c.relkind::text || ' ' || c.relrowsecurity || ' '
       || coalesce(array_to_string(c.relacl, ','), '') || ' ' || coalesce(obj_description(c.oid, 'pg_class'), '')
  FROM pg_class c WHERE c.relnamespace = 'llm_usage'::regnamespace
UNION ALL
SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' '
       || a.attnotnull || ' ' || coalesce(pg_get_expr(ad.adbin, ad.adrelid), '') || ' ' || a.attidentity::text
       || ' ' || a.attgenerated::text || ' ' || coalesce(col_description(c.oid, a.attnum), '')
  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
 WHERE c.relnamespace = 'llm_usage'::regnamespace
UNION ALL
SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
  FROM pg_constraint WHERE connamespace = 'llm_usage'::regnamespace
UNION ALL
SELECT 'index ' || pg_get_indexdef(indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
 WHERE c.relnamespace = 'llm_usage'::regnamespace
UNION ALL
SELECT 'trigger ' || pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE c.relnamespace = 'llm_usage'::regnamespace AND NOT t.tgisinternal
UNION ALL
SELECT 'policy ' || tablename || ' ' || policyname || ' ' || coalesce(qual, '') || ' ' || coalesce(with_check, '')
  FROM pg_policies WHERE schemaname = 'llm_usage'
UNION ALL
SELECT 'view ' || c.relname || ' ' || pg_get_viewdef(c.oid) FROM pg_class c
 WHERE c.relnamespace = 'llm_usage'::regnamespace AND c.relkind = 'v'
UNION ALL
SELECT 'config ' || c.relname || ' ' || coalesce(x.cond, '')
  FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS x(oid, cond) JOIN pg_class c ON c.oid = x.oid
 WHERE e.extname = 'llm_usage'
ORDER BY 1
SQL
}
catalog "$OLD" >"$WORK/catalog_old.txt"
catalog "$NEW" >"$WORK/catalog_new.txt"
if ! diff "$WORK/catalog_old.txt" "$WORK/catalog_new.txt" >"$WORK/catalog.diff"; then
    head -50 "$WORK/catalog.diff"; fail "catalog of the updated extension differs from a fresh install"
fi
echo "same objects: schema-only dumps identical; catalog listings (members, functions with source and privileges, columns, constraints, indexes, triggers, policies, views, dumped tables: $(wc -l <"$WORK/catalog_new.txt") entries) identical"

# the data survived and behaves
got=$(psql_q -At -d "$OLD" -c "
    SELECT (SELECT allowed FROM llm_usage.enforce_quota('u1', 'api_calls', 1))::text || ',' ||
           llm_usage.track_usage('u1', 'chat', 'gpt-4o', 1, 1, request_id => 'before-upgrade')::text || ',' ||
           (SELECT count(*) FROM llm_usage.usage_events)::text || ',' ||
           (SELECT count(*) FROM llm_usage.provider_keys WHERE is_active)::text || ',' ||
           (llm_usage.check_alerts() >= 0)::text")
echo "after the update: quota still full, request id still deduplicated, events, keys, check_alerts: $got"
[[ $got == "false,1,1,1,true" ]] || fail "expected false,1,1,1,true"
psql_q -d postgres -c "DROP DATABASE $OLD" -c "DROP DATABASE $NEW"
echo "PASS"
