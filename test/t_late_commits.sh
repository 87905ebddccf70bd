#!/usr/bin/env bash
# t_late_commits: no call is skipped by the roll-ups or check_alerts,
# whenever it commits, and late calls are checked against retention in UTC
# months (as the partitions are cut), whatever the session's time zone.
#   1. a writer under REPEATABLE READ and one under SERIALIZABLE, open while
#      a roll-up runs: their calls are counted by the next run;
#   2. a roll-up under REPEATABLE READ or SERIALIZABLE whose snapshot is
#      older than a call committed before the roll-up's own bound: the
#      watermark stays behind the call, the next run counts it;
#   3. a prepared transaction's call, committed (COMMIT PREPARED) after
#      several roll-ups: counted;
#   4. check_alerts: an unpriced call committed after a check (an open
#      writer, a prepared transaction, a check under REPEATABLE READ) is
#      alerted by the next check;
#   5. retention: with llm_usage.event_retention = 2, a call a minute after
#      the edge (UTC month start two months back) is kept, one a minute
#      before it refused, in sessions at UTC+14 and UTC-8.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
DB=llm_usage_late
fresh_db "$DB"
q() { psql_q -At -d "$DB" "$@"; }
# whatever happens: no prepared transaction left, retention back to the cluster's setting
cleanup() {
    for g in $(psql_q -At -d "$DB" -c "SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'llm_usage_late_%'" 2>/dev/null); do
        psql_q -d "$DB" -c "ROLLBACK PREPARED '$g'" >/dev/null 2>&1 || true
    done
    psql_q -d "$DB" -c "ALTER SYSTEM RESET llm_usage.event_retention" -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
}
trap cleanup EXIT
bg() { as_user "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$DB" "$@"; }
calls() { q -c "SELECT coalesce(sum(api_calls_total), 0) FROM llm_usage.tenant_usage_metrics WHERE tenant_id = '$1' AND period_type = 'daily'"; }
agg() { q -c "SELECT llm_usage.aggregate_usage_metrics('daily')" >/dev/null; }

q -o /dev/null <<'SQL'
CREATE EXTENSION llm_usage;
SELECT llm_usage.create_tenant(t, 'enterprise') FROM unnest(ARRAY['w_rr', 'w_ser', 'a_rr', 'a_ser', 'prep', 'alrt', 'alrt1', 'alrt2', 'alrt3']) t;
SELECT llm_usage.aggregate_usage_metrics('daily');
SQL

# 1. writers under REPEATABLE READ and SERIALIZABLE, open across a roll-up
for lvl in "repeatable read:w_rr" "serializable:w_ser"; do
    iso=${lvl%%:*}; t=${lvl##*:}
    bg -c "BEGIN ISOLATION LEVEL $iso;
           SELECT llm_usage.track_usage('$t', 'chat', 'gpt-4o-mini', 10, 1, occurred_at => '2026-03-01 12:00+00');
           SELECT pg_sleep(3);
           COMMIT;" >/dev/null &
    writer=$!
    sleep 1.5
    agg
    during=$(calls "$t")
    wait "$writer"
    agg
    after=$(calls "$t")
    echo "writer under $iso: counted $during while open, $after after the next run"
    [[ $during == 0 && $after == 1 ]] || fail "a call of a $iso writer was skipped"
done

# 2. roll-ups under REPEATABLE READ and SERIALIZABLE with an older snapshot
for lvl in "repeatable read:a_rr" "serializable:a_ser"; do
    iso=${lvl%%:*}; t=${lvl##*:}
    bg -c "BEGIN ISOLATION LEVEL $iso;
           SELECT count(*) FROM llm_usage.usage_events;   -- the snapshot is taken here
           SELECT pg_sleep(3);
           SELECT llm_usage.aggregate_usage_metrics('daily');
           COMMIT;" >/dev/null &
    agg_pid=$!
    sleep 1
    q -c "SELECT llm_usage.track_usage('$t', 'chat', 'gpt-4o-mini', 10, 1, occurred_at => '2026-03-02 12:00+00')" >/dev/null
    wait "$agg_pid"
    during=$(calls "$t")
    agg
    after=$(calls "$t")
    echo "roll-up under $iso with an older snapshot: counted $during, then $after after the next run"
    [[ $during == 0 && $after == 1 ]] || fail "a call committed during a $iso roll-up was skipped"
done

# 3. a prepared transaction
q -c "BEGIN; SELECT llm_usage.track_usage('prep', 'chat', 'gpt-4o-mini', 10, 1, occurred_at => '2026-03-03 12:00+00'); PREPARE TRANSACTION 'llm_usage_late_1'" >/dev/null
sleep 1
agg; sleep 1; agg
during=$(calls prep)
wm_held=$(q -c "SELECT watermark < (SELECT prepared FROM pg_prepared_xacts WHERE gid = 'llm_usage_late_1') FROM llm_usage.rollup_status WHERE period_type = 'daily'")
q -c "COMMIT PREPARED 'llm_usage_late_1'" >/dev/null
agg
after=$(calls prep)
echo "prepared transaction: counted $during while prepared (watermark held before it: $wm_held), $after after COMMIT PREPARED"
[[ $during == 0 && $wm_held == t && $after == 1 ]] || fail "a prepared transaction's call was skipped"

# 4. check_alerts: unpriced calls committed after a check (a tenant each:
#    unpriced_usage is one alert per tenant, throttled per tenant)
alerts() { q -c "SELECT count(*) FROM llm_usage.alerts WHERE kind = 'unpriced_usage' AND details->'models' @> '[{\"model\": \"$1\"}]'"; }
check() { q -c "SELECT llm_usage.check_alerts()" >/dev/null; }
check
bg -c "BEGIN; SELECT llm_usage.track_usage('alrt1', 'chat', 'late-model-1', 10, 1); SELECT pg_sleep(3); COMMIT;" >/dev/null &
writer=$!
sleep 1.5; check; during=$(alerts late-model-1)
wait "$writer"; check; after=$(alerts late-model-1)
echo "check_alerts, an open writer: $during alert(s) while open, $after after its commit"
[[ $during == 0 && $after == 1 ]] || fail "check_alerts skipped an unpriced call committed late"
q -c "BEGIN; SELECT llm_usage.track_usage('alrt2', 'chat', 'late-model-2', 10, 1); PREPARE TRANSACTION 'llm_usage_late_2'" >/dev/null
sleep 1; check; during=$(alerts late-model-2)
q -c "COMMIT PREPARED 'llm_usage_late_2'" >/dev/null
check; after=$(alerts late-model-2)
echo "check_alerts, a prepared transaction: $during alert(s) while prepared, $after after COMMIT PREPARED"
[[ $during == 0 && $after == 1 ]] || fail "check_alerts skipped a prepared transaction's unpriced call"
bg -c "BEGIN ISOLATION LEVEL REPEATABLE READ;
       SELECT count(*) FROM llm_usage.usage_events;
       SELECT pg_sleep(3);
       SELECT llm_usage.check_alerts();
       COMMIT;" >/dev/null &
checker=$!
sleep 1
q -c "SELECT llm_usage.track_usage('alrt3', 'chat', 'late-model-3', 10, 1)" >/dev/null
wait "$checker"; during=$(alerts late-model-3)
check; after=$(alerts late-model-3)
echo "check_alerts under REPEATABLE READ with an older snapshot: $during alert(s), $after after the next check"
[[ $during == 0 && $after == 1 ]] || fail "a REPEATABLE READ check_alerts skipped an unpriced call"

# 5. retention edge in UTC months, whatever the session's zone
q -c "ALTER SYSTEM SET llm_usage.event_retention = 2" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
edge="date_trunc('month', now(), 'UTC') - interval '2 months'"
q -o /dev/null -c "CREATE FUNCTION try_track(p timestamptz) RETURNS text LANGUAGE plpgsql AS \$\$
    BEGIN PERFORM llm_usage.track_usage('alrt', 'chat', 'gpt-4o-mini', 1, 1, occurred_at => p); RETURN 'kept';
    EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ' ' || SQLERRM; END \$\$"
for zone in Pacific/Kiritimati America/Los_Angeles; do
    inside=$(q -c "SET timezone = '$zone'" -c "SELECT try_track($edge + interval '1 minute')")
    outside=$(q -c "SET timezone = '$zone'" -c "SELECT try_track($edge - interval '1 minute')")
    echo "session at $zone: a minute after the UTC edge: $inside; a minute before: ${outside:0:60}"
    [[ $inside == kept && $outside == 22023* ]] || fail "the retention edge depends on the session's zone ($zone)"
done
q -c "ALTER SYSTEM RESET llm_usage.event_retention" -c "SELECT pg_reload_conf()" >/dev/null
psql_q -d postgres -c "DROP DATABASE $DB" >/dev/null
echo "PASS"
