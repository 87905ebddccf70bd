#!/usr/bin/env bash
# t_attack2: the newest features attacked by real login roles (issue 9's
# models, after t_attack.sh): reserve-then-settle, the open event types,
# custom usage sources.  Each attack is a numbered check; every check runs,
# and the suite fails if any attack got through.
#
# Roles (LOGIN, cluster-wide, removed at the end):
#   a2_mallory   llm_usage_app bound to tenant a2_acme (the attacker)
#   a2_victim    llm_usage_app bound to tenant a2_beta (its reservations are
#                the target)
#   a2_rita      llm_usage_reader bound to tenant a2_beta
#   a2_mapper    NOLOGIN, the role a custom source's mapping function runs as
#
# [V] reservations: another tenant's request ids (settle, re-reserve, read),
#     error texts as an oracle, the shared reservation hash filled by one
#     tenant, request ids chosen to collide (long, Unicode forms, case,
#     spaces); [T] event-type names with quotes and format() directives,
#     the mapping written by an app; [P] the mapping function of a custom
#     source trying to leave its role or read the worker's secrets, and
#     base URLs or path templates that climb out of the allowed prefix.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/worker_lib.sh"

ADB=llm_usage_attack2
A="$WORK/attack2.$$"
mkdir -p "$A"
chown "$TEST_USER" "$A"
failed=0
ok() { echo "  pass  $*"; }
bad() { echo "  FAIL  $*"; failed=$((failed + 1)); }
check() {       # check NAME COMMAND...: ok when COMMAND succeeds
    local name=$1; shift
    if "$@"; then ok "$name"; else bad "$name"; fi
}
sq() { psql_q -At -d "$ADB" "$@"; }                       # superuser, attack database
asrole() {      # asrole ROLE SQL: as a login role, errors go on (verbose: SQLSTATEs)
    as_user "$PGBIN/psql" -X -At -U "$1" -d "$ADB" -v VERBOSITY=verbose -c '\set VERBOSITY verbose' -c "$2" 2>&1
}
# tokens counted today for a tenant (tokens/day quota), as the superuser sees it
tokens_used() { sq -c "SELECT used FROM llm_usage.quota_status('$1') WHERE quota_type = 'tokens' AND period = 'day'"; }

cleanup() {
    psql_q -d postgres -o /dev/null -c "DROP DATABASE IF EXISTS $ADB" 2>/dev/null
    psql_q -d "$WDB" -o /dev/null -c "DELETE FROM llm_usage.usage_source_store WHERE name IN ('a2_hostile', 'a2_stall', 'a2_benign', 'a2_stubborn', 'a2_owned')" 2>/dev/null
    psql_q -d "$WDB" -o /dev/null -c "DROP SCHEMA IF EXISTS a2_maps CASCADE" -c "DROP SCHEMA IF EXISTS a2own CASCADE" 2>/dev/null
    psql_q -d postgres -o /dev/null 2>/dev/null <<'SQL'
DO $$
DECLARE r text;
BEGIN
    FOR r IN SELECT rolname FROM pg_roles WHERE rolname LIKE 'a2\_%' LOOP
        EXECUTE format('DROP OWNED BY %I CASCADE', r);
        EXECUTE format('DROP ROLE %I', r);
    END LOOP;
END $$;
SQL
}
cleanup
fresh_db "$ADB"

psql_q -d "$ADB" -o /dev/null <<'SQL'
CREATE EXTENSION llm_usage;
CREATE ROLE a2_mallory LOGIN IN ROLE llm_usage_app;
CREATE ROLE a2_victim LOGIN IN ROLE llm_usage_app;
CREATE ROLE a2_rita LOGIN IN ROLE llm_usage_reader;
SELECT llm_usage.create_tenant('a2_acme', 'pro');
SELECT llm_usage.create_tenant('a2_beta', 'pro');
SELECT llm_usage.grant_tenant_access('a2_mallory', 'a2_acme');
SELECT llm_usage.grant_tenant_access('a2_victim', 'a2_beta');
SELECT llm_usage.grant_tenant_access('a2_rita', 'a2_beta');
SQL
[[ $(sq -c "SELECT llm_usage._shm_usable('a2_beta')") == t ]] || fail "tenant a2_beta is not counted in shared memory"

# ------------------------------------- [V1] another tenant's request id
asrole a2_victim "SELECT allowed FROM llm_usage.enforce_quota('a2_beta', 'tokens', 1000, 'beta-req-1')" >/dev/null
u0=$(tokens_used a2_beta)
out=$(asrole a2_mallory "SELECT llm_usage.track_usage('a2_acme', 'chat', 'gpt-4o', 1, 1, request_id => 'beta-req-1') > 0";
      asrole a2_mallory "SELECT llm_usage.track_usage('a2_beta', 'chat', 'gpt-4o', 1, 1, request_id => 'beta-req-1')";
      asrole a2_mallory "SELECT llm_usage.track_response_usage('a2_beta', 'openai', 'gpt-4o', '{\"prompt_tokens\": 1}', request_id => 'beta-req-1')";
      asrole a2_mallory "SELECT allowed FROM llm_usage.enforce_quota('a2_beta', 'tokens', 1, 'beta-req-1')";
      asrole a2_mallory "SELECT allowed FROM llm_usage.enforce_quotas('a2_beta', '{\"tokens\": 1}', 'beta-req-1')";
      asrole a2_mallory "SELECT llm_usage._track_usage_sql('a2_beta', 'chat', 'gpt-4o', 1, 1, 0, 1, 200, 'success', '{}', 'beta-req-1', pg_catalog.now(), 0)";
      asrole a2_mallory "SELECT * FROM llm_usage._enforce_quota_sql('a2_beta', 'tokens', 1, 'beta-req-1')";
      asrole a2_mallory "SELECT llm_usage._shm_settle('a2_beta', 'beta-req-1', 0, 0, NULL, pg_catalog.now())")
u1=$(tokens_used a2_beta)
echo "  a2_beta tokens/day with its reservation open: $u0; after a2_mallory's attempts: $u1"
echo "  refusals: $(grep -o 'ERROR: *[0-9A-Z]*: [^\"]*' <<<"$out" | sort | uniq -c | tr -s ' ' | tr '\n' ';')"
check "[V1] a2_mallory's track_usage of a2_beta's request id on her own tenant settles nothing of a2_beta" test "$u1" == "$u0"
check "[V1] track/enforce on a2_beta with its request id, and the internal settle, are refused (7 x 42501)" \
    test "$(grep -c 'ERROR: *42501' <<<"$out")" == 7
asrole a2_victim "SELECT llm_usage.track_usage('a2_beta', 'chat', 'gpt-4o', 10, 5, request_id => 'beta-req-1') > 0" >/dev/null
u2=$(tokens_used a2_beta)
check "[V1] ... and a2_beta's own track_usage still settles its reservation (1000 reserved -> 15 used: $u2)" test "$u2" == 15.000000 -o "$u2" == 15

# --------------------------------------- [V2] error texts as an oracle
asrole a2_victim "SELECT allowed FROM llm_usage.enforce_quota('a2_beta', 'tokens', 10, 'beta-open')" >/dev/null
oracle() {      # the same call on: an open reservation of a2_beta, a request id a2_beta never used, a tenant that does not exist
    local t rid out=""
    for t_rid in "a2_beta beta-open" "a2_beta beta-never" "a2_nosuch beta-open"; do
        read -r t rid <<<"$t_rid"
        out+=$(asrole a2_mallory "$(printf "$1" "$t" "$rid")" | sed "s/$t/TENANT/g; s/$rid/RID/g" | tr '\n' ' ')$'\n'
    done
    printf '%s' "$out"
}
for call in "SELECT allowed FROM llm_usage.enforce_quota('%s', 'tokens', 1, '%s')" \
            "SELECT llm_usage.track_usage('%s', 'chat', 'gpt-4o', 1, 1, request_id => '%s')" \
            "SELECT allowed FROM llm_usage.enforce_quotas('%s', '{\"tokens\": 1}', '%s')"; do
    out=$(oracle "$call")
    n=$(sort -u <<<"$out" | grep -c .)
    check "[V2] $(cut -c1-60 <<<"$call")...: one answer whatever the tenant and its reservations ($n distinct: $(head -1 <<<"$out" | cut -c1-60))" test "$n" == 1
done

# ------------------------------------- [V3] reservations as relations
for role in a2_mallory a2_rita a2_victim; do
    out=$(asrole $role "SELECT count(*) FROM llm_usage.quota_reservations")
    check "[V3] $role cannot read quota_reservations ($(head -1 <<<"$out" | cut -c1-70))" grep -q '42501' <<<"$out"
done
out=$(asrole a2_mallory "SELECT * FROM llm_usage._shm_status()")
check "[V3] a2_mallory cannot read the shared-memory status (reservation counts)" grep -q '42501' <<<"$out"

# ------------------------------------- [V4] request ids chosen to collide
long=$(printf 'x%.0s' $(seq 1 256))
out=$(asrole a2_mallory "SELECT allowed FROM llm_usage.enforce_quota('a2_acme', 'tokens', 1, '$long')";
      asrole a2_mallory "SELECT allowed FROM llm_usage.enforce_quota('a2_acme', 'tokens', 1, repeat('y', 1000000))";
      asrole a2_mallory "SELECT llm_usage.track_usage('a2_acme', 'chat', 'gpt-4o', 1, 1, request_id => repeat('y', 1000000))";
      asrole a2_mallory "SELECT allowed FROM llm_usage.enforce_quota('a2_acme', 'tokens', 1, '   ')";
      asrole a2_mallory "SELECT allowed FROM llm_usage.enforce_quota('a2_acme', 'tokens', 1, E'a\\000b')")
check "[V4] request ids of 256 characters, 1 MB, blank, or with a NUL are refused (22023 x4, 22P05 or 22021)" \
    test "$(grep -c 'ERROR: *22023' <<<"$out")/$(grep -cE 'ERROR: *(22P05|22021|22023)' <<<"$out")" == 4/5
# distinct ids are distinct reservations, byte for byte: NFC/NFD, case, trailing space, 255 characters
a0=$(tokens_used a2_acme)
ids=("r$(printf '\xc3\xa9')" "re$(printf '\xcc\x81')" "R$(printf '\xc3\xa9')" "r$(printf '\xc3\xa9') " "$(printf 'z%.0s' $(seq 1 255))")
for i in "${!ids[@]}"; do
    asrole a2_mallory "SELECT allowed FROM llm_usage.enforce_quota('a2_acme', 'tokens', $((10 ** (i + 1))), '${ids[$i]}')" >/dev/null
done
a1=$(tokens_used a2_acme)
asrole a2_mallory "SELECT llm_usage.track_usage('a2_acme', 'chat', 'gpt-4o', 0, 0, request_id => '${ids[0]}') > 0" >/dev/null
a2=$(tokens_used a2_acme)
check "[V4] five near-identical request ids make five reservations (111110 tokens: $a0 -> $a1)" \
    test "$(sq -c "SELECT $a1 - $a0")" == 111110.000000 -o "$(sq -c "SELECT ($a1 - $a0)::bigint")" == 111110
check "[V4] settling one of them releases only its own 10 tokens ($a1 -> $a2)" test "$(sq -c "SELECT ($a1 - $a2)::bigint")" == 10
for i in 1 2 3 4; do
    asrole a2_mallory "SELECT llm_usage.track_usage('a2_acme', 'chat', 'gpt-4o', 0, 0, request_id => '${ids[$i]}') > 0" >/dev/null
done

# ------------------------------ [V5] one tenant fills the reservation hash
max=$(sq -c "SHOW llm_usage.max_reservations")
per=$(sq -c "SELECT coalesce(current_setting('llm_usage.max_reservations_per_tenant', true), '$max')")
b0=$(tokens_used a2_beta)
flood=$(asrole a2_mallory "DO \$\$ BEGIN FOR g IN 1..$max LOOP PERFORM llm_usage.enforce_quota('a2_acme', 'tokens', 1, 'flood-' || g); END LOOP; END \$\$")
echo "  a2_mallory asked for $max reservations (max_reservations $max, per tenant $per): $(grep -o 'ERROR: .*' <<<"$flood" | head -1)"
out=$(asrole a2_victim "SELECT allowed FROM llm_usage.enforce_quota('a2_beta', 'tokens', 1, 'victim-after-flood')")
check "[V5] after a2_mallory opened every reservation she could, a2_beta still reserves ($out)" test "$out" == t
check "[V5] ... a2_mallory was stopped with 53400 naming her own tenant's bound" \
    grep -q 'ERROR: *53400: too many open quota reservations for tenant "a2_acme"' <<<"$flood"
check "[V5] ... and her reservations counted nothing of a2_beta ($b0 -> $(tokens_used a2_beta) with a2_beta's own 1)" \
    test "$(sq -c "SELECT ($(tokens_used a2_beta) - $b0)::bigint")" == 1
# a2_mallory's flood settled again (tracked at zero), so later suites find the hash empty
asrole a2_mallory "SELECT count(llm_usage.track_usage('a2_acme', 'chat', 'gpt-4o', 0, 0, request_id => 'flood-' || g)) FROM generate_series(1, $max) g" >/dev/null
asrole a2_victim "SELECT llm_usage.track_usage('a2_beta', 'chat', 'gpt-4o', 0, 0, request_id => 'victim-after-flood') > 0" >/dev/null
# settled reservations no longer count against the tenant's bound
again=$(asrole a2_mallory "SELECT count(*) FROM generate_series(1, $per) g, llm_usage.enforce_quota('a2_acme', 'tokens', 1, 'again-' || g) q WHERE q.allowed")
check "[V5] once they are settled, a2_acme may hold $per again ($again)" test "$again" == "$per"
asrole a2_mallory "SELECT count(llm_usage.track_usage('a2_acme', 'chat', 'gpt-4o', 0, 0, request_id => 'again-' || g)) FROM generate_series(1, $per) g" >/dev/null

# --------------------------------------------------- [T] event types
names=("x'); DROP TABLE llm_usage.tenants; --" '%s%I%L%1$s' 'a"b\c' "$(printf '\xe2\x80\xae')rtl" "$(printf 'e%.0s' $(seq 1 64))")
m0=$(sq -c "SELECT count(*) FROM llm_usage.tenants")
for n in "${names[@]}"; do
    q=${n//\'/\'\'}
    asrole a2_mallory "SELECT llm_usage.track_usage('a2_acme', '$q', 'gpt-4o', 1, 1) > 0" >>"$A/ev.out"
done
echo "  event types tracked: $(grep -c '^t$' "$A/ev.out") of ${#names[@]}"
out=$(sq -c "SELECT llm_usage.set_event_type('$(printf '%s' "${names[0]}" | sed "s/'/''/g")', 'chat_messages')" \
         -c "SELECT llm_usage.aggregate_usage_metrics('hourly')" -c "SELECT llm_usage.aggregate_usage_metrics('daily')" 2>&1)
check "[T1] event types with quotes, format() directives, backslashes, bidi controls, 64 characters are tracked as data" \
    test "$(grep -c '^t$' "$A/ev.out")" == "${#names[@]}"
check "[T1] ... an admin maps one of them and the roll-ups run ($(tr '\n' ' ' <<<"$out"))" test -z "$(grep -i error <<<"$out")"
check "[T1] ... nothing was dropped ($m0 tenants)" test "$(sq -c "SELECT count(*) FROM llm_usage.tenants")" == "$m0"
check "[T1] ... and the hostile name feeds a2_acme's chat messages only" \
    test "$(sq -c "SELECT string_agg(tenant_id || '=' || chat_messages_sent, ',' ORDER BY tenant_id) FROM llm_usage.tenant_usage_metrics WHERE period_type = 'daily' AND tenant_id LIKE 'a2_%'")" \
         == "a2_acme=$(sq -c "SELECT count(*) FROM llm_usage.usage_events WHERE tenant_id = 'a2_acme' AND event_type IN ('chat', '$(printf '%s' "${names[0]}" | sed "s/'/''/g")')"),a2_beta=$(sq -c "SELECT count(*) FROM llm_usage.usage_events WHERE tenant_id = 'a2_beta' AND event_type = 'chat'")"
out=$(asrole a2_mallory "SELECT llm_usage.set_event_type('chat', 'embeddings')";
      asrole a2_mallory "SELECT llm_usage.remove_event_type('chat')";
      asrole a2_mallory "INSERT INTO llm_usage.event_types (event_type, counts_as, is_shipped) VALUES ('chat', NULL, false)";
      asrole a2_mallory "UPDATE llm_usage.event_types SET counts_as = NULL";
      asrole a2_rita "DELETE FROM llm_usage.event_types")
check "[T2] app and reader roles cannot change the event-type mapping (5 x 42501)" test "$(grep -c 'ERROR: *42501' <<<"$out")" == 5
out=$(asrole a2_mallory "SELECT llm_usage.track_usage('a2_acme', E'chat\\n', 'gpt-4o', 1, 1)";
      asrole a2_mallory "SELECT llm_usage.track_usage('a2_acme', repeat('e', 65), 'gpt-4o', 1, 1)";
      asrole a2_mallory "SELECT llm_usage.track_usage('a2_acme', E'\\u0085x', 'gpt-4o', 1, 1)")
check "[T3] control characters and 65 characters are refused (3 x 22023, the name shown without its control characters)" \
    test "$(grep -c 'ERROR: *22023: invalid event_type' <<<"$out")/$(grep -c $'\x85' <<<"$out")" == 3/0

# ------------------------------------ [P1] URLs that climb out of a prefix
psql_q -d "$ADB" -o /dev/null <<'SQL'
CREATE ROLE a2_mapper NOLOGIN;
CREATE SCHEMA a2m;
GRANT USAGE ON SCHEMA a2m TO a2_mapper;
CREATE FUNCTION a2m.map(page jsonb, source_id bigint) RETURNS SETOF llm_usage.usage_source_row
    LANGUAGE sql STABLE AS $$ SELECT NULL::llm_usage.usage_source_row WHERE false $$;
GRANT EXECUTE ON FUNCTION a2m.map(jsonb, bigint) TO a2_mapper;
SQL
reg() {         # reg BASE PATH: register a source under the prefix http://127.0.0.1:9/v2 (as a superuser)
    sq -c '\set VERBOSITY verbose' -c "SET llm_usage.source_url_prefixes = 'http://127.0.0.1:9/v2'" \
       -c "SELECT llm_usage.add_usage_source('p-' || md5(random()::text), 'a2_acme', '$1', '$2', 'a2m.map(jsonb,bigint)', 'a2_mapper') > 0" 2>&1
}
refused=0; tried=0
for bp in 'http://127.0.0.1:9/v2/..|/x?f={from}&t={to}' 'http://127.0.0.1:9/v2/../admin|/x?f={from}&t={to}' \
          'http://127.0.0.1:9/v2/%2e%2E|/x?f={from}&t={to}' 'http://127.0.0.1:9/v2/.|/x?f={from}&t={to}' \
          'http://127.0.0.1:9/v2|/../admin?f={from}&t={to}' 'http://127.0.0.1:9/v2|/%2E%2e/admin?f={from}&t={to}' \
          'http://127.0.0.1:9/v2|/x/../../admin/{from}/{to}' 'http://127.0.0.1:9/v2|/..?f={from}&t={to}' \
          'HTTP://127.0.0.1:9/v2|/x?f={from}&t={to}' 'http://127.0.0.1:9@evil.example/v2|/x?f={from}&t={to}' \
          'http://127.0.0.1:9/v2.evil.example|/x?f={from}&t={to}' 'http://127.0.0.1:9/v2|@evil.example/x?f={from}&t={to}'; do
    out=$(reg "${bp%%|*}" "${bp#*|}")
    tried=$((tried + 1))
    if grep -qE 'ERROR: +(22023|42501)' <<<"$out"; then refused=$((refused + 1)); else echo "  not refused with 22023/42501: $bp: $out"; fi
done
check "[P1] base URLs and path templates leaving the prefix http://127.0.0.1:9/v2 (dot segments, encoded dots, scheme case, userinfo, host suffix) are refused with 22023 or 42501 ($refused of $tried)" \
    test "$refused" == "$tried"
out=$(reg 'http://127.0.0.1:9/v2/x..y' '/.well-known/usage?f={from}&t={to}')
check "[P1] ... while names with dots in them are fine ($out)" test "$out" == t

# ------------------------ [P2] the mapping function tries to leave its role
start_sim
use_sim
psql_q -d postgres -o /dev/null -c "ALTER SYSTEM SET llm_usage.alert_webhook_url = 'http://127.0.0.1:9/hook/a2-SECRET-webhook'" -c "SELECT pg_reload_conf()"
wq -o /dev/null <<'SQL'
SELECT llm_usage.create_tenant('a2_src', 'pro') WHERE NOT EXISTS (SELECT 1 FROM llm_usage.tenants WHERE tenant_id = 'a2_src');
CREATE ROLE a2_wmapper NOLOGIN;
CREATE SCHEMA a2_maps;
GRANT USAGE ON SCHEMA a2_maps TO a2_wmapper;
CREATE TABLE a2_maps.tries (what text, result text);
GRANT INSERT ON a2_maps.tries TO a2_wmapper;
CREATE FUNCTION a2_maps.try(what text, sql text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE v text;
BEGIN
    BEGIN
        EXECUTE sql INTO v;
        -- a query that ran and found nothing (pg_settings hides the secret rows) reached nothing
        INSERT INTO a2_maps.tries VALUES (what, CASE WHEN v IS NULL THEN 'nothing' ELSE 'ALLOWED: ' || v END
                                                || ' (user ' || current_user || ')');
    EXCEPTION WHEN OTHERS THEN
        INSERT INTO a2_maps.tries VALUES (what, SQLSTATE || ' ' || SQLERRM);
    END;
END $$;
CREATE FUNCTION a2_maps.as_postgres() RETURNS text LANGUAGE sql SET role = 'postgres' AS $$ SELECT current_user::text $$;
CREATE FUNCTION a2_maps.hostile(page jsonb, source_id bigint) RETURNS SETOF llm_usage.usage_source_row
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM a2_maps.try('RESET ROLE', 'RESET ROLE');
    PERFORM a2_maps.try('SET ROLE', 'SET ROLE postgres');
    PERFORM a2_maps.try('SET LOCAL ROLE', 'SET LOCAL ROLE postgres');
    PERFORM a2_maps.try('SET SESSION AUTHORIZATION', 'SET SESSION AUTHORIZATION postgres');
    PERFORM a2_maps.try('RESET SESSION AUTHORIZATION', 'RESET SESSION AUTHORIZATION');
    PERFORM a2_maps.try('set_config(role)', 'SELECT pg_catalog.set_config(''role'', ''postgres'', false)');
    PERFORM a2_maps.try('set_config(session_authorization)', 'SELECT pg_catalog.set_config(''session_authorization'', ''postgres'', true)');
    PERFORM a2_maps.try('proconfig SET role', 'SELECT a2_maps.as_postgres()');
    PERFORM a2_maps.try('ALTER SYSTEM', 'ALTER SYSTEM SET llm_usage.source_url_prefixes = ''http://''');
    PERFORM a2_maps.try('set_config(source_url_prefixes)', 'SELECT pg_catalog.set_config(''llm_usage.source_url_prefixes'', ''http://'', false)');
    PERFORM a2_maps.try('webhook URL', 'SELECT pg_catalog.current_setting(''llm_usage.alert_webhook_url'')');
    PERFORM a2_maps.try('pg_settings secrets', 'SELECT string_agg(setting, '','') FROM pg_catalog.pg_settings WHERE name LIKE ''llm_usage.alert%'' AND setting LIKE ''%SECRET%''');
    PERFORM a2_maps.try('key store', 'SELECT count(*)::text FROM llm_usage.provider_key_store');
    PERFORM a2_maps.try('source store', 'SELECT count(*)::text FROM llm_usage.usage_source_store');
    PERFORM a2_maps.try('pg_read_file', 'SELECT pg_catalog.pg_read_file(''postgresql.auto.conf'')');
    PERFORM a2_maps.try('COPY TO PROGRAM', 'COPY (SELECT 1) TO PROGRAM ''true''');
    PERFORM a2_maps.try('temp table', 'CREATE TEMP TABLE t_a2 (x int)');
    PERFORM a2_maps.try('GRANT llm_usage_admin', 'GRANT llm_usage_admin TO a2_wmapper');
    PERFORM a2_maps.try('add_provider_key', 'SELECT llm_usage.add_provider_key(''a2_src'', ''openai'', ''sk-a2'')::text');
    -- what it may see (not an escalation), searched for the source's secret below
    INSERT INTO a2_maps.tries
    SELECT 'seen: activity', string_agg(coalesce(a.query, '') || ' ' || coalesce(a.application_name, ''), ' / ')
      FROM pg_catalog.pg_stat_activity a;
    INSERT INTO a2_maps.tries
    SELECT 'seen: settings', string_agg(name || '=' || setting, ' ') FROM pg_catalog.pg_settings WHERE name LIKE 'llm_usage.%';
    INSERT INTO a2_maps.tries VALUES ('seen: page', page::text);
    INSERT INTO a2_maps.tries VALUES ('seen: window', current_setting('llm_usage.source_window_from'));
    INSERT INTO a2_maps.tries VALUES ('whoami', current_user || '/' || (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) || '/' || current_setting('search_path'));
    RETURN;
END $$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA a2_maps TO a2_wmapper;
SQL
sid=$(bind_call "SELECT llm_usage.add_usage_source('a2_hostile', 'a2_src', '$SIM', '/metrics/api-usage?from={from}&to={to}&limit=31',
        'a2_maps.hostile(jsonb,bigint)', 'a2_wmapper', auth => 'bearer', secret => :key)" "svc-a2-secret-bearer-0001" -d "$WDB")
[[ $sid == 0 ]] || fail "could not register the hostile source"
sid=$(wq -c "SELECT id FROM llm_usage.usage_sources WHERE name = 'a2_hostile'")
run=$(wq -c "SELECT llm_usage.collect_source_now($sid, '2026-10-01', '2026-10-01')")
st=$(wait_run "$run" 60)
seen=$(wq -F ': ' -c "SELECT what, result FROM a2_maps.tries WHERE what LIKE 'seen:%'")
tries=$(wq -F ': ' -c "SELECT what, result FROM a2_maps.tries WHERE what NOT LIKE 'seen:%'")
echo "  run $st; the mapping function's attempts:"; sed 's/^/    /' <<<"$tries"
echo "  what it may see:"; cut -c1-240 <<<"$seen" | sed 's/^/    /'
check "[P2] the mapping function ran as a2_wmapper, not a superuser, search_path pinned ($st)" grep -q '^whoami: a2_wmapper/false/pg_catalog, pg_temp$' <<<"$tries"
check "[P2] every attempt to become another role, change the server's settings or read a secret failed" \
    test -z "$(grep ALLOWED <<<"$tries")"
check "[P2] ... and no secret reached it, nor is one in what it may see (pg_stat_activity, pg_settings, the page: $(wc -c <<<"$seen") bytes)" \
    test -z "$(grep -E 'SECRET|a2-secret' <<<"$tries$seen")" -a -n "$(grep '^seen: window: 2026-10-01T00:00:00Z$' <<<"$seen")"
check "[P2] ... the prefixes setting is unchanged" test "$(wq -c "SHOW llm_usage.source_url_prefixes")" == "http://127.0.0.1:"
check "[P2] ... a2_wmapper is no admin and no superuser" \
    test "$(wq -c "SELECT rolsuper OR pg_has_role('a2_wmapper', 'llm_usage_admin', 'MEMBER') FROM pg_roles WHERE rolname = 'a2_wmapper'")" == f
wq -o /dev/null -c "SELECT llm_usage.deactivate_usage_source($sid)"
psql_q -d postgres -o /dev/null -c "ALTER SYSTEM RESET llm_usage.alert_webhook_url" -c "SELECT pg_reload_conf()"

# ------------------ [P3] a mapping function that never returns (the worker stalls for everyone)
wq -o /dev/null <<'SQL'
CREATE FUNCTION a2_maps.stall(page jsonb, source_id bigint) RETURNS SETOF llm_usage.usage_source_row
LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_catalog.pg_sleep(3600); RETURN; END $$;
CREATE FUNCTION a2_maps.benign(page jsonb, source_id bigint) RETURNS SETOF llm_usage.usage_source_row
LANGUAGE plpgsql AS $$ BEGIN RETURN; END $$;
-- catches the cancel and sleeps on
CREATE FUNCTION a2_maps.stubborn(page jsonb, source_id bigint) RETURNS SETOF llm_usage.usage_source_row
LANGUAGE plpgsql AS $$
BEGIN
    LOOP
        BEGIN
            PERFORM pg_catalog.pg_sleep(3600);
        EXCEPTION WHEN query_canceled THEN
            INSERT INTO a2_maps.tries VALUES ('stubborn', 'caught a cancel');
        END;
    END LOOP;
END $$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA a2_maps TO a2_wmapper;
SQL
for fn in stall benign stubborn; do
    r=$(bind_call "SELECT llm_usage.add_usage_source('a2_$fn', 'a2_src', '$SIM', '/metrics/api-usage?from={from}&to={to}&limit=31',
            'a2_maps.$fn(jsonb,bigint)', 'a2_wmapper', auth => 'bearer', secret => :key)" "svc-a2-secret-bearer-0002" -d "$WDB")
    [[ $r == 0 ]] || fail "could not register source a2_$fn"
done
psql_q -d postgres -o /dev/null -c "ALTER SYSTEM SET llm_usage.mapping_timeout = '2s'" -c "SELECT pg_reload_conf()" 2>/dev/null
sleep 1
s_stall=$(wq -c "SELECT id FROM llm_usage.usage_sources WHERE name = 'a2_stall'")
s_benign=$(wq -c "SELECT id FROM llm_usage.usage_sources WHERE name = 'a2_benign'")
r_stall=$(wq -c "SELECT llm_usage.collect_source_now($s_stall, '2026-10-01', '2026-10-01')")
r_benign=$(wq -c "SELECT llm_usage.collect_source_now($s_benign, '2026-10-01', '2026-10-01')")
st_benign=$(wait_run "$r_benign" 30)
st_stall=$(wq -c "SELECT status || ': ' || coalesce(error, '') FROM llm_usage.collector_runs WHERE run_id = $r_stall")
echo "  the stalling source's run: $st_stall; the next run (another source): $st_benign"
check "[P3] a mapping function that never returns does not hold the worker: the next source's run finishes ($st_benign)" \
    test "$st_benign" == succeeded
check "[P3] ... the stalling run failed for llm_usage.mapping_timeout" \
    grep -q '^failed: .*mapping page 1: .*llm_usage.mapping_timeout' <<<"$st_stall"
s_stubborn=$(wq -c "SELECT id FROM llm_usage.usage_sources WHERE name = 'a2_stubborn'")
r_stubborn=$(wq -c "SELECT llm_usage.collect_source_now($s_stubborn, '2026-10-01', '2026-10-01')")
r_benign2=$(wq -c "SELECT llm_usage.collect_source_now($s_benign, '2026-10-02', '2026-10-02')")
st_benign2=$(wait_run "$r_benign2" 40)
st_stubborn=$(wq -c "SELECT status || ': ' || coalesce(error, '') FROM llm_usage.collector_runs WHERE run_id = $r_stubborn")
echo "  a mapping function that catches the cancel and sleeps on: $st_stubborn; the next run: $st_benign2"
check "[P3] one that catches the cancel does not hold the worker either: the worker ends itself and the next run finishes ($st_benign2)" \
    test "$st_benign2" == succeeded
check "[P3] ... the stubborn run is recorded as failed (interrupted)" grep -q '^failed: interrupted' <<<"$st_stubborn"
wq -o /dev/null -c "SELECT llm_usage.deactivate_usage_source($s_stall)" -c "SELECT llm_usage.deactivate_usage_source($s_benign)" \
   -c "SELECT llm_usage.deactivate_usage_source($s_stubborn)"
for _ in $(seq 1 100); do [[ -n "$(worker_pid 2>/dev/null)" ]] && break; sleep 0.2; done
if [[ $st_benign != succeeded || $st_benign2 != succeeded ]]; then
    # the worker is stuck in the mapping function: end it (it comes back in 5 s)
    psql_q -d postgres -o /dev/null -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'llm_usage collector'"
    sleep 1
    for _ in $(seq 1 100); do [[ -n "$(worker_pid 2>/dev/null)" ]] && break; sleep 0.2; done
fi
psql_q -d postgres -o /dev/null -c "ALTER SYSTEM RESET llm_usage.mapping_timeout" -c "SELECT pg_reload_conf()" 2>/dev/null

# ------ [P4] the owner of a mapping function is someone else than its role
# a2_fnowner (an application's login role) owns a mapping function and lets
# a2_rmapper run it; a2_rmapper may read a table a2_fnowner may not.  Whoever
# owns the function can change its body at any time: if the worker runs it
# as a2_rmapper, its owner gets a2_rmapper's rights.
wq -o /dev/null <<'SQL'
CREATE ROLE a2_fnowner LOGIN IN ROLE llm_usage_app;
CREATE ROLE a2_rmapper NOLOGIN;
CREATE TABLE a2_maps.secret_table (s text);
INSERT INTO a2_maps.secret_table VALUES ('a2-SECRET-row');
GRANT USAGE ON SCHEMA a2_maps TO a2_rmapper;
GRANT SELECT ON a2_maps.secret_table TO a2_rmapper;
CREATE SCHEMA a2own AUTHORIZATION a2_fnowner;
SQL
as_user "$PGBIN/psql" -X -q -U a2_fnowner -d "$WDB" -o /dev/null <<'SQL'
CREATE TABLE a2own.loot (s text);
GRANT INSERT ON a2own.loot TO a2_rmapper;
GRANT USAGE ON SCHEMA a2own TO a2_rmapper;
CREATE FUNCTION a2own.map(page jsonb, source_id bigint) RETURNS SETOF llm_usage.usage_source_row
LANGUAGE plpgsql AS $$ BEGIN RETURN; END $$;
GRANT EXECUTE ON FUNCTION a2own.map(jsonb, bigint) TO a2_rmapper;
SQL
regout=$(wq -c '\set VERBOSITY verbose' -c "SELECT llm_usage.add_usage_source('a2_owned', 'a2_src', '$SIM', '/metrics/api-usage?from={from}&to={to}&limit=31',
        'a2own.map(jsonb,bigint)', 'a2_rmapper', auth => 'bearer', secret => 'svc-a2-secret-bearer-0003')" 2>&1 | grep -o 'ERROR: .*')
s_owned=$(wq -c "SELECT id FROM llm_usage.usage_sources WHERE name = 'a2_owned'")
check "[P4] registering a mapping function whose owner (a2_fnowner) may not act as its role (a2_rmapper) is refused (${regout:-registered})" \
    test -z "$s_owned" -a -n "$(grep -E '42501|owned by' <<<"$regout")"
if [[ -z $s_owned ]]; then
    # registered with a function of a role that may (a superuser's), then given to a2_fnowner
    wq -o /dev/null -c "ALTER FUNCTION a2own.map(jsonb, bigint) OWNER TO postgres"
    bind_call "SELECT llm_usage.add_usage_source('a2_owned', 'a2_src', '$SIM', '/metrics/api-usage?from={from}&to={to}&limit=31',
        'a2own.map(jsonb,bigint)', 'a2_rmapper', auth => 'bearer', secret => :key)" "svc-a2-secret-bearer-0003" -d "$WDB" >/dev/null
    wq -o /dev/null -c "ALTER FUNCTION a2own.map(jsonb, bigint) OWNER TO a2_fnowner"
    s_owned=$(wq -c "SELECT id FROM llm_usage.usage_sources WHERE name = 'a2_owned'")
fi
[[ -n $s_owned ]] || fail "could not register source a2_owned"
# the owner turns the function into a thief
as_user "$PGBIN/psql" -X -q -U a2_fnowner -d "$WDB" -o /dev/null <<'SQL'
CREATE OR REPLACE FUNCTION a2own.map(page jsonb, source_id bigint) RETURNS SETOF llm_usage.usage_source_row
LANGUAGE plpgsql AS $$ BEGIN INSERT INTO a2own.loot SELECT s FROM a2_maps.secret_table; RETURN; END $$;
SQL
r=$(wq -c "SELECT llm_usage.collect_source_now($s_owned, '2026-10-01', '2026-10-01')")
st=$(wait_run "$r" 30)
err=$(wq -c "SELECT coalesce(error, '') FROM llm_usage.collector_runs WHERE run_id = $r")
loot=$(wq -c "SELECT count(*) FROM a2own.loot")
echo "  the run after a2_fnowner rewrote the function: $st ($err); rows a2_fnowner got from a2_rmapper's table: $loot"
check "[P4] ... and at run time the worker refuses it before calling it: a2_fnowner got nothing ($loot rows)" \
    test "$loot" == 0 -a "$st" == failed -a -n "$(grep 'owned by role "a2_fnowner"' <<<"$err")"
wq -o /dev/null -c "SELECT llm_usage.deactivate_usage_source($s_owned)"
cleanup
if ((failed)); then
    echo "$failed attack(s) got through"
    exit 1
fi
echo "PASS"
