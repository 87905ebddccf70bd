#!/usr/bin/env bash
# t_worker_security: roles and keys around collection.
#  - a non-admin role cannot read key ciphertext, cannot point a provider at
#    another URL, and sees only its tenant's collected rows and keys;
#  - attribution moves usage of a provider project to another tenant,
#    already collected rows included; unmapped usage stays on the key's
#    tenant, marked as such; reconciliation compares tracked and reported;
#  - rotate_master_key() re-wraps every key under a new master key version
#    and collection goes on without a restart;
#  - a server whose master key file is missing or too open still starts,
#    and the key functions fail with a clear error and a hint.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/worker_lib.sh"
start_sim
use_sim

KEY=sk-admin-security-test-5555
wq -o /dev/null <<'SQL'
SELECT llm_usage.create_tenant('org', 'pro');
SELECT llm_usage.create_tenant('team_beta', 'pro');
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'beta_app') THEN
        CREATE ROLE beta_app LOGIN IN ROLE llm_usage_app, llm_usage_reader;
        CREATE ROLE sec_admin LOGIN IN ROLE llm_usage_admin;
    END IF;
END $$;
SELECT llm_usage.grant_tenant_access('beta_app', 'team_beta');
SQL
id=$(wq -c "SELECT llm_usage.add_provider_key('org', 'openai', '$KEY', 'organization key')")
r=$(wq -c "SELECT llm_usage.collect_now($id, '2026-10-01', '2026-10-03')")
[[ $(wait_run "$r") == succeeded ]] || fail "collection failed"

# attribution: proj_beta belongs to team_beta, also for rows already collected
wq -c "SELECT llm_usage.attribute_provider_usage('openai', 'project_id', 'proj_beta', 'team_beta')" >/dev/null
wq -c "SELECT tenant_id, attributed_by, project_id, count(*), sum(input_tokens) FROM llm_usage.provider_usage WHERE key_id = $id GROUP BY 1, 2, 3 ORDER BY 1, 3"
[[ $(wq -c "SELECT count(*) FROM llm_usage.provider_usage WHERE key_id = $id AND project_id = 'proj_beta' AND (tenant_id, attributed_by) <> ('team_beta', 'project_id')") == 0 ]] \
    || fail "proj_beta rows were not re-attributed"
[[ $(wq -c "SELECT count(*) FROM llm_usage.provider_usage WHERE key_id = $id AND project_id = 'proj_alpha' AND (tenant_id, attributed_by) = ('org', 'key')") -gt 0 ]] \
    || fail "unmapped rows do not stay on the key's tenant"
[[ $(wq -c "SELECT count(*) FROM llm_usage.provider_costs WHERE key_id = $id AND project_id = 'proj_beta' AND tenant_id <> 'team_beta'") == 0 ]] \
    || fail "proj_beta costs were not re-attributed"
# and new collections land there directly
before=$(wq -c "SELECT count(*) FROM llm_usage.provider_usage WHERE tenant_id = 'team_beta'")
r=$(wq -c "SELECT llm_usage.collect_now($id, '2026-10-04', '2026-10-04')")
[[ $(wait_run "$r") == succeeded ]] || fail "collection failed"
after=$(wq -c "SELECT count(*) FROM llm_usage.provider_usage WHERE tenant_id = 'team_beta'")
echo "team_beta usage rows: $before after re-attribution, $after after one more day collected"
[[ $after -gt $before ]] || fail "new rows did not land on the mapped tenant"

# reconciliation: a tracked call on a collected day against the provider's cost
wq -c "SELECT llm_usage.track_usage('team_beta', 'chat', 'gpt-4o', 100000, 20000, occurred_at => '2026-10-02 12:00+00')" >/dev/null
wq -c "SELECT tenant_id, provider, day, tracked_usd, reported_usd, difference_usd, difference_pct FROM llm_usage.reconciliation WHERE tenant_id = 'team_beta' AND day = '2026-10-02'"
[[ $(wq -c "SELECT tracked_usd = 0.45 AND reported_usd = (SELECT sum(amount_usd) FROM llm_usage.provider_costs WHERE tenant_id = 'team_beta' AND bucket_start = '2026-10-02')
                   AND difference_usd = reported_usd - tracked_usd
              FROM llm_usage.reconciliation WHERE tenant_id = 'team_beta' AND provider = 'openai' AND day = '2026-10-02'") == t ]] \
    || fail "reconciliation does not compare tracked and reported cost"

# a non-admin role: no ciphertext, no URL changes, only its tenant
asrole() { as_user "$PGBIN/psql" -X -At -U "$1" -d "$WDB" -c "$2" 2>&1 || true; }
out=$(asrole beta_app "SELECT key_ciphertext FROM llm_usage.provider_key_store")
echo "beta_app reads ciphertext: $out"; [[ $out == *"permission denied"* ]] || fail "beta_app could read ciphertext"
out=$(asrole sec_admin "SELECT key_ciphertext FROM llm_usage.provider_key_store")
echo "sec_admin reads ciphertext: $out"; [[ $out == *"permission denied"* ]] || fail "an llm_usage admin could read ciphertext"
out=$(asrole beta_app "SET llm_usage.openai_base_url = 'http://169.254.169.254'")
echo "beta_app sets the base URL: $out"; [[ $out == *"permission denied"* ]] || fail "beta_app could change the base URL"
out=$(asrole sec_admin "ALTER SYSTEM SET llm_usage.anthropic_base_url = 'http://example.invalid'")
echo "sec_admin alters the base URL: $out"; [[ $out == *"must be superuser"* || $out == *"permission denied"* ]] || fail "sec_admin could change the base URL"
out=$(asrole beta_app "SELECT string_agg(DISTINCT tenant_id, ',') FROM llm_usage.provider_usage")
echo "beta_app reads provider_usage: $out"; [[ $out == *"permission denied"* ]] || fail "beta_app reads a tenant table directly"
out=$(asrole beta_app "SELECT string_agg(DISTINCT \"SubAccountId\", ',') FROM llm_usage.focus_export(now() - interval '300 days', now(), 'provider')")
echo "beta_app sees provider-reported costs of: $out"; [[ $out == team_beta || -z $out ]] || fail "beta_app sees other tenants' usage"
out=$(asrole beta_app "SELECT count(*) FROM llm_usage.provider_keys")
echo "beta_app sees keys: $out"; [[ $out == 0 ]] || fail "beta_app sees another tenant's key"
out=$(asrole beta_app "SELECT string_agg(DISTINCT tenant_id, ',') FROM llm_usage.reconciliation")
echo "beta_app sees reconciliation of: $out"; [[ $out == team_beta ]] || fail "beta_app sees other tenants' reconciliation"
out=$(asrole beta_app "SELECT llm_usage.collect_now()")
[[ $out == *"permission denied"* ]] || fail "beta_app could start a collection"
out=$(asrole beta_app "SELECT llm_usage.add_provider_key('team_beta', 'openai', 'sk-admin-xxxxxxxxxxxx')")
[[ $out == *"permission denied"* ]] || fail "beta_app could add a key"

# master key rotation: add version 2 to the file, re-wrap, collect
next=$(( $(cut -d: -f1 "$WORK/master.key" | sort -n | tail -1) + 1 ))
python3 -c "import secrets; print('$next:' + secrets.token_hex(32))" >>"$WORK/master.key"
n=$(wq -c "SELECT llm_usage.rotate_master_key()")
echo "rotate_master_key() re-wrapped $n key(s) under master key version $next"
[[ $(wq -c "SELECT count(*) FROM llm_usage.provider_key_store WHERE master_key_version <> $next") == 0 ]] || fail "keys left on an old version"
[[ $n -ge 1 ]] || fail "nothing was re-wrapped"
r=$(wq -c "SELECT llm_usage.collect_now($id, '2026-10-05', '2026-10-05')")
[[ $(wait_run "$r") == succeeded ]] || fail "collection after master key rotation failed"
echo "collection after rotation: run $r succeeded (the worker read the new version without a restart)"
[[ $(wq -c "SELECT llm_usage.rotate_master_key()" 2>&1) == *"0"* ]] || fail "a second rotation should re-wrap nothing"

# a server without a usable master key starts, and key functions say why
NMK="$WORK/nomaster"
rm -rf "$NMK" "$WORK/nomaster.log"
as_user "$PGBIN/initdb" -D "$NMK" -U postgres -A trust --no-sync >/dev/null
printf '%s\n' "$(python3 -c 'import secrets; print(secrets.token_hex(32))')" >"$WORK/open.key"
chown "$TEST_USER" "$WORK/open.key"; chmod 644 "$WORK/open.key"
cat >>"$NMK/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$WORK'
port = 55499
shared_preload_libraries = 'llm_usage'
llm_usage.master_key_file = '$WORK/open.key'
CONF
as_user "$PGBIN/pg_ctl" -D "$NMK" -l "$WORK/nomaster.log" -w -t 60 start >/dev/null || fail "a server with a bad master key file did not start"
grep -m1 "llm_usage master key not loaded" "$WORK/nomaster.log" || fail "no warning about the master key at start"
as_user "$PGBIN/psql" -X -q -p 55499 -d postgres -c "CREATE EXTENSION llm_usage" -c "SELECT llm_usage.create_tenant('x')" >/dev/null
[[ $(bind_call "SELECT llm_usage.add_provider_key('x', 'openai', :key);" sk-admin-nomasterkey0000 -p 55499 postgres) == 1 ]] \
    || fail "a key was stored without a master key"
as_user "$PGBIN/pg_ctl" -D "$NMK" -m fast -w stop >/dev/null
grep -A2 "ERROR:  llm_usage master key is not loaded" "$WORK/nomaster.log" | grep -v STATEMENT
grep -q "ERROR:  llm_usage master key is not loaded" "$WORK/nomaster.log" && grep -q "DETAIL:.*mode 0644" "$WORK/nomaster.log" \
    && grep -q "HINT:  Set llm_usage.master_key_file" "$WORK/nomaster.log" \
    || fail "add_provider_key without a master key does not explain why"
if grep -q "sk-admin-nomasterkey" "$WORK/nomaster.log"; then fail "the key reached the log"; fi
retire_keys org
echo "PASS"
