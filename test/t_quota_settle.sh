#!/usr/bin/env bash
# t_quota_settle: reserve, then settle (README "Reserve, then settle"), on
# the shared-memory counters and on the table path (a tenant id over 255
# bytes), with real concurrent sessions.
#
#  1. 16 pgbench sessions, 1,600 attempts: enforce_quota(t, 'tokens', 100,
#     request_id) then, when admitted, track_usage of that request with 100
#     tokens: exactly limit / 100 admitted, the counter equals the tracked
#     sum, no reservation left open.
#  2. The same with what the calls really used drawn from 50..150 tokens:
#     no admission ever saw the period over its limit (used after each
#     admission <= limit), and once every call is tracked the counter equals
#     the sum of the tracked tokens exactly (settlement may pass the limit;
#     quota_status shows used > limit and percentage > 100 then).
#  3. Expiry: with llm_usage.reservation_ttl = 1s, a reservation tracked
#     after it expired stays counted (reserved + used); one tracked in time
#     is released (used only).
#  4. Idempotent settlement: the same request tracked twice settles once.
#  5. Rollback: a tracking transaction (or savepoint) that rolls back
#     settles nothing, its reservation stays open, and tracking the request
#     again settles it; a prepared transaction settles when prepared.
#  6. Calls tracked without a reservation count: api_calls, tokens,
#     cost_usd, chat_messages and embeddings (by event type mapping).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
DB=llm_usage_settle
LONG=$(python3 -c 'print("\u4e2d" * 91)')     # 273 bytes: ids over 255 bytes are counted in the table

fresh_db "$DB"
q() { psql_q -At -d "$DB" -c "$1"; }
psql_q -d "$DB" -o /dev/null <<SQL
CREATE EXTENSION llm_usage;
SELECT llm_usage.create_plan('settle');
SELECT llm_usage.set_plan_quota('settle', 'tokens', 50000, 'day');
SELECT llm_usage.set_plan_quota('settle', 'tokens', NULL, 'month');
SELECT llm_usage.set_plan_quota('settle', 'api_calls', NULL, 'day');
SELECT llm_usage.set_plan_quota('settle', 'cost_usd', NULL, 'day');
SELECT llm_usage.set_plan_quota('settle', 'chat_messages', NULL, 'day');
SELECT llm_usage.set_plan_quota('settle', 'embeddings', NULL, 'day');
-- a zone at least two hours from midnight, so the day cannot end mid-test
SELECT llm_usage.create_tenant(t, 'settle',
           CASE WHEN extract(hour FROM now() AT TIME ZONE 'UTC') BETWEEN 2 AND 21 THEN 'UTC' ELSE 'Asia/Tokyo' END)
  FROM unnest(ARRAY['s_exact', 's_var', 's_misc', 'x_exact_$LONG', 'x_var_$LONG', 'x_misc_$LONG']) t;
CREATE TABLE admissions (tenant text, allowed boolean, used numeric);
SQL
[[ $(q "SELECT count(*) FROM llm_usage._quota_counters() WHERE tenant_id LIKE 'x\_%'") -eq 0 ]] || true

used_of() { q "SELECT used FROM llm_usage.quota_status('$1') WHERE quota_type = '${2:-tokens}' AND period = '${3:-day}'"; }
tracked_of() { q "SELECT coalesce(sum(total_tokens), 0) FROM llm_usage.usage_events WHERE tenant_id = '$1'"; }

run_bench() {       # run_bench TENANT ACTUAL-EXPRESSION
    local t=$1 actual=$2 script
    script=$(mktemp "$WORK/pgbench.XXXXXX.sql")
    cat >"$script" <<SCRIPT
\\set r random(1, 9000000000000000)
\\set a $actual
INSERT INTO admissions SELECT '$t', allowed, used FROM llm_usage.enforce_quota('$t', 'tokens', 100, 'r' || :client_id || '-' || :r) RETURNING allowed \\gset
\\if :allowed
SELECT llm_usage.track_usage('$t', 'chat', 'gpt-4o', :a - 10, 10, request_id => 'r' || :client_id || '-' || :r);
\\endif
SCRIPT
    chown "$TEST_USER" "$script"
    as_user "$PGBIN/pgbench" -n -c 16 -j 4 -t 100 -f "$script" "$DB" >"$WORK/pgbench_settle.log" 2>&1 \
        || { cat "$WORK/pgbench_settle.log"; fail "pgbench failed"; }
}

for path in shm table; do
    if [[ $path == shm ]]; then P=s; S=""; else P=x; S="_$LONG"; fi
    # 1. reserved = used
    run_bench "${P}_exact$S" 100
    got=$(q "SELECT count(*) FILTER (WHERE allowed), max(used) FILTER (WHERE allowed) FROM admissions WHERE tenant = '${P}_exact$S'")
    used=$(used_of "${P}_exact$S"); tracked=$(tracked_of "${P}_exact$S")
    open=$(q "SELECT count(*) FROM llm_usage.quota_reservations WHERE tenant_id = '${P}_exact$S'")
    echo "$path, reserve 100 = use 100, 16 sessions x 100 attempts, limit 50,000: admitted|max used seen = $got; counter $used, tracked $tracked, open table reservations $open"
    [[ $got == "500|50000" ]] || fail "$path: expected exactly 500 admissions, the last seeing 50,000 (got $got)"
    [[ $used == 50000 && $tracked == 50000 && $open == 0 ]] || fail "$path: counter $used / tracked $tracked / open $open, expected 50000 / 50000 / 0"

    # 2. use drawn from 50..150
    run_bench "${P}_var$S" "random(50, 150)"
    got=$(q "SELECT count(*) FILTER (WHERE allowed), max(used) FILTER (WHERE allowed) <= 50000 FROM admissions WHERE tenant = '${P}_var$S'")
    used=$(used_of "${P}_var$S"); tracked=$(tracked_of "${P}_var$S")
    echo "$path, reserve 100, use 50..150: admitted|every admission within the limit = $got; counter $used, tracked sum $tracked"
    [[ ${got#*|} == t ]] || fail "$path: an admission saw more than the limit"
    [[ $used == "$tracked" ]] || fail "$path: counter $used differs from the tracked sum $tracked"
done
echo "quota_status after settlement (shared memory): $(q "SELECT used || ' of ' || quota_limit || ', ' || percentage || ' %' FROM llm_usage.quota_status('s_var') WHERE quota_type = 'tokens' AND period = 'day'")"
[[ $(q "SELECT count(*) FROM llm_usage._quota_counters() WHERE tenant_id LIKE 's\_%' AND tenant_id IN (SELECT tenant_id FROM llm_usage.quota_counters_table)") -eq 0 ]] \
    || fail "the shared-memory tenants were counted in the table"
[[ $(q "SELECT count(*) FROM llm_usage.quota_counters_table WHERE tenant_id LIKE 'x\_exact%' AND used = 50000 AND quota_type = 'tokens' AND period = 'day'") -eq 1 ]] \
    || fail "the table-path tenant was not counted in the table"

# 3.-6. on both paths
psql_q -d "$DB" -o /dev/null -c "ALTER SYSTEM SET llm_usage.reservation_ttl = '1s'" -c "SELECT pg_reload_conf()"
sleep 1
for t in s_misc "x_misc_$LONG"; do
    path=$([[ $t == s_misc ]] && echo shm || echo table)
    u0=$(used_of "$t")
    q "SELECT allowed FROM llm_usage.enforce_quota('$t', 'tokens', 500, 'exp-late')" >/dev/null
    q "SELECT allowed FROM llm_usage.enforce_quota('$t', 'tokens', 500, 'exp-in-time')" >/dev/null
    q "SELECT llm_usage.track_usage('$t', 'chat', 'gpt-4o', 200, 100, request_id => 'exp-in-time')" >/dev/null
    sleep 1.5
    q "SELECT llm_usage.track_usage('$t', 'chat', 'gpt-4o', 200, 100, request_id => 'exp-late')" >/dev/null
    u1=$(used_of "$t")
    echo "$path, ttl 1s: reserve 500 and track 300 in time, reserve 500 and track 300 after expiry: used $u0 -> $u1"
    [[ $((u1 - u0)) -eq 1100 ]] || fail "$path: expected +1100 (300 settled, 500 expired and counted + 300), got $((u1 - u0))"
done
psql_q -d "$DB" -o /dev/null -c "ALTER SYSTEM RESET llm_usage.reservation_ttl" -c "SELECT pg_reload_conf()"
sleep 1
for t in s_misc "x_misc_$LONG"; do
    path=$([[ $t == s_misc ]] && echo shm || echo table)
    u0=$(used_of "$t")
    # 4. the same request tracked twice settles once
    q "SELECT allowed FROM llm_usage.enforce_quota('$t', 'tokens', 400, 'twice')" >/dev/null
    q "SELECT llm_usage.track_usage('$t', 'chat', 'gpt-4o', 100, 50, request_id => 'twice')" >/dev/null
    q "SELECT llm_usage.track_usage('$t', 'chat', 'gpt-4o', 100, 50, request_id => 'twice')" >/dev/null
    u1=$(used_of "$t")
    echo "$path, reserve 400, the request tracked twice with 150 tokens: used $u0 -> $u1"
    [[ $((u1 - u0)) -eq 150 ]] || fail "$path: idempotent settlement expected +150, got $((u1 - u0))"
    # 5. rollback of the tracking transaction, then of a savepoint, then the request tracked again
    q "SELECT allowed FROM llm_usage.enforce_quota('$t', 'tokens', 400, 'rb')" >/dev/null
    psql_q -d "$DB" -o /dev/null -c "BEGIN" -c "SELECT llm_usage.track_usage('$t', 'chat', 'gpt-4o', 100, 10, request_id => 'rb')" -c "ROLLBACK"
    u2=$(used_of "$t")
    psql_q -d "$DB" -o /dev/null -c "BEGIN" -c "SAVEPOINT s" -c "SELECT llm_usage.track_usage('$t', 'chat', 'gpt-4o', 100, 10, request_id => 'rb')" \
        -c "ROLLBACK TO SAVEPOINT s" -c "COMMIT"
    u3=$(used_of "$t")
    q "SELECT llm_usage.track_usage('$t', 'chat', 'gpt-4o', 100, 10, request_id => 'rb')" >/dev/null
    u4=$(used_of "$t")
    echo "$path, reserve 400, track 110 rolled back, in a rolled-back savepoint, then committed: used $u1 -> $u2 -> $u3 -> $u4"
    [[ $((u2 - u1)) -eq 400 && $u3 -eq $u2 && $((u4 - u1)) -eq 110 ]] \
        || fail "$path: rollback: expected +400 (reservation open), unchanged, then +110 in all"
    # a prepared transaction settles when prepared
    q "SELECT allowed FROM llm_usage.enforce_quota('$t', 'tokens', 400, 'twopc')" >/dev/null
    psql_q -d "$DB" -o /dev/null -c "BEGIN" -c "SELECT llm_usage.track_usage('$t', 'chat', 'gpt-4o', 40, 10, request_id => 'twopc')" \
        -c "PREPARE TRANSACTION 'settle_$path'"
    q "COMMIT PREPARED 'settle_$path'" >/dev/null
    u5=$(used_of "$t")
    echo "$path, reserve 400, track 50 in a prepared transaction, committed: used $u4 -> $u5"
    [[ $((u5 - u4)) -eq 50 ]] || fail "$path: prepared transaction: expected +50, got $((u5 - u4))"
    # 6. every quota type counts what is tracked, with or without a reservation
    before=$(q "SELECT string_agg(quota_type || '=' || used, ' ' ORDER BY quota_type) FROM llm_usage.quota_status('$t') WHERE period = 'day'")
    q "SELECT llm_usage.track_usage('$t', e, 'gpt-4o', 1000, 500) FROM unnest(ARRAY['chat_message', 'embedding', 'search']) e" >/dev/null
    after=$(q "SELECT string_agg(quota_type || '=' || used, ' ' ORDER BY quota_type) FROM llm_usage.quota_status('$t') WHERE period = 'day'")
    delta=$(q "SELECT string_agg(a.k || '+' || trim_scale(a.v::numeric - b.v::numeric), ' ' ORDER BY a.k)
                 FROM (SELECT split_part(x, '=', 1) k, split_part(x, '=', 2) v FROM unnest(string_to_array('$after', ' ')) x) a
                 JOIN (SELECT split_part(x, '=', 1) k, split_part(x, '=', 2) v FROM unnest(string_to_array('$before', ' ')) x) b USING (k)")
    cost=$(q "SELECT 3 * llm_usage.calculate_cost('gpt-4o', 1000, 500)")
    echo "$path, three calls tracked without a reservation (chat_message, embedding, search; 1,500 tokens each): $delta"
    [[ $delta == "api_calls+3 chat_messages+1 cost_usd+$cost embeddings+1 tokens+4500" ]] \
        || fail "$path: expected api_calls+3 chat_messages+1 cost_usd+$cost embeddings+1 tokens+4500"
done
psql_q -d postgres -c "DROP DATABASE $DB" >/dev/null
echo "PASS"
