#!/usr/bin/env bash
# t_credits_race: prepaid credits under real concurrency (README "Prepaid
# credits"), in shared memory and on the table path (a tenant id over 255
# bytes).
#
#  1. 16 pgbench sessions, 1,600 attempts: enforce_quota(t, 'credits', 0.05,
#     request_id) and, when admitted, track_usage of that request costing
#     0.0025 to 0.045 USD, against a balance of 10 USD: the balance never
#     goes below zero, no admission saw more held than the balance, the
#     admitted calls' total cost is at most the initial balance and none is
#     uncovered, every tracked call is in the ledger exactly once (count and
#     sum checked against usage_events), nothing is left held, the shared
#     mirror equals the table, and the balance was actually used up (calls
#     were denied, less than 16 estimates are left).
#  2. Overshoot: 16 sessions track 20 calls each without an admission on
#     the little that is left: the balance stops at zero, what it could not
#     cover is ledgered as uncovered, and again every call is in the ledger
#     once with deducted + uncovered = tracked.
#  3. The mirror follows grants and deductions committed by 8 sessions
#     racing admissions of 8 others (a rolled-back grant among them).
#     And while 2 sessions commit grants with PREPARE TRANSACTION / COMMIT
#     PREPARED (each makes the shared mirror unknown, to be read again FOR
#     SHARE by the next admission), 8 sessions admit and track: the same
#     invariants hold and the mirror equals the table.
#  4. Differential: one random sequence (fixed seed) of 600 operations --
#     admissions with and without request ids (some repeated), tracked calls
#     (admitted or not, some tracked twice), grants -- run on a tenant in
#     shared memory and on one on the table path gives the same answer to
#     every admission (allowed, quota_limit, used, remaining) and the same
#     ledger.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
DB=llm_usage_credits_race
LONG=$(python3 -c 'print("\u4e2d" * 91)')     # 273 bytes: ids over 255 bytes are counted in the table

fresh_db "$DB"
q() { psql_q -At -d "$DB" -c "$1"; }
psql_q -d "$DB" -o /dev/null <<SQL
CREATE EXTENSION llm_usage;
SELECT llm_usage.set_model_price('openai', 'race-model', 2.5, 10);
SELECT llm_usage.create_tenant(t, 'enterprise') FROM unnest(ARRAY['c_shm', 'x_$LONG', 'm_shm', 'y_$LONG']) t;
SELECT llm_usage.set_prepaid_billing(t, true, 1) FROM unnest(ARRAY['c_shm', 'x_$LONG', 'm_shm', 'y_$LONG']) t;
SELECT llm_usage.grant_credits(t, 10, 'race') FROM unnest(ARRAY['c_shm', 'x_$LONG']) t;
CREATE TABLE admissions (tenant text, allowed boolean, quota_limit numeric, used numeric);
SQL

run_pgbench() {     # run_pgbench NAME CLIENTS TRANSACTIONS SCRIPT
    local script
    script=$(mktemp "$WORK/pgbench.XXXXXX.sql")
    printf '%s\n' "$4" >"$script"
    chown "$TEST_USER" "$script"
    as_user "$PGBIN/pgbench" -n -c "$2" -j 4 -t "$3" -f "$script" "$DB" >"$WORK/pgbench_$1.log" 2>&1 \
        || { cat "$WORK/pgbench_$1.log"; fail "pgbench $1 failed"; }
}

ledger_check() {    # ledger_check TENANT PATH WHAT: every tracked call once, deducted + uncovered = tracked
    local t=$1 r
    r=$(q "SELECT (SELECT count(*) FROM llm_usage.usage_events e WHERE e.tenant_id = '$t' AND e.cost_usd > 0)
                  || '|' || (SELECT count(*) FROM llm_usage.credit_ledger l WHERE l.tenant_id = '$t' AND l.kind = 'tracked_call')
                  || '|' || (SELECT count(DISTINCT l.event_id) FROM llm_usage.credit_ledger l WHERE l.tenant_id = '$t' AND l.kind = 'tracked_call')
                  || '|' || (SELECT coalesce(sum(e.cost_usd), 0) FROM llm_usage.usage_events e WHERE e.tenant_id = '$t')
                  || '|' || (SELECT coalesce(sum(l.uncovered - l.delta), 0) FROM llm_usage.credit_ledger l WHERE l.tenant_id = '$t' AND l.kind = 'tracked_call')
                  || '|' || (SELECT count(*) FROM llm_usage.usage_events e
                              WHERE e.tenant_id = '$t' AND e.cost_usd > 0
                                AND (SELECT count(*) FROM llm_usage.credit_ledger l WHERE l.tenant_id = '$t' AND l.event_id = e.event_id) <> 1)")
    IFS='|' read -r calls entries distinct tracked charged odd <<<"$r"
    echo "$2, $3: priced calls $calls, ledger entries $entries ($distinct events), tracked $tracked USD, deducted + uncovered $charged USD, calls not in the ledger exactly once: $odd"
    [[ $calls == "$entries" && $entries == "$distinct" && $odd == 0 ]] || fail "$2: the ledger does not hold every tracked call exactly once"
    [[ $(q "SELECT $tracked = $charged") == t ]] || fail "$2: deducted + uncovered ($charged) differs from the tracked cost ($tracked)"
}

mirror_check() {    # mirror_check TENANT PATH
    local r
    r=$(q "SELECT coalesce((SELECT (balance = floor(llm_usage.credit_balance('$1') * 1000000) / 1000000)::text FROM llm_usage._shm_credits('$1') WHERE known), 'none')
                  || '|' || (SELECT coalesce((SELECT held FROM llm_usage._shm_credits('$1')), 0)
                                  + coalesce((SELECT sum(amount) FROM llm_usage.credit_holds WHERE tenant_id = '$1'), 0))")
    echo "$2: shared mirror equals the table (in millionths, rounded down): ${r%|*}; held after every call was tracked: ${r#*|}"
    if [[ $2 == shm ]]; then
        [[ ${r%|*} == true ]] || fail "shm: the mirrored balance differs from credit_balances"
    else
        [[ ${r%|*} == none ]] || fail "table: the tenant was counted in shared memory"
    fi
    [[ ${r#*|} == 0 ]] || fail "$2: ${r#*|} USD still held"
}

for path in shm table; do
    if [[ $path == shm ]]; then t=c_shm; else t="x_$LONG"; fi
    # 1. admitted calls never take the balance below zero
    run_pgbench "race_$path" 16 100 "\\set r random(1, 9000000000000000)
\\set i random(1000, 10000)
\\set o random(0, 2000)
INSERT INTO admissions SELECT '$t', allowed, quota_limit, used FROM llm_usage.enforce_quota('$t', 'credits', 0.05, 'r' || :client_id || '-' || :r) RETURNING allowed \\gset
\\if :allowed
SELECT llm_usage.track_usage('$t', 'chat', 'race-model', :i, :o, request_id => 'r' || :client_id || '-' || :r);
\\endif"
    r=$(q "SELECT count(*) FILTER (WHERE allowed) || '|' || count(*) FILTER (WHERE NOT allowed)
                  || '|' || coalesce(bool_and(used <= quota_limit) FILTER (WHERE allowed), false)
                  || '|' || llm_usage.credit_balance('$t')
                  || '|' || (SELECT coalesce(sum(cost_usd), 0) FROM llm_usage.usage_events WHERE tenant_id = '$t')
                  || '|' || (SELECT coalesce(sum(uncovered), 0) FROM llm_usage.credit_ledger WHERE tenant_id = '$t')
                  || '|' || (SELECT coalesce(min(balance_after), 0) FROM llm_usage.credit_ledger WHERE tenant_id = '$t')
             FROM admissions WHERE tenant = '$t'")
    IFS='|' read -r admitted denied within balance spent uncovered lowest <<<"$r"
    echo "$path, 16 sessions x 100 attempts, estimate 0.05, balance 10: admitted $admitted, denied $denied, every admission within the balance: $within; spent $spent USD, uncovered $uncovered, balance now $balance (lowest $lowest)"
    [[ $within == true ]] || fail "$path: an admission saw more held than the balance"
    [[ $(q "SELECT $spent <= 10 AND $uncovered = 0 AND $balance >= 0 AND $lowest >= 0 AND $balance = 10 - $spent") == t ]] \
        || fail "$path: admitted calls spent $spent of 10 (uncovered $uncovered, balance $balance): expected at most 10, none uncovered, balance = 10 - spent >= 0"
    [[ $denied -gt 0 && $(q "SELECT $balance < 16 * 0.05") == t ]] \
        || fail "$path: the balance was not used up ($denied denied, $balance left): the race did not reach the limit"
    ledger_check "$t" "$path" "admitted calls"
    mirror_check "$t" "$path"

    # 2. overshoot without admission: the balance stops at zero, the rest is uncovered
    run_pgbench "overshoot_$path" 16 20 "\\set i random(1000, 10000)
SELECT llm_usage.track_usage('$t', 'chat', 'race-model', :i, 100);"
    r=$(q "SELECT llm_usage.credit_balance('$t') || '|' || (SELECT sum(uncovered) FROM llm_usage.credit_ledger WHERE tenant_id = '$t')
                  || '|' || (SELECT min(balance_after) FROM llm_usage.credit_ledger WHERE tenant_id = '$t')")
    IFS='|' read -r balance uncovered lowest <<<"$r"
    echo "$path, 320 calls tracked without admission on what was left: balance $balance (lowest $lowest), uncovered $uncovered USD"
    [[ $(q "SELECT $balance = 0 AND $lowest >= 0 AND $uncovered > 0") == t ]] || fail "$path: expected balance 0, never below, some uncovered"
    ledger_check "$t" "$path" "after overshoot"
    mirror_check "$t" "$path"
    [[ $(q "SELECT count(*) FROM llm_usage.alerts WHERE tenant_id = '$t' AND kind = 'credits_exhausted'") == 1 ]] \
        || fail "$path: expected one credits_exhausted alert"
    [[ $(q "SELECT count(*) FROM llm_usage.alerts WHERE tenant_id = '$t' AND kind = 'credits_low'") == 1 ]] \
        || fail "$path: expected one credits_low alert"
done

# 3. the mirror follows committed grants and deductions made while others are admitted
for path in shm table; do
    if [[ $path == shm ]]; then t=m_shm; else t="y_$LONG"; fi
    q "SELECT llm_usage.grant_credits('$t', 1000, 'start')" >/dev/null
    q "SELECT allowed FROM llm_usage.enforce_quota('$t', 'credits', 1, 'warm')" >/dev/null      # loads the mirror
    q "SELECT llm_usage.track_usage('$t', 'chat', 'race-model', 10, 0, request_id => 'warm')" >/dev/null
    script=$(mktemp "$WORK/pgbench.XXXXXX.sql"); printf '%s\n' "\\set a random(1, 100)
SELECT llm_usage.grant_credits('$t', :a * 0.01, 'g');
BEGIN;
SELECT llm_usage.grant_credits('$t', 1000, 'rolled back');
ROLLBACK;
SELECT llm_usage.deduct_credits('$t', :a * 0.005, 'd');" >"$script"; chown "$TEST_USER" "$script"
    script2=$(mktemp "$WORK/pgbench.XXXXXX.sql"); printf '%s\n' "\\set r random(1, 9000000000000000)
SELECT allowed FROM llm_usage.enforce_quota('$t', 'credits', 0.01, 'm' || :client_id || '-' || :r) \\gset
\\if :allowed
SELECT llm_usage.track_usage('$t', 'chat', 'race-model', 1000, 100, request_id => 'm' || :client_id || '-' || :r);
\\endif" >"$script2"; chown "$TEST_USER" "$script2"
    as_user "$PGBIN/pgbench" -n -c 8 -j 2 -t 100 -f "$script" "$DB" >"$WORK/pgbench_grants.log" 2>&1 &
    g=$!
    as_user "$PGBIN/pgbench" -n -c 8 -j 2 -t 100 -f "$script2" "$DB" >"$WORK/pgbench_admits.log" 2>&1 \
        || { cat "$WORK/pgbench_admits.log"; fail "pgbench admissions failed"; }
    wait $g || { cat "$WORK/pgbench_grants.log"; fail "pgbench grants failed"; }
    r=$(q "SELECT llm_usage.credit_balance('$t') || '|' || (SELECT count(*) FROM llm_usage.credit_ledger WHERE tenant_id = '$t' AND kind IN ('grant', 'manual'))
                  || '|' || (SELECT sum(delta) FROM llm_usage.credit_ledger WHERE tenant_id = '$t')")
    IFS='|' read -r balance changes net <<<"$r"
    echo "$path, 8 sessions granting and deducting (800 of each, 800 grants rolled back) while 8 admit and track: balance $balance = ledger net $net"
    [[ $(q "SELECT $balance = $net") == t && $changes == 1601 ]] || fail "$path: balance $balance, ledger net $net, $changes manual changes (expected 1601)"
    ledger_check "$t" "$path" "with concurrent grants"
    mirror_check "$t" "$path"
done
# 3b. the mirror read again under load: prepared grants (each makes the
#     mirror unknown until read again FOR SHARE) while 8 sessions admit and track
q "SELECT llm_usage.create_tenant('p_shm', 'enterprise')" >/dev/null
q "SELECT llm_usage.set_prepaid_billing('p_shm', true)" >/dev/null
q "SELECT llm_usage.grant_credits('p_shm', 3, 'start')" >/dev/null
script=$(mktemp "$WORK/pgbench.XXXXXX.sql"); printf '%s\n' "\\set r random(1, 9000000000000000)
BEGIN;
SELECT llm_usage.grant_credits('p_shm', 0.01, 'prepared');
PREPARE TRANSACTION 'pq-:client_id-:r';
COMMIT PREPARED 'pq-:client_id-:r';" >"$script"; chown "$TEST_USER" "$script"
script2=$(mktemp "$WORK/pgbench.XXXXXX.sql"); printf '%s\n' "\\set r random(1, 9000000000000000)
\\set i random(1000, 10000)
INSERT INTO admissions SELECT 'p_shm', allowed, quota_limit, used FROM llm_usage.enforce_quota('p_shm', 'credits', 0.05, 'p' || :client_id || '-' || :r) RETURNING allowed \\gset
\\if :allowed
SELECT llm_usage.track_usage('p_shm', 'chat', 'race-model', :i, 2000, request_id => 'p' || :client_id || '-' || :r);
\\endif" >"$script2"; chown "$TEST_USER" "$script2"
as_user "$PGBIN/pgbench" -n -c 2 -j 1 -t 100 -f "$script" "$DB" >"$WORK/pgbench_prepared.log" 2>&1 &
g=$!
as_user "$PGBIN/pgbench" -n -c 8 -j 2 -t 100 -f "$script2" "$DB" >"$WORK/pgbench_admits2.log" 2>&1 \
    || { cat "$WORK/pgbench_admits2.log"; fail "pgbench admissions (prepared grants) failed"; }
wait $g || { cat "$WORK/pgbench_prepared.log"; fail "pgbench prepared grants failed"; }
r=$(q "SELECT count(*) FILTER (WHERE allowed) || '|' || count(*) FILTER (WHERE NOT allowed) || '|' || llm_usage.credit_balance('p_shm')
              || '|' || (SELECT coalesce(sum(cost_usd), 0) FROM llm_usage.usage_events WHERE tenant_id = 'p_shm')
              || '|' || (SELECT coalesce(sum(uncovered), 0) FROM llm_usage.credit_ledger WHERE tenant_id = 'p_shm')
         FROM admissions WHERE tenant = 'p_shm'")
IFS='|' read -r admitted denied balance spent uncovered <<<"$r"
echo "shm, 200 prepared grants of 0.01 (each makes the mirror read again) while 8 sessions admit 0.05 and track: admitted $admitted, denied $denied, spent $spent of 3 + 2 granted, uncovered $uncovered, balance $balance"
[[ $(q "SELECT $spent <= 5 AND $uncovered = 0 AND $balance = 5 - $spent AND $denied > 0") == t ]] \
    || fail "shm: with the mirror read again under load, admitted calls spent $spent of 5 (uncovered $uncovered, balance $balance, $denied denied)"
ledger_check p_shm shm "prepared grants"
# the last prepared grant may have left the mirror unknown: the next admission reads it again
q "SELECT allowed FROM llm_usage.enforce_quota('p_shm', 'credits', 0)" >/dev/null
mirror_check p_shm shm

# 4. the two paths agree, call by call
q "SELECT llm_usage.create_tenant(t, 'enterprise') FROM unnest(ARRAY['d_shm', 'z_$LONG']) t" >/dev/null
q "SELECT llm_usage.set_prepaid_billing(t, true) FROM unnest(ARRAY['d_shm', 'z_$LONG']) t" >/dev/null
q "CREATE TABLE diff (i int, path text, allowed boolean, quota_limit numeric, used numeric, remaining numeric)" >/dev/null
python3 - "$LONG" >"$WORK/credits_diff.sql" <<'PY'
import random, sys
long = sys.argv[1]
rnd = random.Random(20261126)
tenants = [('shm', 'd_shm'), ('table', 'z_' + long)]
out = ["\\set ON_ERROR_STOP 1", "SET client_min_messages = warning;"]
for t in tenants:
    out.append(f"SELECT llm_usage.grant_credits('{t[1]}', 2, 'start');")
for i in range(600):
    op = rnd.random()
    rid = f"d{rnd.randint(1, 120)}"
    x = round(rnd.uniform(0, 0.2), 6)
    for path, t in tenants:
        if op < 0.45:
            out.append(f"INSERT INTO diff SELECT {i}, '{path}', allowed, quota_limit, used, remaining "
                       f"FROM llm_usage.enforce_quota('{t}', 'credits', {x}, '{rid}');")
        elif op < 0.55:
            out.append(f"INSERT INTO diff SELECT {i}, '{path}', allowed, quota_limit, used, remaining "
                       f"FROM llm_usage.enforce_quota('{t}', 'credits', {x});")
        elif op < 0.95:
            out.append(f"SELECT llm_usage.track_usage('{t}', 'chat', 'race-model', {2 * (i * 37 % 9000)}, {i * 11 % 3000}, "
                       f"request_id => '{rid}');")
        else:
            out.append(f"SELECT llm_usage.grant_credits('{t}', {round(x * 5, 6)}, 'top-up');")
print("\n".join(out))
PY
chown "$TEST_USER" "$WORK/credits_diff.sql"
psql_q -d "$DB" -o /dev/null -f "$WORK/credits_diff.sql"
r=$(q "SELECT count(*) || '|' || count(*) FILTER (WHERE a.allowed) || '|' || count(*) FILTER (WHERE NOT a.allowed)
              || '|' || count(*) FILTER (WHERE (a.allowed, a.quota_limit, a.used, a.remaining) IS DISTINCT FROM (b.allowed, b.quota_limit, b.used, b.remaining))
         FROM diff a JOIN diff b ON a.i = b.i AND a.path = 'shm' AND b.path = 'table'")
IFS='|' read -r pairs yes no mismatches <<<"$r"
ledger=$(q "SELECT count(*) FROM (SELECT kind, delta, uncovered, balance_after, request_id, row_number() OVER (ORDER BY entry_id) n
                                    FROM llm_usage.credit_ledger WHERE tenant_id = 'd_shm') a
                 FULL JOIN (SELECT kind, delta, uncovered, balance_after, request_id, row_number() OVER (ORDER BY entry_id) n
                              FROM llm_usage.credit_ledger WHERE tenant_id = 'z_$LONG') b USING (n)
             WHERE (a.kind, a.delta, a.uncovered, a.balance_after, a.request_id) IS DISTINCT FROM (b.kind, b.delta, b.uncovered, b.balance_after, b.request_id)")
entries=$(q "SELECT count(*) FROM llm_usage.credit_ledger WHERE tenant_id = 'd_shm'")
echo "differential, 600 operations (seed 20261126): $pairs admissions compared ($yes allowed, $no denied), $mismatches differing; $entries ledger entries each, $ledger differing"
[[ $mismatches == 0 && $ledger == 0 ]] || {
    q "SELECT a.i, a.allowed, a.quota_limit, a.used, a.remaining, '|', b.allowed, b.quota_limit, b.used, b.remaining
         FROM diff a JOIN diff b ON a.i = b.i AND a.path = 'shm' AND b.path = 'table'
        WHERE (a.allowed, a.quota_limit, a.used, a.remaining) IS DISTINCT FROM (b.allowed, b.quota_limit, b.used, b.remaining) ORDER BY a.i LIMIT 5"
    fail "differential: the shared-memory and table paths differ"; }
[[ $pairs -gt 250 && $yes -gt 20 && $no -gt 20 ]] || fail "differential: too few admissions of each kind to compare"
psql_q -d postgres -c "DROP DATABASE $DB" >/dev/null
echo "PASS"
