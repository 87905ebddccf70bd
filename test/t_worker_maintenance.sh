#!/usr/bin/env bash
# t_worker_maintenance: every llm_usage.aggregate_interval the worker rolls
# up usage and checks alerts on its own; a failing roll-up raises a
# maintenance_failed alert (tenant '*') and the worker goes on.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/worker_lib.sh"
wq -c "CREATE EXTENSION IF NOT EXISTS llm_usage" -c "ALTER EXTENSION llm_usage UPDATE" >/dev/null 2>&1
wq -c "ALTER SYSTEM SET llm_usage.aggregate_interval = '2s'" -c "SELECT pg_reload_conf()" >/dev/null
for _ in $(seq 1 100); do [[ -n "$(worker_pid)" ]] && break; sleep 0.2; done
pid0=$(worker_pid)

wq -o /dev/null <<'SQL'
SELECT llm_usage.create_tenant('wm', 'enterprise');
SELECT count(llm_usage.track_usage('wm', 'chat', 'gpt-4o-mini', 1000, 100, latency_ms => 7000,
                                   occurred_at => now() - make_interval(mins => i)))
  FROM generate_series(1, 12) i;
SQL
wait_for() {    # wait_for SQL SECONDS: until SQL returns t
    for _ in $(seq 1 $(($2 * 5))); do
        [[ $(wq -c "$1") == t ]] && return 0
        sleep 0.2
    done
    return 1
}
wait_for "SELECT EXISTS (SELECT 1 FROM llm_usage.tenant_usage_metrics WHERE tenant_id = 'wm' AND period_type = 'hourly')" 15 \
    || fail "the worker did not roll up"
wq -c "SELECT period_type, sum(api_calls_total) FROM llm_usage.tenant_usage_metrics WHERE tenant_id = 'wm' GROUP BY 1 ORDER BY 1" | tr '\n' ' '; echo
[[ $(wq -c "SELECT sum(api_calls_total) FROM llm_usage.tenant_usage_metrics WHERE tenant_id = 'wm' AND period_type = 'daily'") == 12 ]] \
    || fail "daily roll-up incomplete"
wait_for "SELECT EXISTS (SELECT 1 FROM llm_usage.alerts WHERE tenant_id = 'wm' AND kind = 'high_latency')" 15 \
    || fail "the worker did not check alerts"
wq -c "SELECT kind, message FROM llm_usage.alerts WHERE tenant_id = 'wm'"

# a roll-up that fails: maintenance_failed, then recovery
wq -o /dev/null <<'SQL'
CREATE FUNCTION public.refuse_rollup() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION 'roll-up refused for this test'; END $$;
CREATE TRIGGER refuse_rollup BEFORE INSERT OR UPDATE ON llm_usage.tenant_usage_metrics
    FOR EACH ROW EXECUTE FUNCTION public.refuse_rollup();
SELECT llm_usage.track_usage('wm', 'chat', 'gpt-4o-mini', 1, 1);
SQL
wait_for "SELECT EXISTS (SELECT 1 FROM llm_usage.alerts WHERE tenant_id = '*' AND kind = 'maintenance_failed')" 15 \
    || fail "no maintenance_failed alert"
wq -c "SELECT tenant_id, kind, severity, message FROM llm_usage.alerts WHERE kind = 'maintenance_failed'"
wq -c "DROP TRIGGER refuse_rollup ON llm_usage.tenant_usage_metrics" -c "DROP FUNCTION public.refuse_rollup()" >/dev/null
wait_for "SELECT sum(api_calls_total) = 13 FROM llm_usage.tenant_usage_metrics WHERE tenant_id = 'wm' AND period_type = 'daily'" 15 \
    || fail "the roll-up did not recover"
[[ $(worker_pid) == "$pid0" ]] || fail "the worker restarted"
echo "roll-up recovered; worker still pid $pid0"
wq -c "ALTER SYSTEM RESET llm_usage.aggregate_interval" -c "SELECT pg_reload_conf()" >/dev/null
echo "PASS"
