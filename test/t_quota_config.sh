#!/usr/bin/env bash
# t_quota_config: enforce_quota() caches each tenant's limits and access in
# every session; a change made in another session (override, plan quota,
# the tenant's plan, access, a price) applies to the very next call of a
# session that has them cached, and so does a tenant created or granted
# after it warmed up.  A change made in the session's own transaction
# applies within it, and not after a rollback.
#
# No reload storm: a session that has 1,000 tenants cached reads again
# only what changed (_session_cache_stats()): one tenant for a change to
# one tenant, override or grant, the plans (one query) for a plan change,
# nothing of the tenants for a price change; never the whole directory; and
# a change to one plan merges again only the tenants on that plan.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
DB=llm_usage_cfg
fresh_db "$DB"
psql_q -d "$DB" -o /dev/null <<'SQL'
CREATE EXTENSION llm_usage;
SELECT llm_usage.create_plan('p10');
SELECT llm_usage.set_plan_quota('p10', 'api_calls', 10, 'day');
SELECT llm_usage.create_plan('p5');
SELECT llm_usage.set_plan_quota('p5', 'api_calls', 5, 'day');
SELECT llm_usage.create_tenant('cfg', 'p10');
CREATE ROLE cfg_app LOGIN IN ROLE llm_usage_app;
SELECT llm_usage.grant_tenant_access('cfg_app', 'cfg');
SELECT llm_usage.set_model_price('openai', 'cfg-model', 1, 2);
SQL

other="$PGBIN/psql -X -q -At -d $DB -c"
script="$WORK/cfg_session.sql"
cat >"$script" <<SQL
\\pset format unaligned
\\pset tuples_only on
\\set VERBOSITY terse
SET ROLE cfg_app;
SELECT 'plan 10: ' || quota_limit FROM llm_usage.enforce_quota('cfg', 'api_calls', 1);
\\! $other "SELECT llm_usage.set_custom_quota('cfg', 'api_calls', 3, 'day')" >/dev/null
SELECT 'override 3: ' || quota_limit FROM llm_usage.enforce_quota('cfg', 'api_calls', 1);
\\! $other "SELECT llm_usage.clear_custom_quota('cfg', 'api_calls', 'day')" >/dev/null
SELECT 'override cleared: ' || quota_limit FROM llm_usage.enforce_quota('cfg', 'api_calls', 1);
\\! $other "SELECT llm_usage.set_plan_quota('p10', 'api_calls', 20, 'day')" >/dev/null
SELECT 'plan quota 20: ' || quota_limit FROM llm_usage.enforce_quota('cfg', 'api_calls', 1);
\\! $other "SELECT llm_usage.update_tenant('cfg', 'p5')" >/dev/null
SELECT 'moved to plan 5: ' || allowed || ' ' || quota_limit FROM llm_usage.enforce_quota('cfg', 'api_calls', 1);
SELECT 'price 1/2: ' || llm_usage.calculate_cost('cfg-model', 1000000, 1000000);
\\! $other "SELECT llm_usage.set_model_price('openai', 'cfg-model', 3, 4)" >/dev/null
SELECT 'price 3/4: ' || llm_usage.calculate_cost('cfg-model', 1000000, 1000000);
\\! $other "SELECT llm_usage.revoke_tenant_access('cfg_app', 'cfg')" >/dev/null
SELECT 'after revoke: ' || allowed FROM llm_usage.enforce_quota('cfg', 'api_calls', 1);
SQL
chown "$TEST_USER" "$script"
out=$(as_user "$PGBIN/psql" -X -q -d "$DB" -f "$script" 2>&1 || true)
echo "$out"
expected="plan 10: 10
override 3: 3
override cleared: 10
plan quota 20: 20
moved to plan 5: true 5
price 1/2: 3
price 3/4: 7
psql:$script:18: ERROR:  permission denied for tenant \"cfg\""
[[ "$out" == "$expected" ]] || fail "a change was not seen by the next call of a session"
# tenants created or granted after the session warmed up, own-transaction changes
script2="$WORK/cfg_session2.sql"
cat >"$script2" <<SQL
\\pset format unaligned
\\pset tuples_only on
\\set VERBOSITY terse
SET ROLE cfg_app;
SELECT 'warm: ' || count(*) FROM llm_usage._quota_configs(NULL, 100);
\\! $other "SELECT llm_usage.create_tenant('cfg_new', 'p10'); SELECT llm_usage.grant_tenant_access('cfg_app', 'cfg_new')" >/dev/null
SELECT 'created and granted later: ' || allowed || ' ' || quota_limit FROM llm_usage.enforce_quota('cfg_new', 'api_calls', 1);
RESET ROLE;
BEGIN;
SELECT llm_usage.set_custom_quota('cfg_new', 'api_calls', 2, 'day') \\g /dev/null
SELECT 'own uncommitted override: ' || quota_limit FROM llm_usage.enforce_quota('cfg_new', 'api_calls', 0);
ROLLBACK;
SELECT 'after rollback: ' || quota_limit FROM llm_usage.enforce_quota('cfg_new', 'api_calls', 0);
SQL
chown "$TEST_USER" "$script2"
out=$(as_user "$PGBIN/psql" -X -q -d "$DB" -f "$script2" 2>&1 || true)
echo "$out"
expected="warm: 0
created and granted later: true 20
own uncommitted override: 2
after rollback: 20"
[[ "$out" == "$expected" ]] || fail "a tenant granted later, or an own change, was not seen right"

# no reload storm: 1,000 tenants cached; each kind of change read alone
psql_q -d "$DB" -o /dev/null <<'SQL'
SELECT llm_usage.create_plan('rs');
SELECT llm_usage.set_plan_quota('rs', 'api_calls', 1000000, 'day');
SELECT llm_usage.create_plan('rs2');
SELECT llm_usage.set_plan_quota('rs2', 'api_calls', 7, 'day');
-- one INSERT, not a create_tenant() call (and its audit event) per tenant
INSERT INTO llm_usage.tenants (tenant_id, plan) SELECT 'rs' || i, 'rs' FROM generate_series(1, 1000) i;
CREATE ROLE cfg_other NOLOGIN;
CREATE TABLE stats (step text, directory_loads bigint, tenant_reads bigint, plan_loads bigint, resets bigint, tenants bigint, merges bigint, limits text);
SQL
script3="$WORK/cfg_session3.sql"
{
    echo '\set QUIET on'
    echo "CREATE TEMP VIEW lim AS SELECT string_agg(e.quota_limit::text, ',' ORDER BY i) AS l FROM generate_series(1, 10) i, LATERAL llm_usage.enforce_quota('rs' || i, 'api_calls', 1) e;"
    echo "SELECT count(*) FROM generate_series(1, 1000) i, LATERAL llm_usage.enforce_quota('rs' || i, 'api_calls', 1) e \g /dev/null"
    step() {    # step NAME SQL: a change in another session, then every tenant once in this one
        echo "\\! $other \"$2\" >/dev/null"
        echo "SELECT count(*) FROM generate_series(1, 1000) i, LATERAL llm_usage.enforce_quota('rs' || i, 'api_calls', 1) e \g /dev/null"
        echo "INSERT INTO stats SELECT '$1', s.*, (SELECT l FROM lim) FROM llm_usage._session_cache_stats() s;"
    }
    echo "INSERT INTO stats SELECT 'warm', s.*, (SELECT l FROM lim) FROM llm_usage._session_cache_stats() s;"
    step tenant_plan "SELECT llm_usage.update_tenant('rs3', 'rs2')"
    step override "SELECT llm_usage.set_custom_quota('rs4', 'api_calls', 5, 'day')"
    step grant "SELECT llm_usage.grant_tenant_access('cfg_other', 'rs5')"
    step price "SELECT llm_usage.set_model_price('openai', 'cfg-model', 5, 6)"
    step plan_quota "SELECT llm_usage.set_plan_quota('rs', 'api_calls', 2000000, 'day')"
    step other_plan "SELECT llm_usage.set_plan_quota('rs2', 'api_calls', 8, 'day')"
    step nothing "SELECT 1"
} >"$script3"
chown "$TEST_USER" "$script3"
as_user "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$DB" -f "$script3" >/dev/null 2>&1 || fail "the cache session failed"
echo "step | directory loads | tenants read | plan loads | resets | tenants cached | quotas merged | limits of rs1..rs10 (after the step)"
psql_q -At -F ' | ' -d "$DB" -c "SELECT step, directory_loads - lag(directory_loads) OVER w, tenant_reads - lag(tenant_reads) OVER w,
                                         plan_loads - lag(plan_loads) OVER w, resets - lag(resets) OVER w, tenants,
                                         merges - lag(merges) OVER w, limits
                                    FROM stats WINDOW w AS (ORDER BY ctid)"
# a tenant read again (its generation slot may be shared by another tenant: at most 2) is merged again
got=$(psql_q -At -d "$DB" -c "
    SELECT string_agg(step || ':' || dl || '/' || (tr <= 2 AND tr >= CASE WHEN step IN ('tenant_plan', 'override', 'grant') THEN 1 ELSE 0 END)
                      || '/' || pl || '/' || rs || '/' || CASE WHEN mg = 999 THEN 'plan' WHEN mg <= tr + 1 THEN 'few' ELSE mg::text END, ' ' ORDER BY n)
      FROM (SELECT ctid AS n, step, directory_loads - lag(directory_loads) OVER w AS dl, tenant_reads - lag(tenant_reads) OVER w AS tr,
                   plan_loads - lag(plan_loads) OVER w AS pl, resets - lag(resets) OVER w AS rs, merges - lag(merges) OVER w AS mg
              FROM stats WINDOW w AS (ORDER BY ctid)) x WHERE step <> 'warm'")
echo "per step (directory loads/read only what changed/plan loads/resets/tenants merged): $got"
[[ $got == "tenant_plan:0/true/0/0/few override:0/true/0/0/few grant:0/true/0/0/few price:0/true/0/0/few plan_quota:0/true/1/0/plan other_plan:0/true/1/0/few nothing:0/true/0/0/few" ]] \
    || fail "a change made the session read or merge more than what changed"
limits=$(psql_q -At -d "$DB" -c "SELECT string_agg(step || '=' || limits, ' ' ORDER BY ctid) FROM stats WHERE step IN ('tenant_plan', 'override', 'plan_quota')")
echo "limits seen: $limits"
[[ $limits == "tenant_plan=1000000,1000000,7,1000000,1000000,1000000,1000000,1000000,1000000,1000000 override=1000000,1000000,7,5,1000000,1000000,1000000,1000000,1000000,1000000 plan_quota=2000000,2000000,7,5,2000000,2000000,2000000,2000000,2000000,2000000" ]] \
    || fail "the changes were not all applied by the next call"

psql_q -d postgres -c "DROP DATABASE $DB" -c "DROP ROLE cfg_app" -c "DROP ROLE cfg_other" >/dev/null
echo "PASS"
