#!/usr/bin/env bash
# t_dump_restore: pg_dump keeps every user row exactly once and nothing the
# extension ships twice; the restored database works (sequences continue,
# quotas keep their counts, access grants hold).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
SRC=llm_usage_dump_src
DST=llm_usage_dump_dst

fresh_db "$SRC"
fresh_db "$DST"
psql_q -d "$SRC" -o /dev/null <<'SQL'
CREATE EXTENSION llm_usage;
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dump_app') THEN
        CREATE ROLE dump_app LOGIN IN ROLE llm_usage_app;
    END IF;
END $$;
SELECT llm_usage.create_plan('gold', 'custom plan', copy_from => 'pro');
SELECT llm_usage.set_plan_quota('gold', 'tokens', 777, 'day');
SELECT llm_usage.create_tenant('t1', 'gold', 'Europe/Paris');
SELECT llm_usage.create_tenant('t2', 'trial');
-- 4 a day: 2 consumed below and 1 tracked call counted (reserve, then settle)
SELECT llm_usage.set_custom_quota('t2', 'api_calls', 4, 'day');
-- an admin's event-type mapping is dumped, the shipped ones are recreated
SELECT llm_usage.set_event_type('search', 'embeddings');
SELECT llm_usage.grant_tenant_access('dump_app', 't1');
SELECT llm_usage.set_model_price('custom', 'house-model', 1, 2, valid_from => '2026-01-01');
SELECT llm_usage.set_model_price('openai', 'gpt-4o', 3, 12);
SELECT llm_usage.enforce_quota('t2', 'api_calls', 2);
SELECT llm_usage.track_usage('t1', 'chat', 'gpt-4o', 100, 10, request_id => 'r1', occurred_at => '2026-03-01');
SELECT llm_usage.track_usage('t1', 'chat', 'house-model', 100, 10, request_id => 'r2');
SELECT llm_usage.track_usage('t2', 'chat', 'nobody-knows', 5, 5);
SELECT llm_usage.aggregate_usage_metrics('daily');
SELECT llm_usage.grant_credits('t1', 10, 'welcome', 'g1');
SELECT llm_usage.deduct_credits('t1', 2, 'use', 'd1');
SELECT llm_usage.add_provider_key('t1', 'openai', 'sk-admin-dump-test-key-0001', 'org key');
INSERT INTO llm_usage.provider_costs (tenant_id, key_id, provider, bucket_start, bucket_end, amount_usd)
SELECT 't1', key_id, 'openai', '2026-03-01', '2026-03-02', 0.5 FROM llm_usage.provider_key_store;
SELECT llm_usage.attribute_provider_usage('openai', 'project_id', 'proj_1', 't2');
-- monthly partitions made at run time (ordinary tables pg_dump must carry)
SELECT llm_usage._ensure_partitions(current_date, current_date + 31);
SELECT llm_usage.track_usage('t2', 'chat', 'gpt-4o-mini', 7, 7, occurred_at => '2026-02-10');  -- waits in the default partition
-- the shared-memory quota counters go into the dump through their table
SELECT llm_usage.save_quota_counters();
SQL

as_user "$PGBIN/pg_dump" -d "$SRC" -f "$WORK/dump.sql"
as_user "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$DST" -f "$WORK/dump.sql" >"$WORK/restore.log" 2>&1 \
    || { cat "$WORK/restore.log"; fail "restore failed"; }

# every table, row for row: count and a hash of the sorted rows
fingerprint() { psql_q -At -d "$1" <"$(dirname "$0")/fingerprint.sql" | tr '\n' ' '; }
a=$(fingerprint "$SRC")
b=$(fingerprint "$DST")
echo "$a" | tr ' ' '\n' | sed 's/:.*//' | tr '\n' ' '; echo
[[ "$a" == "$b" ]] || { echo "restored: $b"; fail "tables differ after restore"; }
echo "tables identical after restore ($(wc -w <<<"$a") tables)"

# the restored database keeps working
got=$(psql_q -At -d "$DST" -c "
    SELECT (SELECT allowed FROM llm_usage.enforce_quota('t2', 'api_calls', 1))::text || ',' ||
           (SELECT allowed FROM llm_usage.enforce_quota('t2', 'api_calls', 1))::text || ',' ||
           (llm_usage.track_usage('t1', 'chat', 'gpt-4o', 1, 1) > (SELECT max(event_id) FROM llm_usage.usage_events WHERE request_id IS NOT NULL))::text || ',' ||
           (llm_usage.set_model_price('custom', 'house-model', 5, 5, valid_from => now() + interval '1 day') > 0)::text || ',' ||
           (SELECT count(*) FROM llm_usage.tenant_access WHERE role_name = 'dump_app'::regrole)::text || ',' ||
           llm_usage.credit_balance('t1')::text || ',' ||
           (SELECT count(*) FROM llm_usage.provider_key_store k,
                   LATERAL llm_usage._rewrap_key(k.wrapped_dek, k.master_key_version,
                                                 llm_usage._key_aad(k.key_id, k.tenant_id, k.provider, k.key_version)) w)::text || ',' ||
           (llm_usage.add_provider_key('t2', 'anthropic', 'sk-ant-admin01-dump-test-0002') > 1)::text || ',' ||
           (SELECT count(*) FROM pg_inherits WHERE inhparent = 'llm_usage.usage_events'::regclass)::text || ',' ||
           (SELECT count(*) FROM llm_usage.usage_events_default)::text")
echo "after restore: second-to-last call allowed, last denied, ids continue, prices continue, grant, balance, keys decrypt, key ids continue, partitions, default partition rows = $got"
want="true,false,true,true,1,8,1,true,$(psql_q -At -d "$SRC" -c "SELECT count(*) FROM pg_inherits WHERE inhparent = 'llm_usage.usage_events'::regclass"),1"
[[ $got == "$want" ]] || fail "expected $want"

psql_q -d postgres -c "DROP DATABASE $SRC" -c "DROP DATABASE $DST"
echo "PASS"
