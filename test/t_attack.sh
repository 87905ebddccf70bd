#!/usr/bin/env bash
# t_attack: the extension attacked by real login roles (issue 9).  Each
# attack is a numbered check; every check runs, and the suite fails if any
# attack got through.
#
# Roles (all LOGIN, cluster-wide, removed at the end):
#   atk_mallory   llm_usage_app bound to tenant atk_acme; owns schema mal
#                 holding shadows of nextval(text), now(), format,
#                 jsonb_build_object, current_setting, date_trunc,
#                 to_regclass, to_regproc and the operators =, ||, <; her
#                 search_path puts mal before pg_catalog
#   atk_rita      llm_usage_reader bound to tenant atk_beta, with the same
#                 hostile search_path
#   atk_unbound   llm_usage_app and llm_usage_reader, bound to no tenant
#   atk_nobody    no llm_usage role at all
#   atk_alice     llm_usage_admin (not a superuser)
#   atk_wrapper   NOLOGIN owner of SECURITY DEFINER wrappers, no tenant
#   atk_dbowner   non-superuser owner of the worker's database, which
#                 sets that database's search_path to its own schema first
#
# Every shadow bumps a sequence (not rolled back by an error), logs, and
# tries ALTER ROLE ... SUPERUSER: a shadow that ran anywhere, as anyone, is
# a failure, and so is any role that became a superuser.
#
#   atk_carol     llm_usage_app and llm_usage_reader, bound to tenant
#                 ATK_BETA (the victim's id in upper case), with a
#                 case-insensitive ICU collation of her own
#
# Later sections: [C] collations, [E] EXPLAIN ANALYZE as an oracle, [M]
# maintenance beside an open application transaction, [K] provider keys and
# the real server log, [U] a flood of unpriced model names, [D] an admin's
# direct writes, [R] grants of dropped roles, [O] the schema llm_usage made
# by a database owner before the install or update.
#
# One check guards code that another change fixes: [W1] (the worker's own
# session search_path, src/worker.c and src/collector.c); it fails until
# that lands.  [S1]/[S2] (the C track_usage's SPI as the owner) and [I2]
# (the session caches keyed by the caller) guard src/track.c,
# src/session_cache.c and src/quota.c.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/worker_lib.sh"

ADB=llm_usage_attack
A="$WORK/attack.$$"
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
asrole() {      # asrole ROLE DB FILE-OR-SQL: run as a login role, errors go on
    local role=$1 db=$2 what=$3
    if [[ -f $what ]]; then
        as_user "$PGBIN/psql" -X -At -U "$role" -d "$db" -f "$what" 2>&1
    else
        as_user "$PGBIN/psql" -X -At -U "$role" -d "$db" -c "$what" 2>&1
    fi
}
sqlfile() { local f="$A/$1.sql"; cat >"$f"; chown "$TEST_USER" "$f"; echo "$f"; }
hits() { sq -c "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM mal.hits"; }
superusers() { sq -c "SELECT coalesce(string_agg(rolname, ','), '') FROM pg_roles WHERE rolname LIKE 'atk\_%' AND rolsuper"; }
# a role that did become a superuser is demoted again, so that one hole
# does not hide (or fake) the result of the checks after it
demote() { psql_q -d postgres -o /dev/null -c "DO \$\$ DECLARE r text; BEGIN FOR r IN SELECT rolname FROM pg_roles WHERE rolname LIKE 'atk\\_%' AND rolsuper LOOP EXECUTE format('ALTER ROLE %I NOSUPERUSER', r); END LOOP; END \$\$"; }
no_superuser() { local s; s=$(superusers); demote; [[ -z $s ]] || { echo "  became superuser: $s"; return 1; }; }
no_new_hits() { local now; now=$(hits); [[ $now == "$1" ]] || { echo "  shadows ran $((now - $1)) time(s):"; sq -c "SELECT name || ' as ' || who || ' x' || count(*) FROM mal.hitlog WHERE at > now() - interval '10 minutes' GROUP BY name, who ORDER BY 1"; sq -o /dev/null -c "TRUNCATE mal.hitlog"; return 1; }; }

cleanup() {
    psql_q -d postgres -o /dev/null 2>/dev/null <<'SQL'
ALTER DATABASE llm_usage_worker RESET search_path;
ALTER DATABASE llm_usage_worker OWNER TO postgres;
SQL
    psql_q -d "$WDB" -o /dev/null -c "DROP SCHEMA IF EXISTS evil CASCADE" 2>/dev/null
    psql_q -d postgres -o /dev/null -c "DROP DATABASE IF EXISTS $ADB" -c "DROP DATABASE IF EXISTS atk_schema_install" \
        -c "DROP DATABASE IF EXISTS atk_schema_update" 2>/dev/null
    psql_q -d postgres -o /dev/null 2>/dev/null <<'SQL'
DO $$
DECLARE r text;
BEGIN
    FOR r IN SELECT rolname FROM pg_roles WHERE rolname LIKE 'atk\_%' LOOP
        EXECUTE format('ALTER ROLE %I NOSUPERUSER', r);
        EXECUTE format('DROP OWNED BY %I CASCADE', r);
        EXECUTE format('DROP ROLE %I', r);
    END LOOP;
END $$;
SQL
}
cleanup
fresh_db "$ADB"

# ---------------------------------------------------------------- setup
psql_q -d "$ADB" -o /dev/null <<'SQL'
CREATE EXTENSION llm_usage;
CREATE ROLE atk_mallory LOGIN IN ROLE llm_usage_app;
CREATE ROLE atk_rita LOGIN IN ROLE llm_usage_reader;
CREATE ROLE atk_unbound LOGIN IN ROLE llm_usage_app, llm_usage_reader;
CREATE ROLE atk_nobody LOGIN;
CREATE ROLE atk_alice LOGIN IN ROLE llm_usage_admin;
CREATE ROLE atk_wrapper NOLOGIN IN ROLE llm_usage_app, llm_usage_reader;
CREATE ROLE atk_dbowner LOGIN;
GRANT CREATE ON DATABASE llm_usage_attack TO atk_mallory;
SELECT llm_usage.create_tenant('atk_acme', 'pro');
SELECT llm_usage.create_tenant('atk_beta', 'pro');
SELECT llm_usage.grant_tenant_access('atk_mallory', 'atk_acme');
SELECT llm_usage.grant_tenant_access('atk_rita', 'atk_beta');
-- the victim's figures, distinctive enough to be found anywhere they leak
SELECT llm_usage.grant_credits('atk_beta', 98765.4321, 'prepaid');
SELECT llm_usage.track_usage('atk_beta', 'chat', 'gpt-4o', 7777777, 4321, latency_ms => 4321,
                             request_id => 'beta-1', occurred_at => now() - interval '1 minute');
SELECT llm_usage.track_usage('atk_beta', 'chat', 'beta-secret-model', 7777777, 1, occurred_at => now() - interval '1 minute');
SELECT llm_usage.track_usage('atk_acme', 'chat', 'acme-secret-model', 6666666, 1, occurred_at => now() - interval '1 minute');
SELECT llm_usage.set_custom_quota('atk_beta', 'embeddings', 5, 'day');
SELECT llm_usage.enforce_quota('atk_beta', 'embeddings', 9);       -- a real denial of the victim
SELECT llm_usage.aggregate_usage_metrics('hourly');
SELECT llm_usage.aggregate_usage_metrics('daily');
SELECT llm_usage.check_alerts();
-- a run-time partition next to the default one
SELECT llm_usage._ensure_partitions(current_date, current_date);
SQL
# the attacker's schema: every shadow records that it ran and tries to
# make her a superuser
as_user "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -U atk_mallory -d "$ADB" -o /dev/null <<'SQL' || fail "could not set up the attacker's schema"
CREATE SCHEMA mal;
GRANT USAGE ON SCHEMA mal TO PUBLIC;
CREATE SEQUENCE mal.hits;
GRANT USAGE, SELECT, UPDATE ON SEQUENCE mal.hits TO PUBLIC;
CREATE TABLE mal.hitlog (name text, who text, at timestamptz DEFAULT pg_catalog.clock_timestamp());
GRANT INSERT, SELECT ON mal.hitlog TO PUBLIC;
CREATE TABLE mal.loot (t text);
GRANT INSERT ON mal.loot TO PUBLIC;
CREATE FUNCTION mal._hit(n text) RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    PERFORM pg_catalog.nextval('mal.hits'::pg_catalog.regclass);
    RAISE WARNING 'SHADOW % ran as %', n, current_user;
    INSERT INTO mal.hitlog (name, who) VALUES (n, current_user);
    BEGIN
        EXECUTE 'ALTER ROLE atk_mallory SUPERUSER';
    EXCEPTION WHEN others THEN NULL;
    END;
END $$;
GRANT EXECUTE ON FUNCTION mal._hit(text) TO PUBLIC;
CREATE FUNCTION mal.nextval(text) RETURNS bigint LANGUAGE plpgsql AS
$$ BEGIN PERFORM mal._hit('nextval(text)'); RETURN pg_catalog.nextval($1::pg_catalog.regclass); END $$;
CREATE FUNCTION mal.now() RETURNS timestamptz LANGUAGE plpgsql AS
$$ BEGIN PERFORM mal._hit('now()'); RETURN pg_catalog.now(); END $$;
CREATE FUNCTION mal.format(text) RETURNS text LANGUAGE plpgsql AS
$$ BEGIN PERFORM mal._hit('format(text)'); RETURN pg_catalog.format($1); END $$;
CREATE FUNCTION mal.format(text, text) RETURNS text LANGUAGE plpgsql AS
$$ BEGIN PERFORM mal._hit('format(text,text)'); RETURN pg_catalog.format($1, $2); END $$;
CREATE FUNCTION mal.format(text, text, text) RETURNS text LANGUAGE plpgsql AS
$$ BEGIN PERFORM mal._hit('format(text,text,text)'); RETURN pg_catalog.format($1, $2, $3); END $$;
CREATE FUNCTION mal.format(text, anyelement) RETURNS text LANGUAGE plpgsql AS
$$ BEGIN PERFORM mal._hit('format(text,anyelement)'); RETURN pg_catalog.format($1, $2); END $$;
CREATE FUNCTION mal.jsonb_build_object(text, text) RETURNS jsonb LANGUAGE plpgsql AS
$$ BEGIN PERFORM mal._hit('jsonb_build_object(text,text)'); RETURN pg_catalog.jsonb_build_object($1, $2); END $$;
CREATE FUNCTION mal.jsonb_build_object(text, anyelement) RETURNS jsonb LANGUAGE plpgsql AS
$$ BEGIN PERFORM mal._hit('jsonb_build_object(text,anyelement)'); RETURN pg_catalog.jsonb_build_object($1, $2); END $$;
CREATE FUNCTION mal.jsonb_build_object(text, anyelement, text, anyelement) RETURNS jsonb LANGUAGE plpgsql AS
$$ BEGIN PERFORM mal._hit('jsonb_build_object(4)'); RETURN pg_catalog.jsonb_build_object($1, $2, $3, $4); END $$;
CREATE FUNCTION mal.current_setting(text) RETURNS text LANGUAGE plpgsql AS
$$ BEGIN PERFORM mal._hit('current_setting(text)'); RETURN pg_catalog.current_setting($1); END $$;
CREATE FUNCTION mal.current_setting(text, boolean) RETURNS text LANGUAGE plpgsql AS
$$ BEGIN PERFORM mal._hit('current_setting(text,boolean)'); RETURN pg_catalog.current_setting($1, $2); END $$;
CREATE FUNCTION mal.date_trunc(text, timestamptz) RETURNS timestamptz LANGUAGE plpgsql AS
$$ BEGIN PERFORM mal._hit('date_trunc(text,timestamptz)'); RETURN pg_catalog.date_trunc($1, $2); END $$;
CREATE FUNCTION mal.date_trunc(text, timestamp) RETURNS timestamp LANGUAGE plpgsql AS
$$ BEGIN PERFORM mal._hit('date_trunc(text,timestamp)'); RETURN pg_catalog.date_trunc($1, $2); END $$;
CREATE FUNCTION mal.date_trunc(text, timestamptz, text) RETURNS timestamptz LANGUAGE plpgsql AS
$$ BEGIN PERFORM mal._hit('date_trunc(text,timestamptz,text)'); RETURN pg_catalog.date_trunc($1, $2, $3); END $$;
CREATE FUNCTION mal.to_regclass(text) RETURNS regclass LANGUAGE plpgsql AS
$$ BEGIN PERFORM mal._hit('to_regclass(text)'); RETURN pg_catalog.to_regclass($1); END $$;
CREATE FUNCTION mal.to_regproc(text) RETURNS regproc LANGUAGE plpgsql AS
$$ BEGIN PERFORM mal._hit('to_regproc(text)'); RETURN pg_catalog.to_regproc($1); END $$;
-- operators: = on the types the extension compares, || and <
DO $ops$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['text', 'bigint', 'integer', 'numeric', 'name', 'oid', 'timestamptz', 'boolean', 'jsonb'] LOOP
        EXECUTE pg_catalog.format($f$CREATE FUNCTION mal.eq_%1$s(%2$s, %2$s) RETURNS boolean LANGUAGE plpgsql AS
            $b$ BEGIN PERFORM mal._hit('=(%2$s)'); RETURN $1 OPERATOR(pg_catalog.=) $2; END $b$$f$,
            pg_catalog.replace(t, ' ', '_'), t);
        EXECUTE pg_catalog.format('CREATE OPERATOR mal.= (LEFTARG = %1$s, RIGHTARG = %1$s, FUNCTION = mal.eq_%2$s)',
                                  t, pg_catalog.replace(t, ' ', '_'));
    END LOOP;
    FOREACH t IN ARRAY ARRAY['text', 'bigint', 'integer', 'numeric', 'timestamptz'] LOOP
        EXECUTE pg_catalog.format($f$CREATE FUNCTION mal.lt_%1$s(%1$s, %1$s) RETURNS boolean LANGUAGE plpgsql AS
            $b$ BEGIN PERFORM mal._hit('<(%1$s)'); RETURN $1 OPERATOR(pg_catalog.<) $2; END $b$$f$, t);
        EXECUTE pg_catalog.format('CREATE OPERATOR mal.< (LEFTARG = %1$s, RIGHTARG = %1$s, FUNCTION = mal.lt_%1$s)', t);
    END LOOP;
    FOREACH t IN ARRAY ARRAY['text', 'jsonb'] LOOP
        EXECUTE pg_catalog.format($f$CREATE FUNCTION mal.cat_%1$s(%1$s, %1$s) RETURNS %1$s LANGUAGE plpgsql AS
            $b$ BEGIN PERFORM mal._hit('||(%1$s)'); RETURN $1 OPERATOR(pg_catalog.||) $2; END $b$$f$, t);
        EXECUTE pg_catalog.format('CREATE OPERATOR mal.|| (LEFTARG = %1$s, RIGHTARG = %1$s, FUNCTION = mal.cat_%1$s)', t);
    END LOOP;
END
$ops$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA mal TO PUBLIC;
SQL
psql_q -d postgres -o /dev/null -c "ALTER ROLE atk_mallory SET search_path = mal, pg_catalog, public" \
    -c "ALTER ROLE atk_rita SET search_path = mal, pg_catalog, public" \
    -c "ALTER ROLE atk_unbound SET search_path = mal, pg_catalog, public" \
    -c "ALTER ROLE atk_alice SET search_path = mal, pg_catalog, public"
# the shadows do catch what an unpinned name would resolve to
probe=$(asrole atk_mallory "$ADB" "SELECT 'a'::text = 'a'::text")
[[ $probe == *"SHADOW =(text) ran as atk_mallory"* ]] || fail "the shadows are not reached: $probe"
sq -c "SELECT setval('mal.hits', 1, false)" -c "TRUNCATE mal.hitlog" >/dev/null
h0=$(hits)

# ------------------------------------------------ [S1] the issue's example
out=$(asrole atk_mallory "$ADB" "SELECT llm_usage.track_usage('atk_acme', 'chat', 'gpt-4o', 10, 5, request_id => 'r1') > 0")
echo "  C track_usage with a request_id in a fresh session: $out" | head -3
check "[S1] C track_usage under a hostile search_path runs no shadow (nextval(text) as the owner)" no_new_hits "$h0"
check "[S1] ... and the app role is not a superuser" no_superuser
h0=$(hits)

# ------------------------- [S2] every function the app and reader may execute
app=$(sqlfile app_calls <<'SQL'
SELECT * FROM llm_usage.enforce_quota('atk_acme', 'api_calls', 1);
SELECT * FROM llm_usage.enforce_quota('atk_acme', 'tokens', 1000000000000);
SELECT * FROM llm_usage.enforce_quota('atk_acme', 'no_such_type', 1);
SELECT * FROM llm_usage.enforce_quota('atk_beta', 'api_calls', 1);
SELECT * FROM llm_usage.enforce_quotas('atk_acme', '{"tokens": 10, "api_calls": 1}');
SELECT * FROM llm_usage.enforce_quotas('atk_acme', '{"tokens": 1000000000000}');
SELECT * FROM llm_usage.enforce_quotas('atk_beta', '{"tokens": 1}');
SELECT * FROM llm_usage.enforce_quota('atk_acme', 'tokens', 10, 'rsv-1');
SELECT * FROM llm_usage.enforce_quota('atk_acme', 'api_calls', 1, 'rsv-1');
SELECT * FROM llm_usage.enforce_quotas('atk_acme', '{"tokens": 10, "api_calls": 1}', 'rsv-2');
SELECT * FROM llm_usage.enforce_quota('atk_beta', 'tokens', 1, 'rsv-1');
SELECT * FROM llm_usage._enforce_quota_sql('atk_acme', 'tokens', 1, 'rsv-3');
SELECT llm_usage.track_usage('atk_acme', 'chat', 'gpt-4o', 3, 2, request_id => 'rsv-1');
SELECT llm_usage.track_usage('atk_acme', 'chat', 'gpt-4o', 3, 2, request_id => 'rsv-2');
SELECT llm_usage.track_response_usage('atk_acme', 'openai', 'gpt-4o', '{"prompt_tokens": 1}', request_id => 'rsv-3');
SELECT * FROM llm_usage.quota_status('atk_acme');
SELECT * FROM llm_usage.quota_status('atk_beta');
SELECT * FROM llm_usage.today_usage('atk_acme');
SELECT * FROM llm_usage.today_usage('atk_beta');
SELECT llm_usage.calculate_cost('gpt-4o', 1000, 100, 10, '2026-06-01 00:00+00', 5);
SELECT llm_usage.calculate_cost('no-such-model', 1, 1, 0, '2026-06-01 00:00+00', 0);
SELECT llm_usage.credit_balance('atk_acme');
SELECT llm_usage.credit_balance('atk_beta');
SELECT * FROM llm_usage._quota_counters('atk_acme');
SELECT * FROM llm_usage._quota_counters(NULL);
SELECT llm_usage.track_usage('atk_acme', 'chat', 'gpt-4o', 10, 5, 1, 120, 200, 'success', '{"k": "v"}', 'app-1', pg_catalog.now(), 0);
SELECT llm_usage.track_usage('atk_acme', 'chat', 'gpt-4o', 10, 5, 1, 120, 200, 'success', '{"k": "v"}', 'app-1', pg_catalog.now(), 0);
SELECT llm_usage.track_usage('atk_acme', 'embedding', 'unpriced-x', 10, 0, 0, NULL, 429, 'rate_limited', '{}', NULL, pg_catalog.now(), 0);
SELECT llm_usage.track_usage('atk_acme', 'chat', NULL, 0, 0, 0, 5, 500, 'failure', '{}', 'app-2', '2026-01-15 00:00+00', 0);
SELECT llm_usage.track_usage('atk_acme', 'chat', 'gpt-4o', -1, 0, 0, 5, 200, 'success', '{}', 'app-3', pg_catalog.now(), 0);
SELECT llm_usage.track_usage('atk_beta', 'chat', 'gpt-4o', 1, 1, 0, 5, 200, 'success', '{}', 'app-4', pg_catalog.now(), 0);
SELECT llm_usage.track_usage('atk_acme', 'My Own Type', 'gpt-4o', 10, 5, 1, 120, 200, 'success', '{}', 'app-7', pg_catalog.now(), 0);
SELECT llm_usage.track_usage('atk_acme', E'bad\ttype', 'gpt-4o', 10, 5, 1, 120, 200, 'success', '{}', 'app-8', pg_catalog.now(), 0);
SELECT llm_usage.set_event_type('chat', NULL);
SELECT llm_usage.remove_event_type('chat');
SELECT count(*) FROM llm_usage.event_type_counters;
SELECT llm_usage.audit('atk_acme', 'usage', 'export', 'success', '{"rows": 1}');
SELECT llm_usage.audit('atk_beta', 'usage', 'export', 'success', '{}');
SELECT llm_usage.deduct_credits('atk_acme', 1, 'use', 'ref-1');
SELECT llm_usage.deduct_credits('atk_beta', 1, 'use', 'ref-2');
SELECT * FROM llm_usage.enforce_quota('atk_acme', 'credits', 0.01, 'cr-1');
SELECT * FROM llm_usage.enforce_quota('atk_beta', 'credits', 0.01);
SELECT * FROM llm_usage.credit_ledger_for('atk_acme', 10);
SELECT * FROM llm_usage.credit_ledger_for('atk_beta');
SELECT * FROM llm_usage._enforce_quota_sql('atk_acme', 'api_calls', 1);
SELECT * FROM llm_usage._enforce_quota_sql('atk_beta', 'api_calls', 1);
SELECT llm_usage._track_usage_sql('atk_acme', 'chat', 'gpt-4o', 1, 1, 0, 1, 200, 'success', '{}', 'app-5', pg_catalog.now(), 0);
SELECT llm_usage._track_usage_sql('atk_beta', 'chat', 'gpt-4o', 1, 1, 0, 1, 200, 'success', '{}', 'app-6', pg_catalog.now(), 0);
SELECT * FROM llm_usage._quota_configs(NULL, 100);
SELECT * FROM llm_usage._quota_configs('atk_acme', 1);
SELECT * FROM llm_usage._quota_configs('atk_beta', 1);
SELECT * FROM llm_usage._plan_quotas();
SELECT * FROM llm_usage._quota_table_counters('atk_acme');
SELECT * FROM llm_usage._quota_table_counters('atk_beta');
SELECT * FROM llm_usage.build_info();
SELECT llm_usage._caller(), llm_usage._is_admin(), llm_usage._my_tenants(), llm_usage._can_access('atk_beta');
SELECT count(*) FROM llm_usage.quota_counters;
SELECT count(*) FROM llm_usage.provider_keys;
SELECT count(*) FROM llm_usage.reconciliation;
SELECT count(*) FROM llm_usage.model_prices;
SELECT llm_usage.track_response_usage('atk_acme', 'openai', 'gpt-4o', '{"prompt_tokens": 10, "completion_tokens": 5}');
SELECT llm_usage.track_response_usage('atk_acme', 'anthropic', 'claude-sonnet-4-5', '{"input_tokens": 1, "output_tokens": 1, "cache_read_input_tokens": 5, "service_tier": "standard"}');
SELECT llm_usage.track_response_usage('atk_beta', 'openai', 'gpt-4o', '{"prompt_tokens": 1}');
SELECT * FROM llm_usage.price_reconciliation('2026-01-01', '2026-12-31', 'atk_acme');
SELECT * FROM llm_usage.price_reconciliation(NULL, NULL, 'atk_beta');
SELECT count(*) FROM llm_usage._provider_keys();
SELECT count(*) FROM llm_usage._reconciliation();
SQL
)
reader=$(sqlfile reader_calls <<'SQL'
SELECT * FROM llm_usage.tenant_usage('atk_beta', '2026-01-01 00:00+00', '2100-01-01 00:00+00', 'hourly');
SELECT * FROM llm_usage.tenant_usage('atk_acme', '2026-01-01 00:00+00', '2100-01-01 00:00+00', 'daily');
SELECT * FROM llm_usage.top_consumers('cost', 'daily', 10);
SELECT * FROM llm_usage.top_consumers('tokens', 'hourly', 5);
SELECT * FROM llm_usage.tenant_events('atk_beta', '2026-01-01 00:00+00', '2100-01-01 00:00+00', 'chat', 100);
SELECT * FROM llm_usage.tenant_events('atk_acme', '2026-01-01 00:00+00', '2100-01-01 00:00+00', NULL, 100);
SELECT llm_usage.usage_overview('atk_beta', '7d');
SELECT llm_usage.usage_overview('atk_acme', '30d');
SELECT * FROM llm_usage.cost_summary('atk_beta');
SELECT * FROM llm_usage.cost_summary(NULL);
SELECT * FROM llm_usage.cost_summary('atk_acme');
SELECT * FROM llm_usage.unpriced_models();
SELECT * FROM llm_usage.audit_trail('atk_beta', 7);
SELECT * FROM llm_usage.audit_trail('atk_acme', 7);
SELECT * FROM llm_usage.failed_operations('atk_beta', 30);
SELECT * FROM llm_usage.security_events('atk_beta', 90);
SELECT llm_usage.audit_report('atk_beta', '2026-01-01 00:00+00', '2100-01-01 00:00+00');
SELECT llm_usage.audit_report('atk_acme', '2026-01-01 00:00+00', '2100-01-01 00:00+00');
SELECT * FROM llm_usage.alert_rules_for('atk_beta');
SELECT * FROM llm_usage.alert_rules_for('atk_acme');
SELECT llm_usage.acknowledge_alert(1);
SELECT llm_usage.acknowledge_alert(999999);
SELECT * FROM llm_usage.quota_status('atk_beta');
SELECT * FROM llm_usage.today_usage('atk_beta');
SELECT llm_usage.calculate_cost('claude-sonnet-4-5', 1000, 100, 10, '2026-06-01 00:00+00', 5);
SELECT llm_usage.credit_balance('atk_beta');
SELECT * FROM llm_usage.credit_ledger_for('atk_beta', 10);
SELECT * FROM llm_usage.credit_ledger_for('atk_acme');
SELECT * FROM llm_usage._quota_counters('atk_beta');
SELECT * FROM llm_usage.build_info();
SELECT llm_usage._caller(), llm_usage._is_admin(), llm_usage._my_tenants(), llm_usage._can_access('atk_acme');
SELECT count(*) FROM llm_usage.focus_export('2026-01-01 00:00+00', '2100-01-01 00:00+00', 'all');
SELECT count(*) FROM llm_usage.focus_export('2026-01-01 00:00+00', '2100-01-01 00:00+00', 'tracked');
SELECT length(llm_usage.usage_report_html('atk_beta', '7d'));
SELECT length(llm_usage.usage_report_html(NULL, '30d'));
SELECT length(llm_usage.usage_report_html('atk_acme', '30d'));
SELECT * FROM llm_usage.alerts_for('atk_beta', 30);
SELECT * FROM llm_usage.alerts_for(NULL, 30);
SELECT * FROM llm_usage.alerts_for('atk_acme', 30);
SELECT * FROM llm_usage.collector_runs_for('atk_beta', 30);
SELECT * FROM llm_usage.collector_runs_for(NULL, 30);
SELECT * FROM llm_usage.collector_runs_for('atk_acme', 30);
SELECT count(*) FROM llm_usage._provider_keys();
SELECT count(*) FROM llm_usage._reconciliation();
SELECT count(*) FROM llm_usage.source_usage('atk_beta', '2026-01-01 00:00+00', '2100-01-01 00:00+00');
SELECT count(*) FROM llm_usage.source_usage(NULL, NULL, NULL);
SELECT count(*) FROM llm_usage.source_usage('atk_acme');
SELECT count(*) FROM llm_usage.alerts;
SELECT count(*) FROM llm_usage.collector_runs;
SELECT count(*) FROM llm_usage.quota_counters;
SELECT count(*) FROM llm_usage.provider_keys;
SELECT count(*) FROM llm_usage.reconciliation;
SELECT * FROM llm_usage.price_reconciliation('2026-01-01', '2026-12-31');
SELECT * FROM llm_usage.price_reconciliation(NULL, NULL, 'atk_acme');
SELECT count(*) FROM llm_usage.rollup_status;
SQL
)
# every function either role may execute is called above
missing=$(sq <<SQL
WITH called(name) AS (SELECT unnest(string_to_array('$(grep -ohE 'llm_usage\.\w+\(' "$app" "$reader" | sed 's/llm_usage\.//; s/(//' | sort -u | tr '\n' ' ')', ' ')))
SELECT string_agg(DISTINCT p.proname, ' ')
  FROM pg_proc p
 WHERE p.pronamespace = 'llm_usage'::regnamespace
   AND (has_function_privilege('llm_usage_app', p.oid, 'EXECUTE') OR has_function_privilege('llm_usage_reader', p.oid, 'EXECUTE'))
   AND p.proname NOT IN (SELECT name FROM called)
SQL
)
check "[S2] the call lists cover every function app and reader roles may execute${missing:+ (missing: $missing)}" test -z "$missing"
h=$(hits)
asrole atk_mallory "$ADB" "$app" >"$A/app.out"
asrole atk_rita "$ADB" "$reader" >"$A/reader.out"
asrole atk_unbound "$ADB" "$app" >"$A/unbound_app.out"
asrole atk_unbound "$ADB" "$reader" >"$A/unbound_reader.out"
echo "  app calls: $(grep -c ERROR "$A/app.out") refused or bad input of $(grep -c '^SELECT' "$app"); reader calls: $(grep -c ERROR "$A/reader.out") of $(grep -c '^SELECT' "$reader")"
check "[S2] no shadow ran while app, reader and unbound roles called every function (every optional argument given)" no_new_hits "$h"
check "[S2] no role became a superuser" no_superuser
# the calls did work where they should (the suite would notice a role locked out)
h1=$(hits)
check "[S2] the app's own calls succeeded" grep -q '^t|' "$A/app.out"
check "[S2] the reader's own calls succeeded" grep -q 'atk_beta' "$A/reader.out"

# -------------------------- [X] cross-tenant: answers, error texts, relations
figures_of_beta='98765\.4321|7777777|beta-secret-model'
figures_of_acme='6666666|acme-secret-model'
check "[X1] nothing of tenant atk_beta (credits, tokens, model) reaches the app bound to atk_acme, errors included" \
    test -z "$(grep -E "$figures_of_beta" "$A/app.out")"
check "[X1] nothing of atk_beta or atk_acme reaches a role bound to no tenant" \
    test -z "$(cat "$A/unbound_app.out" "$A/unbound_reader.out" | grep -E "$figures_of_beta|$figures_of_acme")"
check "[X1] nothing of atk_acme reaches the reader of atk_beta" test -z "$(grep -E "$figures_of_acme" "$A/reader.out")"
# every relation of the schema, run-time partitions and the default one included
rels=$(sq -c "SELECT string_agg(format('%I', c.relname), ' ' ORDER BY c.relname) FROM pg_class c
               WHERE c.relnamespace = 'llm_usage'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')")
[[ $rels == *usage_events_default* && $rels == *usage_events_20* ]] || fail "no partitions to test: $rels"
for role_other in atk_mallory:atk_beta atk_rita:atk_acme atk_unbound:atk_ atk_nobody:atk_; do
    role=${role_other%%:*}; other=${role_other#*:}
    f="$A/rels_$role.sql"; : >"$f"
    for r in $rels; do
        echo "SELECT '$r', count(*) FROM llm_usage.$r t WHERE strpos(t::text, '$other') > 0;" >>"$f"
    done
    chown "$TEST_USER" "$f"
    out=$(asrole "$role" "$ADB" "$f")
    seen=$(echo "$out" | grep -E '^[a-z0-9_]+\|[1-9]' | cut -d'|' -f1 | tr '\n' ' ')
    readable=$(echo "$out" | grep -cE '^[a-z0-9_]+\|0$')
    check "[X2] $role reads no row of $other in any of $(echo $rels | wc -w) relations ($readable readable)${seen:+: $seen}" test -z "$seen"
done
out=$(asrole atk_rita "$ADB" "SELECT count(*) FROM llm_usage.usage_events_default")
check "[X2] partitions are not readable directly: $out" grep -q 'permission denied' <<<"$out"
# a superuser who grants every new table of the schema to readers (ALTER
# DEFAULT PRIVILEGES) does not open the next partition
sq -o /dev/null -c "ALTER DEFAULT PRIVILEGES IN SCHEMA llm_usage GRANT SELECT ON TABLES TO llm_usage_reader, PUBLIC" \
   -c "SELECT llm_usage.track_usage('atk_acme', 'chat', 'gpt-4o', 1, 1, occurred_at => '2025-03-15 12:00+00')" \
   -c "SELECT llm_usage._ensure_partitions(current_date, current_date)" \
   -c "ALTER DEFAULT PRIVILEGES IN SCHEMA llm_usage REVOKE SELECT ON TABLES FROM llm_usage_reader, PUBLIC"
out=$(asrole atk_rita "$ADB" "SELECT count(*) FROM llm_usage.usage_events_202503")
check "[X3] a partition made under ALTER DEFAULT PRIVILEGES is not readable by a reader: $out" grep -q 'permission denied' <<<"$out"
check "[X3] ... and has the parent's row-level security" \
    test "$(sq -c "SELECT relrowsecurity AND EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = 'llm_usage.usage_events_202503'::regclass)
                   FROM pg_class WHERE oid = 'llm_usage.usage_events_202503'::regclass")" == t

# ------------------------------------------------ [N] NOTIFY payloads
mkfifo "$A/listen.fifo"
as_user "$PGBIN/psql" -X -U atk_rita -d "$ADB" <"$A/listen.fifo" >"$A/listen.out" 2>&1 &
listener=$!
exec 7>"$A/listen.fifo"
echo "LISTEN llm_usage_alerts;" >&7
sleep 0.5
sq -o /dev/null -c "SELECT llm_usage.track_usage('atk_acme', 'chat', 'acme-only-model', 5, 5)" -c "SELECT llm_usage.check_alerts()"
sleep 0.5
echo "SELECT 1;" >&7
echo '\q' >&7
exec 7>&-
wait "$listener"
echo "  payloads received by the reader of atk_beta: $(grep -o 'payload ".*" received' "$A/listen.out" | head -3 | tr '\n' ' ')"
check "[N1] a listener receives the alerts" grep -q 'Asynchronous notification "llm_usage_alerts"' "$A/listen.out"
check "[N1] NOTIFY payloads carry only id and kind (no tenant, message, figures)" \
    test -z "$(grep -o 'payload ".*" received' "$A/listen.out" | grep -vE '^payload "\{"id": [0-9]+, "kind": "[a-z_]+"\}" received$')"
check "[N1] ... and nothing of atk_acme" test -z "$(grep -E 'atk_acme|acme-only-model' "$A/listen.out")"

# ------------------------------------------------ [G] secret settings
psql_q -d postgres -o /dev/null -c "ALTER SYSTEM SET llm_usage.alert_webhook_url = 'http://127.0.0.1:9/hook/tok-SECRET-webhook'" \
    -c "ALTER SYSTEM SET llm_usage.alert_smtp_url = 'smtp://alerts:SECRET-smtp-pw@127.0.0.1:9'" \
    -c "ALTER SYSTEM SET llm_usage.alert_webhook_secret = 'SECRET-hmac'" -c "SELECT pg_reload_conf()"
sleep 0.5
for role in atk_mallory atk_rita atk_unbound atk_nobody atk_alice; do
    out=$(asrole "$role" "$ADB" "$(printf '%s\n' \
        'SHOW llm_usage.alert_webhook_url;' 'SHOW llm_usage.alert_smtp_url;' 'SHOW llm_usage.alert_webhook_secret;' \
        "SELECT pg_catalog.current_setting('llm_usage.alert_webhook_url');" \
        "SELECT pg_catalog.current_setting('llm_usage.alert_smtp_url', true);" \
        "SELECT pg_catalog.string_agg(name || '=' || setting, ',') FROM pg_catalog.pg_settings WHERE name LIKE 'llm_usage.alert%';" \
        'SHOW ALL;')")
    check "[G1] $role cannot read the webhook URL, SMTP URL or webhook secret (SHOW, current_setting, pg_settings, SHOW ALL)" \
        test -z "$(grep SECRET <<<"$out")"
done
[[ $(psql_q -At -d "$ADB" -c "SHOW llm_usage.alert_webhook_url") == *SECRET-webhook* ]] || bad "[G1] a superuser should still read the webhook URL"
psql_q -d postgres -o /dev/null -c "ALTER SYSTEM RESET llm_usage.alert_webhook_url" -c "ALTER SYSTEM RESET llm_usage.alert_smtp_url" \
    -c "ALTER SYSTEM RESET llm_usage.alert_webhook_secret" -c "SELECT pg_reload_conf()"

# -------------------------------------- [I] identity: wrappers and maintenance
psql_q -d "$ADB" -o /dev/null <<'SQL'
CREATE SCHEMA wrap AUTHORIZATION atk_wrapper;
GRANT USAGE ON SCHEMA wrap TO PUBLIC;
SET ROLE atk_wrapper;
CREATE FUNCTION wrap.enforce(t text) RETURNS boolean LANGUAGE sql SECURITY DEFINER
    AS $$ SELECT allowed FROM llm_usage.enforce_quota(t, 'api_calls', 1) $$;
CREATE FUNCTION wrap.status(t text) RETURNS bigint LANGUAGE sql SECURITY DEFINER
    AS $$ SELECT count(*) FROM llm_usage.quota_status(t) $$;
CREATE FUNCTION wrap.events(t text) RETURNS bigint LANGUAGE sql SECURITY DEFINER
    AS $$ SELECT count(*) FROM llm_usage.quota_counters WHERE tenant_id OPERATOR(pg_catalog.=) t $$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA wrap TO PUBLIC;
RESET ROLE;
SQL
out=$(psql_q -At -d "$ADB" -c "SELECT wrap.enforce('atk_beta')" 2>&1)
check "[I1] a superuser calling a SECURITY DEFINER wrapper owned by a role without tenant access: enforce_quota refused ($out)" \
    grep -q 'permission denied for tenant' <<<"$out"
out=$(asrole atk_rita "$ADB" "SELECT wrap.status('atk_beta')")
check "[I1] the reader of atk_beta through the same kind of wrapper: quota_status refused ($out)" grep -q 'permission denied for tenant' <<<"$out"
out=$(psql_q -At -d "$ADB" -c "SELECT wrap.events('atk_beta')" 2>&1)
check "[I1] ... and the views over functions answer for the wrapper's owner, not the superuser: $out rows" test "$out" == 0
out=$(psql_q -At -d "$ADB" -c "SELECT allowed FROM llm_usage.enforce_quota('atk_beta', 'api_calls', 1)" -c "SELECT wrap.enforce('atk_beta')" 2>&1)
check "[I2] same, in a session whose quota cache was filled by the superuser first (quota.c keys its cache by the caller)" \
    grep -q 'permission denied for tenant' <<<"$out"
# an expression index and a materialized view of the app's, run by a
# superuser's routine maintenance
as_user "$PGBIN/psql" -X -q -U atk_mallory -d "$ADB" -o /dev/null <<'SQL' 2>/dev/null
CREATE TABLE mal.bait (x integer);
INSERT INTO mal.bait SELECT pg_catalog.generate_series(1, 20);
CREATE FUNCTION mal.grab() RETURNS void LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog AS $$
BEGIN
    BEGIN
        INSERT INTO mal.loot SELECT 'fn:' || t::text FROM llm_usage.tenant_events('atk_beta', '2000-01-01', '2100-01-01') t;
    EXCEPTION WHEN others THEN NULL;
    END;
    BEGIN
        INSERT INTO mal.loot SELECT 'credit:' || llm_usage.credit_balance('atk_beta');
    EXCEPTION WHEN others THEN NULL;
    END;
    BEGIN
        INSERT INTO mal.loot SELECT 'view:' || e::text FROM llm_usage.quota_counters e;
    EXCEPTION WHEN others THEN NULL;
    END;
    INSERT INTO mal.loot SELECT 'caller:' || llm_usage._caller()::regrole::text;
END $$;
CREATE FUNCTION mal.steal(x integer) RETURNS integer LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog AS $$
BEGIN PERFORM mal.grab(); RETURN x; END $$;
CREATE INDEX bait_steal ON mal.bait (mal.steal(x));
CREATE MATERIALIZED VIEW mal.mv AS
    SELECT q::text AS t FROM llm_usage.quota_status('atk_beta') q
    UNION ALL SELECT llm_usage.credit_balance('atk_beta')::text WITH NO DATA;
TRUNCATE mal.loot;
SQL
sq -o /dev/null -c "ANALYZE mal.bait" -c "REINDEX TABLE mal.bait" 2>/dev/null
refresh=$(sq -o /dev/null -c "REFRESH MATERIALIZED VIEW mal.mv" 2>&1 | head -1)
echo "  a superuser's REFRESH of the app's materialized view: ${refresh:-refreshed}"
loot=$(sq -c "SELECT count(*) FILTER (WHERE strpos(t, 'atk_beta') > 0 OR strpos(t, '98765') > 0) || ' of ' || count(*)
                || ' (callers: ' || coalesce(string_agg(DISTINCT t, ',') FILTER (WHERE t LIKE 'caller:%'), '') || ')' FROM mal.loot")
echo "  rows copied by index code during a superuser's ANALYZE and REINDEX: $loot"
check "[I3] index code run by a superuser's ANALYZE/REINDEX gets the table owner's tenant rights, not the superuser's" \
    grep -q '^0 of [1-9]' <<<"$loot"
mv=$(sq -c "SELECT count(*) FROM mal.mv" 2>&1)
check "[I3] ... a materialized view of atk_beta's quotas and credits refreshed by a superuser gets none ($mv)" \
    grep -qE '^0$|has not been populated' <<<"$mv"

# ------------------------------------- [A] audit: forging and breaking maintenance
big=$(python3 -c "print('q' * 3000)")
forge=$(sqlfile forge <<SQL
SELECT llm_usage.audit('atk_acme', 'quota', 'quota_exceeded', 'denied', '{"denied": [{"quota_type": "chat_messages", "period": "month", "quota_limit": 1, "used": 2}]}');
SELECT llm_usage.audit('atk_acme', 'quota', 'quota_exceeded', 'denied', '{"denied": [{"quota_type": "forged", "period": "day", "quota_limit": 1}]}');
SELECT llm_usage.audit('atk_acme', 'quota', 'quota_exceeded', 'denied', '{"denied": 1}');
SELECT llm_usage.audit('atk_acme', 'quota', 'quota_exceeded', 'denied', '{"denied": {"quota_type": "tokens", "period": "day"}}');
SELECT llm_usage.audit('atk_acme', 'quota', 'quota_exceeded', 'denied', '{"denied": null}');
SELECT llm_usage.audit('atk_acme', 'quota', 'quota_exceeded', 'denied', '{"denied": [null, 1, "x", [2]]}');
SELECT llm_usage.audit('atk_acme', 'quota', 'quota_exceeded', 'denied', '{"denied": [{"quota_type": null, "period": null}]}');
SELECT llm_usage.audit('atk_acme', 'quota', 'quota_exceeded', 'denied', '{"denied": [{"quota_type": "tokens", "period": "day", "quota_limit": "lots"}]}');
SELECT llm_usage.audit('atk_acme', 'quota', 'quota_exceeded', 'denied', '{"denied": [{"quota_type": "tokens", "period": "fortnight", "quota_limit": 1e400}]}');
SELECT llm_usage.audit('atk_acme', 'quota', 'quota_exceeded', 'denied', '{"denied": [{"quota_type": "$big", "period": "day", "quota_limit": 1}]}');
SELECT llm_usage.audit('atk_acme', 'security', 'grant_tenant_access', 'success', '{"grantee": "atk_mallory", "tenant": "everything"}');
SELECT llm_usage.audit('atk_acme', 'security', 'rotate_master_key', 'success', '{}');
SELECT llm_usage.audit('atk_acme', 'alerts', 'maintenance_failed', 'failure', '{"message": "please disable alerts"}');
SELECT llm_usage.audit('atk_acme', 'usage', E'line\nbreak', 'success', '{}');
SELECT llm_usage.audit('atk_acme', 'usage', 'huge', 'success', '{"x": "$(python3 -c "print('y' * 9000)")"}');
SQL
)
out=$(asrole atk_mallory "$ADB" "$forge")
echo "  audit writes accepted: $(grep -cE '^[0-9]+$' <<<"$out"), refused: $(grep -c ERROR <<<"$out") ($(grep ERROR <<<"$out" | sed 's/.*ERROR: *//' | sort -u | tr '\n' ';'))"
check "[A1] an action with a control character and details over 8 kB are refused (22023)" test "$(grep -c 'ERROR' <<<"$out")" == 2
sq -o /dev/null -c "SELECT llm_usage.track_usage('atk_acme', 'chat', 'gpt-4o', 3, 3, occurred_at => '2025-04-10 12:00+00')" \
   -c "SELECT llm_usage.track_usage('atk_acme', 'chat', 'gpt-4o', 3, 3)"
hourly0=$(sq -c "SELECT coalesce(sum(api_calls_total), 0) FROM llm_usage.tenant_usage_metrics WHERE tenant_id = 'atk_acme' AND period_type = 'hourly'")
calls=$(sq -c "SELECT count(*) FROM llm_usage.usage_events WHERE tenant_id = 'atk_acme'")
# and a real denial after the forged events
sq -o /dev/null -c "SELECT llm_usage.set_custom_quota('atk_acme', 'chat_messages', 1, 'day')" \
   -c "SELECT allowed FROM llm_usage.enforce_quota('atk_acme', 'chat_messages', 5)"
out=$(sq -c "SELECT llm_usage.check_alerts()" 2>&1)
broken=$(sq -c "SELECT count(*) FROM llm_usage.alerts WHERE tenant_id = '*' AND kind = 'maintenance_failed' AND subject LIKE 'maintenance/check_alerts/%'")
check "[A2] check_alerts() works after every audit() an app can write ($out new alerts, $broken rule(s) failed)" \
    test "$(grep -cE '^[0-9]+$' <<<"$out")$broken" == 10
out=$(sq -c "SELECT llm_usage._maintenance()" 2>&1)
echo "  _maintenance(): $out"
check "[A2] _maintenance() runs every step (no \"failed\")" test -z "$(grep -E 'failed|ERROR' <<<"$out")"
check "[A2] ... roll-ups advance" test "$(sq -c "SELECT sum(api_calls_total) FROM llm_usage.tenant_usage_metrics WHERE tenant_id = 'atk_acme' AND period_type = 'hourly'")" -gt "$hourly0"
check "[A2] ... and partitions are created (2025-04)" test "$(sq -c "SELECT to_regclass('llm_usage.usage_events_202504') IS NOT NULL")" == t
forged=$(sq -c "SELECT count(*) FROM llm_usage.alerts WHERE tenant_id = 'atk_acme' AND kind = 'quota_exceeded'
                 AND (subject = 'chat_messages/month' OR subject LIKE 'forged%' OR subject LIKE 'qqq%' OR subject LIKE '%fortnight%')")
check "[A3] no quota_exceeded alert from a forged denial ($forged)" test "$forged" == 0
real=$(sq -c "SELECT count(*) FROM llm_usage.alerts WHERE tenant_id = 'atk_beta' AND kind = 'quota_exceeded' AND subject = 'embeddings/day'")
check "[A3] ... while the extension's own denial records raised theirs, before and after the forged ones ($real)" test "$real" == 1
real=$(sq -c "SELECT count(*) FROM llm_usage.alerts WHERE tenant_id = 'atk_acme' AND kind = 'quota_exceeded' AND subject = 'chat_messages/day'")
check "[A3] ... (after: $real)" test "$real" == 1
marks=$(sq -c "SELECT count(*) FILTER (WHERE origin = 'application') || ' application, '
                       || count(*) FILTER (WHERE origin <> 'application') || ' other'
                  FROM llm_usage.audit_events WHERE tenant_id = 'atk_acme' AND role_name = 'atk_mallory' AND event_type IN ('security', 'alerts')")
check "[A4] the security and alert events the app wrote are marked as the application's ($marks)" \
    test "$marks" == "3 application, 0 other"
# maintenance also isolates a step that fails for another reason
sq -o /dev/null -c "CREATE FUNCTION public.atk_refuse() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN RAISE EXCEPTION 'refused by the test'; END \$\$" \
   -c "CREATE TRIGGER atk_refuse BEFORE INSERT OR UPDATE ON llm_usage.tenant_usage_metrics FOR EACH ROW EXECUTE FUNCTION public.atk_refuse()" \
   -c "SELECT llm_usage.track_usage('atk_acme', 'chat', 'gpt-4o', 3, 3, occurred_at => '2025-05-10 12:00+00')"
out=$(sq -c "SELECT llm_usage._maintenance()" 2>/dev/null)
sq -o /dev/null -c "DROP TRIGGER atk_refuse ON llm_usage.tenant_usage_metrics" -c "DROP FUNCTION public.atk_refuse()"
echo "  _maintenance() with roll-ups refused: $out"
check "[A5] a failing step is reported and the others still run (partition 2025-05 made)" \
    test "$(sq -c "SELECT to_regclass('llm_usage.usage_events_202505') IS NOT NULL AND EXISTS (SELECT 1 FROM llm_usage.alerts WHERE tenant_id = '*' AND kind = 'maintenance_failed' AND subject = 'maintenance/hourly' AND message LIKE '%refused by the test%')")" == t

# ------------------------------------------------ [P] history and views
before=$(sq -c "SELECT md5(string_agg(v::text, '|' ORDER BY price_id)) FROM llm_usage.model_price_versions v")
priced=$(sqlfile prices <<'SQL'
UPDATE llm_usage.model_price_versions SET input_usd_per_mtok = 0 WHERE model OPERATOR(pg_catalog.=) 'gpt-4o';
DELETE FROM llm_usage.model_price_versions WHERE model OPERATOR(pg_catalog.=) 'gpt-4o';
INSERT INTO llm_usage.model_price_versions (provider, model, input_usd_per_mtok, output_usd_per_mtok, valid_from) VALUES ('openai', 'gpt-4o', 0, 0, '2000-01-01');
TRUNCATE llm_usage.model_price_versions;
UPDATE llm_usage.model_prices SET input_usd_per_mtok = 0;
DELETE FROM llm_usage.model_prices;
UPDATE llm_usage.provider_keys SET tenant_id = 'atk_acme';
INSERT INTO llm_usage.provider_keys (tenant_id, provider) VALUES ('atk_acme', 'openai');
DELETE FROM llm_usage.provider_keys;
INSERT INTO llm_usage.audit_events (tenant_id, event_type, action, result, details) VALUES ('atk_acme', 'quota', 'quota_exceeded', 'denied', '{}');
SQL
)
out=$(asrole atk_alice "$ADB" "$priced")
grep ERROR <<<"$out" | grep -v 'permission denied' | sed 's/^/  refused by PostgreSQL before privileges: /'
check "[P1] an llm_usage admin cannot write price versions, write through views (model_prices, provider_keys) or insert audit events: $(grep -c 'ERROR' <<<"$out") of 10 refused" \
    test "$(grep -c 'ERROR' <<<"$out")" == 10
out=$(sq -c "UPDATE llm_usage.model_price_versions SET input_usd_per_mtok = 0 WHERE model = 'gpt-4o'" -c "DELETE FROM llm_usage.model_price_versions WHERE model = 'gpt-4o'" 2>&1)
check "[P2] not even the owner changes or deletes a price version" test "$(grep -c 'cannot be changed or deleted' <<<"$out")" == 1
out=$(sq -c "DELETE FROM llm_usage.model_price_versions WHERE model = 'gpt-4o'" 2>&1)
check "[P2] ... (delete)" grep -q 'cannot be changed or deleted' <<<"$out"
check "[P2] prices are unchanged" test "$(sq -c "SELECT md5(string_agg(v::text, '|' ORDER BY price_id)) FROM llm_usage.model_price_versions v")" == "$before"
out=$(asrole atk_alice "$ADB" "SELECT llm_usage.set_model_price('openai', 'atk-model', 1, 2)")
check "[P3] set_model_price() still works for an admin ($out)" grep -qE '^[0-9]+$' <<<"$out"
# a role with no llm_usage rights holds the advisory lock set_model_price()
# once took, and a reader holds the table in ACCESS SHARE mode: neither may
# block a price change (F10)
as_user "$PGBIN/psql" -X -q -d "$ADB" -U atk_nobody \
    -c "SELECT pg_advisory_lock(hashtext('llm_usage.model_price'), hashtext('atk-model'))" -c "SELECT pg_sleep(30)" >/dev/null 2>&1 &
locker1=$!
as_user "$PGBIN/psql" -X -q -d "$ADB" -U atk_rita \
    -c "BEGIN" -c "LOCK TABLE llm_usage.model_price_versions IN ACCESS SHARE MODE" -c "SELECT pg_sleep(30)" >/dev/null 2>&1 &
locker2=$!
sleep 1
out=$(asrole atk_alice "$ADB" "SET statement_timeout = '5s'; SELECT llm_usage.set_model_price('openai', 'atk-model', 2, 3, valid_from => pg_catalog.now() + interval '1 day') > 0")
# end both sessions (their backends would sleep on without a client, holding
# the watermark of check_alerts behind their transactions)
sq -o /dev/null -c "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity
                     WHERE usename IN ('atk_nobody', 'atk_rita') AND query LIKE '%pg_sleep%'"
wait "$locker1" "$locker2" 2>/dev/null
check "[L1] a role holding llm_usage's old advisory lock, or a reader holding the price table, does not block set_model_price() ($out)" \
    grep -q '^t$' <<<"$out"

check "[S3] no shadow ran during the attacks [X] to [P]" no_new_hits "$h1"
check "[S3] no attacking role is a superuser" no_superuser

# ------------------------------------------------ [C] collation (F1)
# a tenant whose id differs from the victim's in case only, bound to
# atk_carol; under a case-insensitive collation of her own, 'ATK_BETA'
# must not reach atk_beta through any function
psql_q -d "$ADB" -o /dev/null <<'SQL'
CREATE ROLE atk_carol LOGIN IN ROLE llm_usage_app, llm_usage_reader;
SELECT llm_usage.create_tenant('ATK_BETA', 'pro');
SELECT llm_usage.grant_tenant_access('atk_carol', 'ATK_BETA');
SQL
beta_state() {
    sq -c "SELECT (SELECT balance FROM llm_usage.credit_balances WHERE tenant_id = 'atk_beta') || '/'
                  || (SELECT count(*) FROM llm_usage.usage_events WHERE tenant_id = 'atk_beta') || '/'
                  || (SELECT count(*) FROM llm_usage.audit_events WHERE tenant_id = 'atk_beta') || '/'
                  || (SELECT coalesce(sum(used), 0) FROM llm_usage.quota_counters WHERE tenant_id = 'atk_beta')"
}
before=$(beta_state)
coll=$(sqlfile collation <<'SQL'
CREATE COLLATION pg_temp.ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
SELECT 'can_access=' OPERATOR(pg_catalog.||) llm_usage._can_access('atk_beta' COLLATE pg_temp.ci)::text;
SELECT llm_usage.credit_balance('ATK_BETA' COLLATE pg_temp.ci);
SELECT llm_usage.deduct_credits('ATK_BETA' COLLATE pg_temp.ci, 1, 'collation', 'coll-1');
SELECT * FROM llm_usage.enforce_quota('ATK_BETA' COLLATE pg_temp.ci, 'embeddings', 1);
SELECT * FROM llm_usage.enforce_quotas('ATK_BETA' COLLATE pg_temp.ci, '{"embeddings": 1}');
SELECT * FROM llm_usage._enforce_quota_sql('ATK_BETA' COLLATE pg_temp.ci, 'embeddings', 1);
SELECT * FROM llm_usage._quota_table_counters('ATK_BETA' COLLATE pg_temp.ci);
SELECT * FROM llm_usage._quota_counters('ATK_BETA' COLLATE pg_temp.ci);
SELECT * FROM llm_usage.quota_status('ATK_BETA' COLLATE pg_temp.ci);
SELECT * FROM llm_usage.today_usage('ATK_BETA' COLLATE pg_temp.ci);
SELECT llm_usage.track_usage('ATK_BETA' COLLATE pg_temp.ci, 'chat', 'gpt-4o', 1, 1) > 0;
SELECT llm_usage._track_usage_sql('ATK_BETA' COLLATE pg_temp.ci, 'chat', 'gpt-4o', 1, 1, 0, 1, 200, 'success', '{}', NULL, pg_catalog.now(), 0) > 0;
SELECT llm_usage.audit('ATK_BETA' COLLATE pg_temp.ci, 'usage', 'collation', 'success', '{}') > 0;
SELECT * FROM llm_usage.tenant_events('ATK_BETA' COLLATE pg_temp.ci, '2000-01-01', '2100-01-01');
SELECT * FROM llm_usage.tenant_usage('ATK_BETA' COLLATE pg_temp.ci, '2000-01-01', '2100-01-01', 'hourly');
SELECT * FROM llm_usage.audit_trail('ATK_BETA' COLLATE pg_temp.ci, 30);
SELECT * FROM llm_usage.failed_operations('ATK_BETA' COLLATE pg_temp.ci, 30);
SELECT * FROM llm_usage.security_events('ATK_BETA' COLLATE pg_temp.ci, 30);
SELECT llm_usage.audit_report('ATK_BETA' COLLATE pg_temp.ci, '2000-01-01', '2100-01-01');
SELECT llm_usage.usage_overview('ATK_BETA' COLLATE pg_temp.ci, '30d');
SELECT * FROM llm_usage.cost_summary('ATK_BETA' COLLATE pg_temp.ci);
SELECT * FROM llm_usage.alert_rules_for('ATK_BETA' COLLATE pg_temp.ci);
SELECT * FROM llm_usage.alerts_for('ATK_BETA' COLLATE pg_temp.ci, 30);
SELECT * FROM llm_usage.collector_runs_for('ATK_BETA' COLLATE pg_temp.ci, 30);
SELECT llm_usage.usage_report_html('ATK_BETA' COLLATE pg_temp.ci, '30d');
SQL
)
out=$(asrole atk_carol "$ADB" "$coll")
after=$(beta_state)
echo "  as atk_carol (tenant ATK_BETA) under a case-insensitive collation: $(grep -c ERROR <<<"$out") refused of $(grep -c '^SELECT' "$coll"); atk_beta before/after: $before -> $after"
check "[C1] a caller's nondeterministic collation does not make _can_access('atk_beta') true" grep -q '^can_access=false$' <<<"$out"
check "[C1] ... nor reach atk_beta's rows, figures or id through any function (errors included)" \
    test -z "$(grep -E "atk_beta|$figures_of_beta" <<<"$out")"
check "[C1] ... nor change atk_beta (balance/events/audit events/quota use unchanged)" test "$before" == "$after"

# ------------------------------------------------ [E] EXPLAIN ANALYZE (F4)
# the plan of a query for another tenant must read exactly like the plan
# for a tenant that does not exist ("Rows Removed by Filter" counted the
# other tenant's rows when a leakproof condition of the caller's became an
# index condition under the row-level security filter)
explain_file() {        # explain_file TENANT MODEL
    local r
    echo "SET enable_seqscan = off;"
    for r in $(sq -c "SELECT string_agg(format('%I', c.relname), ' ' ORDER BY c.relname) FROM pg_class c
                       WHERE c.relnamespace = 'llm_usage'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
                         AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id')"); do
        echo "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT * FROM llm_usage.$r WHERE tenant_id OPERATOR(pg_catalog.=) '$1';"
    done
    echo "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT * FROM llm_usage.usage_events WHERE tenant_id OPERATOR(pg_catalog.=) '$1' AND occurred_at OPERATOR(pg_catalog.>) pg_catalog.now() OPERATOR(pg_catalog.-) interval '1 day';"
    echo "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT * FROM llm_usage.usage_events WHERE model OPERATOR(pg_catalog.=) '$2' AND cost_usd IS NULL;"
}
for role_other in atk_mallory:atk_beta:beta-secret-model atk_rita:atk_acme:acme-secret-model; do
    IFS=: read -r role other model <<<"$role_other"
    explain_file "$other" "$model" >"$A/explain_other.sql"
    explain_file atk_nosuch no-such-model >"$A/explain_none.sql"
    chown "$TEST_USER" "$A/explain_other.sql" "$A/explain_none.sql"
    asrole "$role" "$ADB" "$A/explain_other.sql" | sed "s/$other/TENANT/g; s/$model/MODEL/g; s/explain_other/FILE/g" >"$A/explain_other.out"
    asrole "$role" "$ADB" "$A/explain_none.sql" | sed "s/atk_nosuch/TENANT/g; s/no-such-model/MODEL/g; s/explain_none/FILE/g" >"$A/explain_none.out"
    echo "  $role: $(grep -c 'permission denied' "$A/explain_other.out") relations refused, $(grep -c '^Function Scan' "$A/explain_other.out") read through functions"
    d=$(diff "$A/explain_none.out" "$A/explain_other.out" | grep '^[<>]' | head -4 | tr '\n' ' ')
    check "[E1] $role: EXPLAIN ANALYZE of $other's rows reads the same as for a tenant that does not exist${d:+: $d}" test -z "$d"
done

# -------------------------------------------- [M] maintenance and locks (F5)
# an application transaction left open after an API call that put a row
# into usage_events_default: maintenance must not wait for it forever
sq -o /dev/null -c "SELECT llm_usage.track_usage('atk_acme', 'chat', 'gpt-4o', 1, 1, occurred_at => '2024-06-15 12:00+00')"
mkfifo "$A/hold.fifo"
as_user "$PGBIN/psql" -X -U atk_mallory -d "$ADB" <"$A/hold.fifo" >"$A/hold.out" 2>&1 &
holder=$!
exec 8>"$A/hold.fifo"
echo "BEGIN; SELECT llm_usage.track_usage('atk_acme', 'chat', 'gpt-4o', 1, 1, occurred_at => '2024-07-15 12:00+00') > 0;" >&8
sleep 1
t0=$(date +%s)
out=$(sq -c "SET statement_timeout = '40s'" -c "SELECT llm_usage._maintenance()" 2>&1)
t1=$(date +%s)
echo "COMMIT;" >&8
echo '\q' >&8
exec 8>&-
wait "$holder"
echo "  _maintenance() beside the open transaction ($((t1 - t0)) s): $out"
check "[M1] maintenance beside an application's open transaction ends by itself within seconds ($((t1 - t0)) s)" \
    test $((t1 - t0)) -lt 20
check "[M1] ... the partition step is reported as failed for its lock (55P03)" grep -q '"partitions_created": "55P03' <<<"$out"
check "[M1] ... with a maintenance_failed alert naming the lock timeout" \
    test "$(sq -c "SELECT count(*) FROM llm_usage.alerts WHERE tenant_id = '*' AND kind = 'maintenance_failed' AND subject = 'maintenance/partitions_created' AND message LIKE '%lock timeout%'")" -ge 1
out=$(sq -c "SELECT llm_usage._maintenance()" 2>&1)
check "[M1] ... and the next run, the transaction gone, makes the partitions (2024-06, 2024-07)" \
    test "$(sq -c "SELECT to_regclass('llm_usage.usage_events_202406') IS NOT NULL AND to_regclass('llm_usage.usage_events_202407') IS NOT NULL")" == t

# ------------------------------------------------ [K] keys in the server log (F7)
keyfile=$(sqlfile addkey <<'SQL'
SELECT llm_usage.add_provider_key('atk_acme', 'openai', :key);
SQL
)
beta_key=$(sq -c "SELECT llm_usage.add_provider_key('atk_beta', 'openai', 'sk-atk-beta-superuser-0001')")
rotfile=$(sqlfile rotkey <<SQL
SELECT llm_usage.rotate_provider_key($beta_key, :key);
SQL
)
psql_q -d postgres -o /dev/null -c "ALTER ROLE atk_alice SET log_min_duration_statement = 0"
pgb() { as_user "$PGBIN/pgbench" -n -M extended -t 1 -U atk_alice -D "key=$1" -f "$2" "$ADB" 2>&1; }
out=$(pgb sk-atk-LOGGED-add-0000aaaa "$keyfile"; pgb sk-atk-LOGGED-rot-0000bbbb "$rotfile")
echo "  admin with log_min_duration_statement = 0: $(grep -o 'ERROR: .*' <<<"$out" | sort -u | tr '\n' ' ')"
# PostgreSQL logs the parameters at bind time, before the function runs:
# the refusal keeps such a key out of the store and says why
echo "  server log lines holding those keys (written at bind time): $(grep -ac 'sk-atk-LOGGED-\(add-0000aaaa\|rot-0000bbbb\)' "$WORK/server.log")"
check "[K1] add_provider_key and rotate_provider_key refuse a key the session's logging wrote to the server log" \
    test "$(grep -c 'the server log may hold this key: refused' <<<"$out")" == 2
check "[K1] ... and store neither" \
    test "$(sq -c "SELECT count(*) FROM llm_usage.provider_key_store WHERE key_preview IN ('…aaaa', '…bbbb')")" == 0
psql_q -d postgres -o /dev/null -c "ALTER ROLE atk_alice SET log_parameter_max_length = 0"
out=$(pgb sk-atk-LOGGED-add-0000cccc "$keyfile"; pgb sk-atk-LOGGED-rot-0000dddd "$rotfile")
check "[K2] with the recommended ALTER ROLE ... SET log_parameter_max_length = 0 both work" test -z "$(grep ERROR <<<"$out")"
check "[K2] ... the statements were logged (duration) without the keys" \
    test "$(grep -ac 'duration: .*add_provider_key' "$WORK/server.log")" -ge 2 -a -z "$(grep -a 'sk-atk-LOGGED-\(add-0000cccc\|rot-0000dddd\)' "$WORK/server.log")"
psql_q -d postgres -o /dev/null -c "ALTER ROLE atk_alice RESET log_min_duration_statement" -c "ALTER ROLE atk_alice RESET log_parameter_max_length"

# ------------------------------------------------ [U] unpriced models (F9)
sq -o /dev/null -c "SELECT llm_usage.check_alerts()" -c "DELETE FROM llm_usage.alerts WHERE kind = 'unpriced_usage'"
asrole atk_mallory "$ADB" "SELECT pg_catalog.count(llm_usage.track_usage('atk_acme', 'chat', pg_catalog.concat('unpriced-flood-', g), 1, 1)) FROM pg_catalog.generate_series(1, 3000) g" >/dev/null
asrole atk_mallory "$ADB" "SELECT llm_usage.track_usage('atk_acme', 'chat', 'gpt.URGENT:rotate_keys_at_https://evil.example', 1, 1)" >/dev/null
sq -o /dev/null -c "SELECT llm_usage.check_alerts()"
n=$(sq -c "SELECT count(*) FROM llm_usage.alerts WHERE tenant_id = 'atk_acme' AND kind = 'unpriced_usage'")
msg=$(sq -c "SELECT message FROM llm_usage.alerts WHERE tenant_id = 'atk_acme' AND kind = 'unpriced_usage' ORDER BY id LIMIT 1")
echo "  3,001 unpriced models tracked by the app: $n alert(s): ${msg:0:300}"
check "[U1] 3,001 unpriced model names of an app make one unpriced_usage alert, not thousands ($n)" test "$n" == 1
check "[U1] ... naming 10 of them and counting the rest" grep -q '3001 model(s).* and 2991 more$' <<<"$msg"
check "[U1] ... the app's text quoted and marked as the application's" \
    grep -q 'as the application reported them (unverified, quoted): .*"gpt.URGENT:rotate_keys_at_https://evil.example"' <<<"$msg"

# ------------------------------------------------ [D] admins' direct writes (F14)
ledger0=$(sq -c "SELECT count(*) || '/' || (SELECT balance FROM llm_usage.credit_balances WHERE tenant_id = 'atk_beta') FROM llm_usage.credit_ledger")
direct=$(sqlfile direct <<'SQL'
INSERT INTO llm_usage.tenant_access (tenant_id, role_name) VALUES ('atk_beta', 'atk_alice');
DELETE FROM llm_usage.tenant_access;
UPDATE llm_usage.credit_balances SET balance = 1;
INSERT INTO llm_usage.credit_ledger (tenant_id, delta, balance_after, reason) VALUES ('atk_beta', 1, 1, 'direct');
DELETE FROM llm_usage.credit_ledger;
INSERT INTO llm_usage.alerts (tenant_id, kind, message) VALUES ('atk_beta', 'cost_anomaly', 'URGENT: rotate your keys at https://evil.example');
UPDATE llm_usage.alerts SET message = 'URGENT: rotate your keys at https://evil.example';
INSERT INTO llm_usage.tenants (tenant_id, plan, timezone) VALUES ('atk_badtz', 'pro', 'Not/AZone');
UPDATE llm_usage.tenants SET timezone = 'Not/AZone' WHERE tenant_id OPERATOR(pg_catalog.=) 'atk_acme';
SQL
)
out=$(asrole atk_alice "$ADB" "$direct")
echo "  admin's direct writes refused: $(grep -c ERROR <<<"$out") of 9 ($(grep -o 'ERROR: .*' <<<"$out" | sed 's/ERROR: *//' | sort | uniq -c | tr -s ' ' | tr '\n' ';'))"
check "[D1] an admin writes no tenant grant, credit or alert text directly (permission denied)" \
    test "$(grep -c 'permission denied' <<<"$out")" == 7
check "[D1] ... nor a time zone PostgreSQL does not know (22023 from a trigger)" \
    test "$(grep -c 'unknown time zone "Not/AZone"' <<<"$out")" == 2
check "[D1] ... and nothing changed" test "$(sq -c "SELECT count(*) || '/' || (SELECT balance FROM llm_usage.credit_balances WHERE tenant_id = 'atk_beta') FROM llm_usage.credit_ledger")" == "$ledger0"
out=$(asrole atk_alice "$ADB" "UPDATE llm_usage.alerts SET acknowledged_at = pg_catalog.now() WHERE tenant_id OPERATOR(pg_catalog.=) 'atk_beta'")
check "[D2] an admin still acknowledges alerts directly ($out)" grep -q '^UPDATE [1-9]' <<<"$out"
out=$(sq -c "SELECT llm_usage.check_alerts()" 2>&1)
check "[D2] ... and check_alerts() runs ($out)" grep -qE '^[0-9]+$' <<<"$out"

# ------------------------------------------------ [R] grants of dropped roles (F15)
psql_q -d "$ADB" -o /dev/null -c "CREATE ROLE atk_temp LOGIN IN ROLE llm_usage_app" \
    -c "SELECT llm_usage.grant_tenant_access('atk_temp', 'atk_beta')" -c "DROP ROLE atk_temp"
dangling() { sq -c "SELECT count(*) FROM llm_usage.tenant_access a WHERE NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.oid = a.role_name)"; }
d0=$(dangling)
out=$(sq -c "SELECT llm_usage._maintenance()->'access_pruned'")
check "[R1] maintenance removes the tenant grant a dropped role left behind ($d0 -> $(dangling), pruned $out)" test "$d0/$(dangling)" == 1/0
check "[R1] ... and records it in the audit log" \
    test "$(sq -c "SELECT count(*) FROM llm_usage.audit_events WHERE tenant_id = 'atk_beta' AND action = 'revoke_tenant_access' AND details->>'reason' = 'role dropped'")" == 1

# ------------------------------------------------ [O] the schema it installs into (F3)
# the owner of a database (not a superuser) makes schema llm_usage before a
# superuser installs the extension there, with an exact-match overload that
# the extension's bodies would call as the owner
osch() {        # osch DB: the database owner's schema and shadow
    psql_q -d postgres -o /dev/null -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1 OWNER atk_dbowner" 2>&1 | grep -v "does not exist, skipping"
    as_user "$PGBIN/psql" -X -q -U atk_dbowner -d "$1" -o /dev/null -c "CREATE SCHEMA llm_usage" \
        -c "CREATE TABLE public.shadow_ran (at timestamptz DEFAULT pg_catalog.now())" \
        -c "GRANT INSERT ON public.shadow_ran TO PUBLIC"
}
shadow() {
    as_user "$PGBIN/psql" -X -q -U atk_dbowner -d "$1" -o /dev/null \
        -c "CREATE FUNCTION llm_usage._require_arg(p text, n text) RETURNS void LANGUAGE sql AS 'INSERT INTO public.shadow_ran DEFAULT VALUES; ALTER ROLE atk_dbowner SUPERUSER'" 2>&1
}
osch atk_schema_install
shadow atk_schema_install
out=$(psql_q -d atk_schema_install -c '\set VERBOSITY verbose' -c "CREATE EXTENSION llm_usage" 2>&1)
echo "  CREATE EXTENSION into the database owner's schema: $(head -2 <<<"$out" | tr '\n' ' ')"
check "[O1] CREATE EXTENSION refuses a schema llm_usage owned by a non-superuser holding foreign objects (42501)" \
    grep -q '42501: schema llm_usage is not safe for the extension' <<<"$out"
osch atk_schema_update
psql_q -d atk_schema_update -o /dev/null -c "CREATE EXTENSION llm_usage VERSION '1.2'"
shadow atk_schema_update
out=$(psql_q -d atk_schema_update -c '\set VERBOSITY verbose' -c "ALTER EXTENSION llm_usage UPDATE TO '1.3'" 2>&1)
check "[O2] the update to 1.3 refuses it too (42501), version stays 1.2" \
    test "$(grep -c '42501: schema llm_usage is not safe' <<<"$out")/$(psql_q -At -d atk_schema_update -c "SELECT extversion FROM pg_extension WHERE extname = 'llm_usage'")" == 1/1.2
psql_q -d atk_schema_update -o /dev/null -c "DROP FUNCTION llm_usage._require_arg(text, text)" -c "ALTER SCHEMA llm_usage OWNER TO postgres" \
    -c "REVOKE ALL ON SCHEMA llm_usage FROM atk_dbowner"
out=$(psql_q -At -d atk_schema_update -c "ALTER EXTENSION llm_usage UPDATE TO '1.3'" -c "SELECT extversion FROM pg_extension WHERE extname = 'llm_usage'" 2>&1)
check "[O2] ... and goes through once a superuser owns the schema and the function is gone ($out)" test "$out" == 1.3
ran=$(psql_q -At -d atk_schema_install -c "SELECT count(*) FROM public.shadow_ran")$(psql_q -At -d atk_schema_update -c "SELECT count(*) FROM public.shadow_ran")
check "[O3] the database owner's function never ran ($ran)" test "$ran" == 00
check "[O3] ... and the database owner is not a superuser" no_superuser
psql_q -d postgres -o /dev/null -c "DROP DATABASE atk_schema_install" -c "DROP DATABASE atk_schema_update"

check "[S4] no shadow ran during the attacks [C] to [O]" no_new_hits "$h1"
check "[S4] no attacking role is a superuser" no_superuser

# -------------------------------- [W1] the owner of the worker's database
wh() { psql_q -At -d "$WDB" -c "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM evil.hits"; }
psql_q -d postgres -o /dev/null -c "ALTER DATABASE llm_usage_worker OWNER TO atk_dbowner"
as_user "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -U atk_dbowner -d "$WDB" -o /dev/null <<'SQL' || fail "could not set up the database owner's schema"
CREATE SCHEMA evil;
GRANT USAGE ON SCHEMA evil TO PUBLIC;
CREATE SEQUENCE evil.hits;
GRANT USAGE, SELECT, UPDATE ON SEQUENCE evil.hits TO PUBLIC;
CREATE FUNCTION evil._hit(n text) RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    PERFORM pg_catalog.nextval('evil.hits'::pg_catalog.regclass);
    RAISE WARNING 'SHADOW % ran as %', n, current_user;
    BEGIN
        EXECUTE 'ALTER ROLE atk_dbowner SUPERUSER';
    EXCEPTION WHEN others THEN NULL;
    END;
END $$;
CREATE FUNCTION evil.to_regclass(text) RETURNS regclass LANGUAGE plpgsql AS
$$ BEGIN PERFORM evil._hit('to_regclass'); RETURN pg_catalog.to_regclass($1); END $$;
CREATE FUNCTION evil.to_regproc(text) RETURNS regproc LANGUAGE plpgsql AS
$$ BEGIN PERFORM evil._hit('to_regproc'); RETURN pg_catalog.to_regproc($1); END $$;
CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE plpgsql AS
$$ BEGIN PERFORM evil._hit('now'); RETURN pg_catalog.now(); END $$;
CREATE FUNCTION evil.jsonb_build_object(text, text) RETURNS jsonb LANGUAGE plpgsql AS
$$ BEGIN PERFORM evil._hit('jsonb_build_object'); RETURN pg_catalog.jsonb_build_object($1, $2); END $$;
CREATE FUNCTION evil.current_setting(text, boolean) RETURNS text LANGUAGE plpgsql AS
$$ BEGIN PERFORM evil._hit('current_setting'); RETURN pg_catalog.current_setting($1, $2); END $$;
DO $ops$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['text', 'name', 'oid', 'bigint', 'integer'] LOOP
        EXECUTE pg_catalog.format($f$CREATE FUNCTION evil.eq_%1$s(%1$s, %1$s) RETURNS boolean LANGUAGE plpgsql AS
            $b$ BEGIN PERFORM evil._hit('=(%1$s)'); RETURN $1 OPERATOR(pg_catalog.=) $2; END $b$$f$, t);
        EXECUTE pg_catalog.format('CREATE OPERATOR evil.= (LEFTARG = %1$s, RIGHTARG = %1$s, FUNCTION = evil.eq_%1$s)', t);
    END LOOP;
    CREATE FUNCTION evil.cat(text, text) RETURNS text LANGUAGE plpgsql AS
        $b$ BEGIN PERFORM evil._hit('||'); RETURN $1 OPERATOR(pg_catalog.||) $2; END $b$;
    CREATE OPERATOR evil.|| (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.cat);
END
$ops$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA evil TO PUBLIC;
ALTER DATABASE llm_usage_worker SET search_path = evil, pg_catalog, public;
SQL
wpid0=$(psql_q -At -d postgres -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'llm_usage collector'")
[[ -n $wpid0 ]] && psql_q -d postgres -o /dev/null -c "SELECT pg_terminate_backend($wpid0)"
# the worker comes back (5 s), connects with the database's search_path and maintains at once
for _ in $(seq 1 100); do
    wpid=$(psql_q -At -d postgres -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'llm_usage collector'")
    [[ -n $wpid && $wpid != "$wpid0" ]] && break
    sleep 0.2
done
sleep 4
wq -o /dev/null -c "SELECT llm_usage.collect_now()" 2>/dev/null
sleep 2
echo "  worker pid $wpid0 -> $wpid; shadows of the database owner run: $(wh)"
check "[W1] the worker runs none of its database owner's shadows (to_regproc, =(name,name), ...)" test "$(wh)" == 0
su=$(superusers)
check "[W1] ... and the database owner is not a superuser${su:+ ($su is)}" test -z "$su"
psql_q -d postgres -o /dev/null -c "ALTER DATABASE llm_usage_worker RESET search_path" -c "ALTER DATABASE llm_usage_worker OWNER TO postgres"
psql_q -d postgres -o /dev/null -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'llm_usage collector'"
psql_q -d "$WDB" -o /dev/null -c "DROP SCHEMA evil CASCADE" 2>/dev/null
for _ in $(seq 1 100); do [[ -n "$(worker_pid 2>/dev/null)" ]] && break; sleep 0.2; done
demote

cleanup
if ((failed)); then
    echo "$failed attack(s) got through"
    exit 1
fi
echo "PASS"
