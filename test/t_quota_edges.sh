#!/usr/bin/env bash
# t_quota_edges: edge cases of the C fast paths against their SQL twins and
# of what the C code caches.
#  1. enforce_quota() (C fast path) answers every edge case -- NULL
#     arguments, empty, 255-, 256- and 100000-byte tenant ids, amounts 0,
#     tiny, NaN, +-Infinity, negative, at and past the bound, near
#     numeric's largest, unknown or differently cased types, odd
#     request ids -- with the same row or the same error (SQLSTATE and
#     message) as its SQL twin _enforce_quota_sql(), on twin tenants.
#  2. track_usage() writes as its function's current owner: after
#     ALTER FUNCTION ... OWNER TO a role without rights, in the same
#     session, it fails with 42501 (the owner was cached for the session).
#  3. _shm_reclaim(idle) with an idle interval too long for the clock
#     (200000000 days) reclaims nothing in use lately (the arithmetic
#     overflowed and took every such entry for idle).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
DB=llm_usage_edges
q() { psql_q -At -d "$DB" "$@"; }

fresh_db "$DB"
q -o /dev/null <<'SQL'
CREATE EXTENSION llm_usage;
SELECT llm_usage.create_plan('edges');
SELECT llm_usage.set_plan_quota('edges', 'api_calls', 100, 'month');
SELECT llm_usage.create_tenant('zz1', 'edges');
SELECT llm_usage.create_tenant('zz2', 'edges');
SQL

# ------------------------------------------------------------ 1. fast == SQL
out=$(q <<'SQL'
CREATE FUNCTION pg_temp.run(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    EXECUTE sql INTO r;
    RETURN 'row ' || r::text;
EXCEPTION WHEN OTHERS THEN
    RETURN 'error ' || SQLSTATE || ' ' || left(SQLERRM, 160);
END $$;
WITH cases(args) AS (VALUES
    ($$NULL, 'api_calls', 1$$), ($$'@', NULL, 1$$), ($$'@', 'api_calls', NULL$$),
    ($$'', 'api_calls', 1$$), ($$repeat('x', 255), 'api_calls', 1$$), ($$repeat('x', 256), 'api_calls', 1$$),
    ($$repeat('x', 100000), 'api_calls', 1$$),
    ($$'@', 'api_calls', 0$$), ($$'@', 'api_calls', 0.0000001$$), ($$'@', 'api_calls', 'NaN'$$),
    ($$'@', 'api_calls', 'Infinity'$$), ($$'@', 'api_calls', '-Infinity'$$), ($$'@', 'api_calls', -1$$),
    ($$'@', 'api_calls', -0.0000001$$), ($$'@', 'api_calls', 1000000000000$$),
    ($$'@', 'api_calls', 1000000000000.000001$$), ($$'@', 'api_calls', ('9' || repeat('0', 131071))::numeric$$),
    ($$'@', 'API_CALLS', 1$$), ($$'@', 'nonsense', 1$$), ($$'@', 'tokens', 1$$),
    ($$'@', 'api_calls', 1, NULL$$), ($$'@', 'api_calls', 1, ''$$), ($$'@', 'api_calls', 1, '   '$$),
    ($$'@', 'api_calls', 1, repeat('r', 255)$$), ($$'@', 'api_calls', 1, repeat('r', 256)$$),
    ($$'@', 'api_calls', 1, 'req-1'$$), ($$'@', 'api_calls', 1000$$), ($$'@', 'api_calls', 98$$)
), runs AS (
    SELECT args,
           pg_temp.run('SELECT * FROM llm_usage.enforce_quota(' || replace(args, '@', 'zz1') || ')') AS fast,
           replace(pg_temp.run('SELECT * FROM llm_usage._enforce_quota_sql(' || replace(args, '@', 'zz2') || ')'), 'zz2', 'zz1') AS sql
      FROM cases
)
SELECT CASE WHEN fast = sql THEN 'same' ELSE 'DIFFERENT' END || ' | ' || left(args, 60) || ' | ' || fast ||
       CASE WHEN fast = sql THEN '' ELSE ' | sql: ' || sql END
  FROM runs;
SQL
)
echo "$out" | cut -c1-200
n=$(grep -c '^same' <<<"$out" || true)
echo "cases with the same answer from the fast path and the SQL twin: $n of 28"
[[ $n == 28 ]] || fail "enforce_quota and _enforce_quota_sql differ (see DIFFERENT above)"

# ------------------------------------------------------ 2. owner per call
sig="llm_usage.track_usage(text, text, text, bigint, bigint, bigint, integer, integer, text, jsonb, text, timestamptz, bigint, bigint, text)"
out=$(q -v VERBOSITY=verbose 2>&1 <<SQL || true
DROP ROLE IF EXISTS edges_owner;
CREATE ROLE edges_owner NOLOGIN;
SELECT 'first call: ' || (llm_usage.track_usage('zz1', 'chat', 'gpt-4o', 10, 5) > 0);
ALTER FUNCTION $sig OWNER TO edges_owner;
SELECT 'as the new owner: ' || (llm_usage.track_usage('zz1', 'chat', 'gpt-4o', 10, 5) > 0);
SQL
)
q -o /dev/null -c "ALTER FUNCTION $sig OWNER TO $(q -c "SELECT extowner::regrole FROM pg_extension WHERE extname = 'llm_usage'")" -c "DROP ROLE edges_owner"
echo "$out" | grep -E "call:|owner:|ERROR" | cut -c1-120
grep -q "first call: true" <<<"$out" || fail "the first track_usage failed"
grep -q "ERROR:  42501" <<<"$out" || fail "track_usage still wrote as its former owner after ALTER FUNCTION ... OWNER TO"

# ------------------------------------------------- 3. reclaim, long idle
got=$(q <<'SQL'
SELECT llm_usage.create_tenant('gone', 'edges');
SELECT allowed FROM llm_usage.enforce_quota('gone', 'api_calls', 1);
-- deleted without its triggers: no commit-time reclaim, the sweep must find it
SET session_replication_role = replica;
DELETE FROM llm_usage.tenants WHERE tenant_id = 'gone';
RESET session_replication_role;
SELECT 'long idle: ' || llm_usage._shm_reclaim('200000000 days');
SELECT 'max idle: ' || llm_usage._shm_reclaim('106751991 days 4 hours');
SELECT 'no idle: ' || llm_usage._shm_reclaim('0');
SQL
)
echo "$got" | grep idle
grep -q "long idle: 0" <<<"$got" || fail "_shm_reclaim('200000000 days') reclaimed an entry used just now"
grep -q "max idle: 0" <<<"$got" || fail "_shm_reclaim of the longest interval reclaimed an entry used just now"
grep -q "no idle: 1" <<<"$got" || fail "_shm_reclaim('0') did not reclaim the deleted tenant"

psql_q -d postgres -c "DROP DATABASE $DB" >/dev/null
echo "PASS"
