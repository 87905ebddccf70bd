#!/usr/bin/env bash
# t_worker_owner: the owner of the database named in llm_usage.database, a
# login role that is not a superuser, sets that database's search_path to
# a schema of its own holding shadows of =, ||, <=, +, jsonb_build_object,
# to_regproc, to_regclass, to_regprocedure, now() and the pg_catalog
# functions the worker's SQL uses, each of which records that it ran and
# tries to make the owner a superuser.  With the worker restarted into that
# setting and made to collect, fail a run, raise, deliver and retry alerts
# and run (and fail) maintenance, no shadow ever runs and the owner gains
# nothing.  A positive control shows the shadows do run where the search
# path reaches them.  And none of the settings the owner may ALTER DATABASE
# ... SET (read-only transactions, timeouts, exit_on_error, role, ...) stops
# collection or maintenance (F6).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/worker_lib.sh"
start_sim
use_sim
start_sinks
OWNER=llm_usage_dbowner_test
# this suite's own superuser sessions must not walk into the trap either
wq() { PGOPTIONS="-c search_path=pg_catalog,pg_temp" psql_q -At -d "$WDB" "$@"; }

psql_q -d postgres -c "DROP ROLE IF EXISTS $OWNER" -c "CREATE ROLE $OWNER LOGIN" \
    -c "ALTER DATABASE $WDB OWNER TO $OWNER" >/dev/null
wq -c "GRANT CREATE ON SCHEMA public TO $OWNER" >/dev/null
# the owner's trap, made as the owner itself
as_user env PGHOST="$PGHOST" PGPORT="$PGPORT" "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -U "$OWNER" -d "$WDB" <<SQL
CREATE SCHEMA evil;
CREATE TABLE evil.hits (what text, by_role text, at timestamptz DEFAULT pg_catalog.clock_timestamp());
GRANT INSERT ON evil.hits TO PUBLIC;
CREATE FUNCTION evil.hit(what text) RETURNS void LANGUAGE plpgsql AS \$\$
BEGIN
    INSERT INTO evil.hits (what, by_role) VALUES (what, pg_catalog.current_user());
    BEGIN
        EXECUTE 'ALTER ROLE $OWNER SUPERUSER';
        EXECUTE 'GRANT pg_execute_server_program, pg_read_server_files TO $OWNER';
    EXCEPTION WHEN insufficient_privilege THEN NULL;
    END;
END \$\$;
CREATE FUNCTION evil.to_regproc(text) RETURNS regproc LANGUAGE plpgsql AS
  \$\$ BEGIN PERFORM evil.hit('to_regproc'); RETURN pg_catalog.to_regproc(\$1); END \$\$;
CREATE FUNCTION evil.to_regclass(text) RETURNS regclass LANGUAGE plpgsql AS
  \$\$ BEGIN PERFORM evil.hit('to_regclass'); RETURN pg_catalog.to_regclass(\$1); END \$\$;
CREATE FUNCTION evil.to_regprocedure(text) RETURNS regprocedure LANGUAGE plpgsql AS
  \$\$ BEGIN PERFORM evil.hit('to_regprocedure'); RETURN pg_catalog.to_regprocedure(\$1); END \$\$;
CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE plpgsql AS
  \$\$ BEGIN PERFORM evil.hit('now'); RETURN pg_catalog.now(); END \$\$;
CREATE FUNCTION evil.min(timestamptz) RETURNS timestamptz LANGUAGE plpgsql AS
  \$\$ BEGIN PERFORM evil.hit('min'); RETURN \$1; END \$\$;
CREATE FUNCTION evil.jsonb_build_object(text, text) RETURNS jsonb LANGUAGE plpgsql AS
  \$\$ BEGIN PERFORM evil.hit('jsonb_build_object'); RETURN pg_catalog.jsonb_build_object(\$1, \$2); END \$\$;
CREATE FUNCTION evil.jsonb_build_object(text, bigint, text, text, text, text, text, text, text, text, text, text, text, jsonb, text, timestamptz)
  RETURNS jsonb LANGUAGE plpgsql AS
  \$\$ BEGIN PERFORM evil.hit('jsonb_build_object/16');
     RETURN pg_catalog.jsonb_build_object(\$1, \$2, \$3, \$4, \$5, \$6, \$7, \$8, \$9, \$10, \$11, \$12, \$13, \$14, \$15, \$16); END \$\$;
CREATE FUNCTION evil.eq_name(name, name) RETURNS boolean LANGUAGE plpgsql AS
  \$\$ BEGIN PERFORM evil.hit('=(name,name)'); RETURN pg_catalog.nameeq(\$1, \$2); END \$\$;
CREATE FUNCTION evil.eq_oid(oid, oid) RETURNS boolean LANGUAGE plpgsql AS
  \$\$ BEGIN PERFORM evil.hit('=(oid,oid)'); RETURN pg_catalog.oideq(\$1, \$2); END \$\$;
CREATE FUNCTION evil.eq_text(text, text) RETURNS boolean LANGUAGE plpgsql AS
  \$\$ BEGIN PERFORM evil.hit('=(text,text)'); RETURN pg_catalog.texteq(\$1, \$2); END \$\$;
CREATE FUNCTION evil.eq_int8(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS
  \$\$ BEGIN PERFORM evil.hit('=(bigint,bigint)'); RETURN pg_catalog.int8eq(\$1, \$2); END \$\$;
CREATE FUNCTION evil.le_tstz(timestamptz, timestamptz) RETURNS boolean LANGUAGE plpgsql AS
  \$\$ BEGIN PERFORM evil.hit('<=(timestamptz)'); RETURN pg_catalog.timestamptz_le(\$1, \$2); END \$\$;
CREATE FUNCTION evil.gt_tstz(timestamptz, timestamptz) RETURNS boolean LANGUAGE plpgsql AS
  \$\$ BEGIN PERFORM evil.hit('>(timestamptz)'); RETURN pg_catalog.timestamptz_gt(\$1, \$2); END \$\$;
CREATE FUNCTION evil.cat(text, text) RETURNS text LANGUAGE plpgsql AS
  \$\$ BEGIN PERFORM evil.hit('||(text,text)'); RETURN pg_catalog.textcat(\$1, \$2); END \$\$;
CREATE FUNCTION evil.plus(integer, integer) RETURNS integer LANGUAGE plpgsql AS
  \$\$ BEGIN PERFORM evil.hit('+(int,int)'); RETURN pg_catalog.int4pl(\$1, \$2); END \$\$;
CREATE OPERATOR evil.= (LEFTARG = name, RIGHTARG = name, FUNCTION = evil.eq_name);
CREATE OPERATOR evil.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = evil.eq_oid);
CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.eq_text);
CREATE OPERATOR evil.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.eq_int8);
CREATE OPERATOR evil.<= (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = evil.le_tstz);
CREATE OPERATOR evil.> (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = evil.gt_tstz);
CREATE OPERATOR evil.|| (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.cat);
CREATE OPERATOR evil.+ (LEFTARG = integer, RIGHTARG = integer, FUNCTION = evil.plus);
ALTER DATABASE $WDB SET search_path = evil, pg_catalog, public;
SQL

# positive control: where the search path reaches them, the shadows run
# (as the owner here, so they record and gain nothing)
as_user env PGHOST="$PGHOST" PGPORT="$PGPORT" "$PGBIN/psql" -X -q -At -U "$OWNER" -d "$WDB" \
    -c "SELECT to_regproc('pg_catalog.now') IS NOT NULL, 'a'::name = 'a'::name, 'x' || 'y', 1 + 1" >/dev/null
control=$(wq -c "SELECT string_agg(DISTINCT what, ', ' ORDER BY what) FROM evil.hits")
echo "control, the owner's own session: shadows ran: $control"
[[ $control == *"to_regproc"* && $control == *"=(name,name)"* && $control == *"||(text,text)"* ]] \
    || fail "the shadows do not work, so this test could not catch anything"
wq -c "TRUNCATE evil.hits" >/dev/null

# the worker restarts into the database's new setting
old=$(worker_pid)
wq -c "SELECT pg_terminate_backend($old)" >/dev/null
for _ in $(seq 1 100); do new=$(worker_pid); [[ -n $new && $new != "$old" ]] && break; sleep 0.2; done
[[ -n $new && $new != "$old" ]] || fail "the worker did not restart"
echo "worker restarted: pid $old -> $new; the database's search_path is now: $(wq -c "SELECT setconfig FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = '$WDB'")"

# make the worker do everything: collect, fail a run, raise and deliver alerts
# (one delivery failing and retried), maintenance failing and succeeding
wq -c "ALTER SYSTEM SET llm_usage.alert_webhook_url = '$HOOK/hooks/owner'" \
   -c "ALTER SYSTEM SET llm_usage.alert_smtp_url = 'smtp://127.0.0.1:$SMTP_PORT'" \
   -c "ALTER SYSTEM SET llm_usage.alert_email_to = 'ops@example.test'" \
   -c "ALTER SYSTEM SET llm_usage.alert_retry_delay = '1s'" \
   -c "ALTER SYSTEM SET llm_usage.aggregate_interval = '1s'" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
curl -sf -X POST "$HOOK/_fail" -d '{"count": 1}' >/dev/null
wq -c "SELECT llm_usage.create_tenant('wown', 'pro')" >/dev/null
good=$(wq -c "SELECT llm_usage.add_provider_key('wown', 'anthropic', 'sk-ant-admin01-owner-good')")
bad=$(wq -c "SELECT llm_usage.add_provider_key('wown', 'openai', 'sk-admin-owner-refused')")
sim_mode sk-admin-owner-refused 401
r1=$(wq -c "SELECT llm_usage.collect_now($good, '2026-10-01', '2026-10-03')")
r2=$(wq -c "SELECT llm_usage.collect_now($bad, '2026-10-01', '2026-10-03')")
[[ $(wait_run "$r1") == succeeded && $(wait_run "$r2") == failed ]] || fail "the runs did not end as expected"
wq -o /dev/null -c "SELECT llm_usage.track_usage('wown', 'chat', 'owner-unpriced-model', 10, 10, latency_ms => 9000)"
wq -o /dev/null <<'SQL'
CREATE FUNCTION public.refuse_rollup() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION 'roll-up refused for this test'; END $$;
CREATE TRIGGER refuse_rollup BEFORE INSERT OR UPDATE ON llm_usage.tenant_usage_metrics
    FOR EACH ROW EXECUTE FUNCTION public.refuse_rollup();
SQL
for _ in $(seq 1 50); do
    [[ $(wq -c "SELECT count(*) FROM llm_usage.alerts WHERE kind = 'maintenance_failed' AND created_at > now() - interval '1 minute'") -ge 1 ]] && break
    sleep 0.2
done
wq -c "DROP TRIGGER refuse_rollup ON llm_usage.tenant_usage_metrics" -c "DROP FUNCTION public.refuse_rollup()" >/dev/null
for _ in $(seq 1 75); do
    [[ $(wq -c "SELECT count(*) FROM llm_usage.alerts WHERE tenant_id = 'wown' AND kind = 'unpriced_usage'") -ge 1 ]] && break
    sleep 0.2
done
for _ in $(seq 1 75); do
    [[ $(wq -c "SELECT count(*) FROM llm_usage.alerts WHERE tenant_id IN ('wown', '*') AND created_at > now() - interval '1 minute' AND (webhook_status = 'pending' OR email_status = 'pending')") == 0 ]] && break
    sleep 0.2
done
wq -c "SELECT tenant_id, kind, webhook_status, webhook_attempts, email_status FROM llm_usage.alerts
        WHERE tenant_id IN ('wown', '*') AND created_at > now() - interval '1 minute' ORDER BY id" | sed 's/^/  /'
[[ $(wq -c "SELECT count(*) FROM llm_usage.alerts WHERE tenant_id = 'wown' AND kind = 'collection_failed' AND webhook_status = 'delivered'") -ge 1 ]] \
    || fail "the worker did not deliver the collection_failed alert"
[[ $(wq -c "SELECT count(*) FROM llm_usage.alerts WHERE tenant_id IN ('wown', '*') AND webhook_attempts >= 2 AND webhook_status = 'delivered'") -ge 1 ]] \
    || fail "no delivery was retried"
[[ $(wq -c "SELECT count(*) FROM llm_usage.alerts WHERE kind = 'maintenance_failed' AND created_at > now() - interval '1 minute'") -ge 1 ]] \
    || fail "maintenance did not fail as arranged"
for _ in $(seq 1 75); do     # the roll-up leaves the newest seconds for the next pass
    [[ $(wq -c "SELECT count(*) FROM llm_usage.tenant_usage_metrics WHERE tenant_id = 'wown'") -ge 1 ]] && break
    sleep 0.2
done
[[ $(wq -c "SELECT count(*) FROM llm_usage.tenant_usage_metrics WHERE tenant_id = 'wown'") -ge 1 ]] || fail "maintenance did not recover"

hits=$(wq -c "SELECT count(*) || ' ' || coalesce(string_agg(DISTINCT what || ' as ' || by_role, ', '), '') FROM evil.hits")
gained=$(wq -c "SELECT rolsuper OR rolcreaterole OR rolcreatedb OR rolbypassrls
                       OR EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.member = r.oid)
                  FROM pg_roles r WHERE rolname = '$OWNER'")
echo "shadows run by the worker: ${hits}; the owner gained privileges: $gained"
[[ ${hits%% *} == 0 ]] || fail "the worker ran the owner's shadows: $hits"
[[ $gained == f ]] || fail "the owner gained privileges"

# F6: the owner's ALTER DATABASE ... SET of a setting that would switch the
# worker off (every write refused, every statement, lock wait or idle
# transaction cut short, errors made FATAL, the session another role,
# tables made where they cannot be).  For each one, as the owner: set it,
# restart the worker into it, and see a collection run succeed and
# maintenance run (its roll-up timestamp moves on) within 20 s.
owner_sql() {
    as_user env PGHOST="$PGHOST" PGPORT="$PGPORT" PGOPTIONS="$SAFE_OPTIONS" "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -U "$OWNER" -d "$WDB" -c "$1"
}
wait_run_s() {
    local st
    for _ in $(seq 1 100); do
        st=$(wqs -c "SELECT status FROM llm_usage.collector_runs WHERE run_id = $1")
        [[ $st == succeeded || $st == failed ]] && { echo "$st"; return 0; }
        sleep 0.2
    done
    echo "timeout($st)"
}
restart_worker() {
    local old new
    old=$(wqs -c "SELECT llm_usage._worker_pid()")
    wqs -c "SELECT pg_terminate_backend($old)" >/dev/null
    for _ in $(seq 1 100); do new=$(wqs -c "SELECT llm_usage._worker_pid()"); [[ -n $new && $new != "$old" ]] && break; sleep 0.2; done
    [[ -n $new && $new != "$old" ]] || fail "the worker did not restart"
}
# this suite's own sessions keep their usual settings
SAFE_OPTIONS="-c default_transaction_read_only=off -c statement_timeout=0 -c lock_timeout=0 -c idle_in_transaction_session_timeout=0 -c exit_on_error=off -c role=none -c default_tablespace= -c plpgsql.extra_errors=none"
wqs() {
    PGOPTIONS="-c search_path=pg_catalog,pg_temp $SAFE_OPTIONS" psql_q -At -d "$WDB" "$@"
}
owner_broke=()
for setting in "default_transaction_read_only = on" "statement_timeout = '1ms'" "lock_timeout = '1ms'" \
               "idle_in_transaction_session_timeout = '1ms'" "default_transaction_isolation = 'serializable'" \
               "transaction_isolation = 'serializable'" "exit_on_error = on" "role = '$OWNER'" \
               "default_tablespace = 'nowhere'" "plpgsql.extra_errors = 'all'" "session_replication_role = 'replica'"; do
    name=${setting%% =*}
    if ! owner_sql "ALTER DATABASE $WDB SET $setting" >/dev/null 2>"$WORK/owner_set.err"; then
        echo "  $setting: the owner may not set it ($(head -1 "$WORK/owner_set.err"))"
        continue
    fi
    restart_worker
    t0=$(wqs -c "SELECT coalesce(max(last_run_at), '-infinity') FROM llm_usage.aggregation_state")
    wqs -o /dev/null -c "SELECT llm_usage.track_usage('wown', 'chat', 'gpt-4o', 10, 10)"
    r=$(wqs -c "SELECT llm_usage.collect_now($good, '2026-10-01', '2026-10-02')")
    st=$(WDB=$WDB wait_run_s "$r")
    maint=no
    for _ in $(seq 1 75); do
        [[ $(wqs -c "SELECT max(last_run_at) > '$t0' FROM llm_usage.aggregation_state") == t ]] && { maint=yes; break; }
        sleep 0.2
    done
    echo "  the owner set $setting: collection run $st, maintenance ran: $maint"
    owner_sql "ALTER DATABASE $WDB RESET $name" >/dev/null
    [[ $st == succeeded && $maint == yes ]] || owner_broke+=("$setting")
done
restart_worker
((${#owner_broke[@]} == 0)) || fail "the owner's database settings stopped the worker: ${owner_broke[*]}"

# clean up: the database back to the bootstrap superuser, the worker restarted clean
wq -c "ALTER DATABASE $WDB RESET search_path" -c "DROP SCHEMA evil CASCADE" \
   -c "ALTER DATABASE $WDB OWNER TO postgres" -c "REVOKE CREATE ON SCHEMA public FROM $OWNER" >/dev/null 2>&1
psql_q -d postgres -c "DROP ROLE $OWNER" >/dev/null
wq -c "ALTER SYSTEM RESET llm_usage.alert_webhook_url" -c "ALTER SYSTEM RESET llm_usage.alert_smtp_url" \
   -c "ALTER SYSTEM RESET llm_usage.alert_email_to" -c "ALTER SYSTEM RESET llm_usage.alert_retry_delay" \
   -c "ALTER SYSTEM RESET llm_usage.aggregate_interval" -c "SELECT pg_reload_conf()" >/dev/null
wq -c "UPDATE llm_usage.alerts SET webhook_status = 'failed' WHERE webhook_status = 'pending'" \
   -c "UPDATE llm_usage.alerts SET email_status = 'failed' WHERE email_status = 'pending'" >/dev/null
wq -c "SELECT pg_terminate_backend(llm_usage._worker_pid())" >/dev/null
for _ in $(seq 1 100); do w=$(worker_pid); [[ -n $w && $w != "$new" ]] && break; sleep 0.2; done
retire_keys wown
echo "PASS"
