#!/usr/bin/env bash
# t_cache_snapshot: the per-session caches (tenant directory and limits,
# prices) never keep what was read under an old snapshot (red-team F2).
#
# An application session in REPEATABLE READ loads its caches (enforce_quota
# and track_usage of two tenants), then, while its transaction is still
# open, another session commits revoke_tenant_access, set_custom_quota and
# set_model_price; the first session calls again inside its old snapshot
# (so a reload there would read stale rows), then ends the transaction.
# Every new transaction of that session must see the three changes: the
# revoked tenant refused, the new limit applied, the new price used.  The
# same with SERIALIZABLE.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
DB=llm_usage_snap
fresh_db "$DB"
q() { psql_q -At -d "$DB" -c "$1"; }
psql_q -d "$DB" -o /dev/null <<'SQL'
CREATE EXTENSION llm_usage;
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'snap_app') THEN
        CREATE ROLE snap_app LOGIN IN ROLE llm_usage_app;
    END IF;
END $$;
SELECT llm_usage.create_plan('snap');
SELECT llm_usage.set_plan_quota('snap', 'tokens', 1000000, 'day');
SQL

run_case() {        # run_case ISOLATION N
    local iso=$1 n=$2 fifo out pid
    local tl="snap_l$n" tr="snap_r$n" model="snap-model-$n"
    psql_q -d "$DB" -o /dev/null \
        -c "SELECT llm_usage.create_tenant(t, 'snap', 'UTC') FROM unnest(ARRAY['$tl', '$tr']) t" \
        -c "SELECT llm_usage.grant_tenant_access('snap_app', t) FROM unnest(ARRAY['$tl', '$tr']) t" \
        -c "SELECT llm_usage.set_model_price('custom', '$model', 1, 1, valid_from => now() - interval '1 day')"
    fifo="$WORK/snap_fifo_$n"; out="$WORK/snap_out_$n"
    rm -f "$fifo"; mkfifo "$fifo"; chown "$TEST_USER" "$fifo"
    as_user "$PGBIN/psql" -X -At -U snap_app -d "$DB" -v ON_ERROR_STOP=0 <"$fifo" >"$out" 2>&1 &
    pid=$!
    exec 9>"$fifo"
    # 1. load the caches inside the old snapshot
    echo "BEGIN ISOLATION LEVEL $iso;" >&9
    echo "SELECT 'load', allowed FROM llm_usage.enforce_quota('$tl', 'tokens', 1);" >&9
    echo "SELECT 'load', allowed FROM llm_usage.enforce_quota('$tr', 'tokens', 1);" >&9
    echo "SELECT 'load', llm_usage.track_usage('$tl', 'chat', '$model', 1000000, 0) > 0;" >&9
    echo "SELECT 'loaded';" >&9
    for _ in $(seq 1 100); do grep -q '^loaded$' "$out" && break; sleep 0.1; done
    # 2. the changes commit elsewhere
    psql_q -d "$DB" -o /dev/null \
        -c "SELECT llm_usage.revoke_tenant_access('snap_app', '$tr')" \
        -c "SELECT llm_usage.set_custom_quota('$tl', 'tokens', 5, 'day')" \
        -c "SELECT llm_usage.set_model_price('custom', '$model', 7, 7)"
    # 3. calls inside the old snapshot (a reload here reads rows that snapshot sees), then the end of it
    echo "SELECT 'inside', allowed FROM llm_usage.enforce_quota('$tl', 'tokens', 1);" >&9
    echo "SELECT 'inside', allowed FROM llm_usage.enforce_quota('$tr', 'tokens', 1);" >&9
    echo "SELECT 'inside', llm_usage.track_usage('$tl', 'chat', '$model', 1000000, 0) > 0;" >&9
    echo "COMMIT;" >&9
    # 4. new transactions of the same session
    echo "SELECT 'after_limit', allowed, quota_limit FROM llm_usage.enforce_quota('$tl', 'tokens', 10);" >&9
    echo "SELECT 'after_revoke', allowed FROM llm_usage.enforce_quota('$tr', 'tokens', 1);" >&9
    echo "SELECT 'after_price', llm_usage.track_usage('$tl', 'chat', '$model', 1000000, 0);" >&9
    echo "SELECT 'after_track_revoked', llm_usage.track_usage('$tr', 'chat', '$model', 1, 0) > 0;" >&9
    exec 9>&-
    wait "$pid" || true
    local limit revoke price track_revoked
    limit=$(grep '^after_limit|' "$out" || true)
    revoke=$(grep -E '^after_revoke\||ERROR' "$out" | grep -v 'after_track' | sed -n '1,3p' | tr '\n' ' ')
    price=$(grep '^after_price|' "$out" || true)
    [[ -n $price ]] && price="after_price|$(q "SELECT cost_usd FROM llm_usage.usage_events WHERE tenant_id = '$tl' AND event_id = ${price#after_price|}")"
    track_revoked=$(grep -E '^after_track_revoked' "$out" || true)
    echo "$iso: after the transaction: limit: ${limit:-none}; revoked tenant: $(grep -c 'ERROR' "$out") error(s), '${revoke:0:160}'; price: ${price:-none}"
    [[ $limit == "after_limit|f|5" ]] || { cat "$out"; fail "$iso: the new limit (5) was not applied after the transaction ended"; }
    [[ $price == "after_price|7" ]] || { cat "$out"; fail "$iso: the new price (7 USD per Mtok) was not used after the transaction ended"; }
    [[ -z $(grep '^after_revoke|' "$out") && -z $track_revoked ]] \
        || { cat "$out"; fail "$iso: the revoked tenant was still usable after the transaction ended"; }
    [[ $(grep -c 'does not exist\|may not\|permission\|not granted' "$out") -ge 2 ]] \
        || { cat "$out"; fail "$iso: the revoked tenant's calls were not refused with an access error"; }
}

run_case "REPEATABLE READ" 1
run_case "SERIALIZABLE" 2
psql_q -d postgres -o /dev/null -c "DROP DATABASE $DB" -c "DROP ROLE IF EXISTS snap_app"
echo "PASS"
