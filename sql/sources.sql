--
-- custom usage sources: registration, its checks and bad inputs, the row
-- checks of the ingest, attribution and the reading function (the HTTP side
-- and the worker are tested against the simulator by test/t_worker_sources.sh)
--
SELECT llm_usage.create_tenant('src1', 'pro');
SELECT llm_usage.create_tenant('src2', 'pro');
CREATE ROLE regress_src_admin LOGIN IN ROLE llm_usage_admin;
CREATE ROLE regress_src_mapper NOLOGIN;
CREATE ROLE regress_src_reader LOGIN IN ROLE llm_usage_reader;
SELECT llm_usage.grant_tenant_access('regress_src_reader', 'src2');
CREATE SCHEMA regress_maps;
GRANT USAGE ON SCHEMA regress_maps TO PUBLIC;
CREATE FUNCTION regress_maps.map(page jsonb, source_id bigint) RETURNS SETOF llm_usage.usage_source_row
LANGUAGE sql STABLE AS $$
    SELECT r->>'who', (r->>'from')::timestamptz, (r->>'to')::timestamptz, r->>'metric',
           (r->>'n')::numeric, 'requests', (r->>'usd')::numeric
      FROM jsonb_array_elements(page->'rows') r
$$;
CREATE FUNCTION regress_maps.not_a_map(page jsonb, source_id integer) RETURNS SETOF llm_usage.usage_source_row
LANGUAGE sql AS $$ SELECT NULL::llm_usage.usage_source_row WHERE false $$;
CREATE FUNCTION regress_maps.definer_map(page jsonb, source_id bigint) RETURNS SETOF llm_usage.usage_source_row
LANGUAGE sql SECURITY DEFINER AS $$ SELECT NULL::llm_usage.usage_source_row WHERE false $$;
CREATE FUNCTION regress_maps.hidden_map(page jsonb, source_id bigint) RETURNS SETOF llm_usage.usage_source_row
LANGUAGE sql AS $$ SELECT NULL::llm_usage.usage_source_row WHERE false $$;
REVOKE EXECUTE ON FUNCTION regress_maps.hidden_map(jsonb, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION regress_maps.map(jsonb, bigint) TO regress_src_mapper;

-- where custom sources may go is a superuser's decision
-- (llm_usage.source_url_prefixes); this session allows the endpoints below
SET llm_usage.source_url_prefixes = 'https://usage.example.test, http://127.0.0.1:, https://x.test';
SELECT base, llm_usage._source_url_allowed(base) AS allowed
  FROM unnest(ARRAY['https://usage.example.test', 'https://usage.example.test/v1', 'https://usage.example.testing',
                    'https://usage.example.test.evil.example', 'http://usage.example.test', 'http://127.0.0.1:9',
                    'http://127.0.0.10:9', 'https://x.test', 'https://169.254.169.254']) base;
SELECT try($$SELECT llm_usage.add_usage_source('meta', 'src1', 'http://169.254.169.254', '/latest?f={from}&t={to}', 'regress_maps.map(jsonb,bigint)', 'regress_src_mapper')$$);
SELECT try($$SELECT llm_usage.add_usage_source('near', 'src1', 'https://usage.example.test.evil.example', '/u?f={from}&t={to}', 'regress_maps.map(jsonb,bigint)', 'regress_src_mapper')$$);

-- a source with a bearer secret, cursor pages; one without authentication
SELECT llm_usage.add_usage_source('svc', 'src1', 'https://usage.example.test/v1', '/metrics/api-usage?from={from}&to={to}',
                                  'regress_maps.map(jsonb,bigint)', 'regress_src_mapper', auth => 'bearer',
                                  secret => 'svc-regress-secret-0001',
                                  pagination => '{"type": "cursor", "cursor_path": "meta.next_cursor"}') AS s1 \gset
SELECT llm_usage.add_usage_source('open', 'src1', 'http://127.0.0.1:9', '/usage/{from}/{to}',
                                  'regress_maps.map(jsonb,bigint)', 'regress_src_mapper', time_format => 'unix',
                                  per_day => true, pagination => '{"type": "page_number", "items_path": "rows"}') AS s2 \gset
SELECT name, tenant_id, auth, auth_name, secret_preview, pagination, mapping_function, run_as, is_active
  FROM llm_usage.usage_sources ORDER BY id;
-- the secret is a sealed provider_key_store row of provider custom, never in the source table
SELECT k.provider, k.label, position(convert_to('regress-secret', 'UTF8') in k.key_ciphertext) = 0 AS not_in_clear,
       s::text NOT LIKE '%regress-secret%' AS not_in_source_row
  FROM llm_usage.usage_source_store s JOIN llm_usage.provider_key_store k ON k.key_id = s.secret_key_id;
SELECT llm_usage.set_usage_source_secret(:s1, 'svc-regress-secret-0002');
SELECT secret_preview FROM llm_usage.usage_sources WHERE id = :s1;
SELECT action, details - 'source_id' - 'secret_key_id' AS details FROM llm_usage.security_events('src1')
 WHERE action LIKE '%usage_source%' ORDER BY audit_id;

\set VERBOSITY verbose
-- bad inputs: each changes nothing
SELECT try($$SELECT llm_usage.add_usage_source(NULL, 'src1', 'https://x.test', '/a?f={from}&t={to}', 'regress_maps.map(jsonb,bigint)', 'regress_src_mapper')$$);
SELECT try($$SELECT llm_usage.add_usage_source('bad name', 'src1', 'https://x.test', '/a?f={from}&t={to}', 'regress_maps.map(jsonb,bigint)', 'regress_src_mapper')$$);
SELECT try($$SELECT llm_usage.add_usage_source('svc', 'src1', 'https://x.test', '/a?f={from}&t={to}', 'regress_maps.map(jsonb,bigint)', 'regress_src_mapper')$$);
SELECT try($$SELECT llm_usage.add_usage_source('x', 'nobody', 'https://x.test', '/a?f={from}&t={to}', 'regress_maps.map(jsonb,bigint)', 'regress_src_mapper')$$);
SELECT try($$SELECT llm_usage.add_usage_source('x', 'src1', 'ftp://x.test', '/a?f={from}&t={to}', 'regress_maps.map(jsonb,bigint)', 'regress_src_mapper')$$);
SELECT try($$SELECT llm_usage.add_usage_source('x', 'src1', 'https://user:pw@x.test', '/a?f={from}&t={to}', 'regress_maps.map(jsonb,bigint)', 'regress_src_mapper')$$);
SELECT try($$SELECT llm_usage.add_usage_source('x', 'src1', 'https://x.test/', '/a?f={from}&t={to}', 'regress_maps.map(jsonb,bigint)', 'regress_src_mapper')$$);
SELECT try($$SELECT llm_usage.add_usage_source('x', 'src1', 'https://x.test', 'a?f={from}&t={to}', 'regress_maps.map(jsonb,bigint)', 'regress_src_mapper')$$);
-- "." and ".." segments (libcurl resolves them: out of the allowed prefix's path)
SELECT try($$SELECT llm_usage.add_usage_source('x', 'src1', 'https://x.test/v2/..', '/a?f={from}&t={to}', 'regress_maps.map(jsonb,bigint)', 'regress_src_mapper')$$);
SELECT try($$SELECT llm_usage.add_usage_source('x', 'src1', 'https://x.test', '/%2e%2E/a?f={from}&t={to}', 'regress_maps.map(jsonb,bigint)', 'regress_src_mapper')$$);
SELECT try($$SELECT llm_usage.add_usage_source('x', 'src1', 'https://x.test', '/a?f={from}', 'regress_maps.map(jsonb,bigint)', 'regress_src_mapper')$$);
SELECT try($$SELECT llm_usage.add_usage_source('x', 'src1', 'https://x.test', '/a?f={from}&t={to}&u={user}', 'regress_maps.map(jsonb,bigint)', 'regress_src_mapper')$$);
SELECT try($$SELECT llm_usage.add_usage_source('x', 'src1', 'https://x.test', '/a b?f={from}&t={to}', 'regress_maps.map(jsonb,bigint)', 'regress_src_mapper')$$);
SELECT try($$SELECT llm_usage.add_usage_source('x', 'src1', 'https://x.test', '/a?f={from}&t={to}#frag', 'regress_maps.map(jsonb,bigint)', 'regress_src_mapper')$$);
SELECT try($$SELECT llm_usage.add_usage_source('x', 'src1', 'https://x.test', '/a?f={from}&t={to}', 'regress_maps.map(jsonb,bigint)', 'regress_src_mapper', time_format => 'iso')$$);
SELECT try($$SELECT llm_usage.add_usage_source('x', 'src1', 'https://x.test', '/a?f={from}&t={to}', 'regress_maps.map(jsonb,bigint)', 'regress_src_mapper', auth => 'basic', secret => 'abcdefgh1')$$);
SELECT try($$SELECT llm_usage.add_usage_source('x', 'src1', 'https://x.test', '/a?f={from}&t={to}', 'regress_maps.map(jsonb,bigint)', 'regress_src_mapper', auth => 'bearer')$$);
SELECT try($$SELECT llm_usage.add_usage_source('x', 'src1', 'https://x.test', '/a?f={from}&t={to}', 'regress_maps.map(jsonb,bigint)', 'regress_src_mapper', auth => 'bearer', secret => 'short')$$);
SELECT try($$SELECT llm_usage.add_usage_source('x', 'src1', 'https://x.test', '/a?f={from}&t={to}', 'regress_maps.map(jsonb,bigint)', 'regress_src_mapper', secret => 'abcdefgh1')$$);
SELECT try($$SELECT llm_usage.add_usage_source('x', 'src1', 'https://x.test', '/a?f={from}&t={to}', 'regress_maps.map(jsonb,bigint)', 'regress_src_mapper', auth => 'header', secret => 'abcdefgh1')$$);
SELECT try($$SELECT llm_usage.add_usage_source('x', 'src1', 'https://x.test', '/a?f={from}&t={to}', 'regress_maps.map(jsonb,bigint)', 'regress_src_mapper', auth => 'header', auth_name => 'Host', secret => 'abcdefgh1')$$);
SELECT try($$SELECT llm_usage.add_usage_source('x', 'src1', 'https://x.test', '/a?f={from}&t={to}', 'regress_maps.map(jsonb,bigint)', 'regress_src_mapper', auth => 'header', auth_name => E'X-Key\r\nX-Other', secret => 'abcdefgh1')$$);
SELECT try($$SELECT llm_usage.add_usage_source('x', 'src1', 'https://x.test', '/a?f={from}&t={to}', 'regress_maps.map(jsonb,bigint)', 'regress_src_mapper', auth => 'query', auth_name => 'key&x=1', secret => 'abcdefgh1')$$);
SELECT try($$SELECT llm_usage.add_usage_source('x', 'src1', 'https://x.test', '/a?f={from}&t={to}', 'regress_maps.map(jsonb,bigint)', 'regress_src_mapper', auth => 'bearer', auth_name => 'X', secret => 'abcdefgh1')$$);
SELECT try($$SELECT llm_usage.add_usage_source('x', 'src1', 'https://x.test', '/a?f={from}&t={to}', 'regress_maps.map(jsonb,bigint)', 'regress_src_mapper', pagination => '"cursor"')$$);
SELECT try($$SELECT llm_usage.add_usage_source('x', 'src1', 'https://x.test', '/a?f={from}&t={to}', 'regress_maps.map(jsonb,bigint)', 'regress_src_mapper', pagination => '{"type": "offset"}')$$);
SELECT try($$SELECT llm_usage.add_usage_source('x', 'src1', 'https://x.test', '/a?f={from}&t={to}', 'regress_maps.map(jsonb,bigint)', 'regress_src_mapper', pagination => '{"type": "cursor"}')$$);
SELECT try($$SELECT llm_usage.add_usage_source('x', 'src1', 'https://x.test', '/a?f={from}&t={to}', 'regress_maps.map(jsonb,bigint)', 'regress_src_mapper', pagination => '{"type": "cursor", "cursor_path": "a..b"}')$$);
SELECT try($$SELECT llm_usage.add_usage_source('x', 'src1', 'https://x.test', '/a?f={from}&t={to}', 'regress_maps.map(jsonb,bigint)', 'regress_src_mapper', pagination => '{"type": "cursor", "cursor_path": "c", "items_path": "d"}')$$);
SELECT try($$SELECT llm_usage.add_usage_source('x', 'src1', 'https://x.test', '/a?f={from}&t={to}', 'regress_maps.map(jsonb,bigint)', 'regress_src_mapper', pagination => '{"type": "page_number", "items_path": "d", "first": 2}')$$);
SELECT try($$SELECT llm_usage.add_usage_source('x', 'src1', 'https://x.test', '/a?f={from}&t={to}', 'regress_maps.map(jsonb,bigint)', 'regress_src_mapper', pagination => '{"type": "has_more", "param": "p=1&q"}')$$);
SELECT try($$SELECT llm_usage.add_usage_source('x', 'src1', 'https://x.test', '/a?f={from}&t={to}', 'regress_maps.map(jsonb,bigint)', 'regress_src_mapper', per_day => NULL)$$);
-- the mapping function: its signature, not SECURITY DEFINER, executable by the role
SELECT try($$SELECT llm_usage.add_usage_source('x', 'src1', 'https://x.test', '/a?f={from}&t={to}', NULL, 'regress_src_mapper')$$);
SELECT try($$SELECT llm_usage.add_usage_source('x', 'src1', 'https://x.test', '/a?f={from}&t={to}', 'regress_maps.not_a_map(jsonb,integer)', 'regress_src_mapper')$$);
SELECT try($$SELECT llm_usage.add_usage_source('x', 'src1', 'https://x.test', '/a?f={from}&t={to}', 'regress_maps.definer_map(jsonb,bigint)', 'regress_src_mapper')$$);
SELECT try($$SELECT llm_usage.add_usage_source('x', 'src1', 'https://x.test', '/a?f={from}&t={to}', 'regress_maps.hidden_map(jsonb,bigint)', 'regress_src_mapper')$$);
-- owned by a role that may not act as the mapping role (it could rewrite the function at any time)
CREATE FUNCTION regress_maps.others_map(page jsonb, source_id bigint) RETURNS SETOF llm_usage.usage_source_row
    LANGUAGE sql STABLE AS $$ SELECT * FROM regress_maps.map(page, source_id) $$;
GRANT EXECUTE ON FUNCTION regress_maps.others_map(jsonb, bigint) TO regress_src_mapper;
ALTER FUNCTION regress_maps.others_map(jsonb, bigint) OWNER TO regress_src_reader;
SELECT try($$SELECT llm_usage.add_usage_source('x', 'src1', 'https://x.test', '/a?f={from}&t={to}', 'regress_maps.others_map(jsonb,bigint)', 'regress_src_mapper')$$);
DROP FUNCTION regress_maps.others_map(jsonb, bigint);
-- the role: never a superuser, nor one with BYPASSRLS, CREATEROLE or the all-data and server-file roles
SELECT try($$SELECT llm_usage.add_usage_source('x', 'src1', 'https://x.test', '/a?f={from}&t={to}', 'regress_maps.map(jsonb,bigint)', NULL)$$);
SELECT try($$SELECT llm_usage.add_usage_source('x', 'src1', 'https://x.test', '/a?f={from}&t={to}', 'regress_maps.map(jsonb,bigint)', current_user::regrole)$$);
ALTER ROLE regress_src_mapper BYPASSRLS CREATEROLE;
SELECT try($$SELECT llm_usage.add_usage_source('x', 'src1', 'https://x.test', '/a?f={from}&t={to}', 'regress_maps.map(jsonb,bigint)', 'regress_src_mapper')$$);
ALTER ROLE regress_src_mapper NOBYPASSRLS NOCREATEROLE;
GRANT pg_read_all_data TO regress_src_mapper;
SELECT try($$SELECT llm_usage.add_usage_source('x', 'src1', 'https://x.test', '/a?f={from}&t={to}', 'regress_maps.map(jsonb,bigint)', 'regress_src_mapper')$$);
REVOKE pg_read_all_data FROM regress_src_mapper;
GRANT pg_monitor TO regress_src_mapper;
SELECT try($$SELECT llm_usage.add_usage_source('x', 'src1', 'https://x.test', '/a?f={from}&t={to}', 'regress_maps.map(jsonb,bigint)', 'regress_src_mapper')$$);
REVOKE pg_monitor FROM regress_src_mapper;
GRANT pg_read_all_settings TO regress_src_mapper;
SELECT try($$SELECT llm_usage.add_usage_source('x', 'src1', 'https://x.test', '/a?f={from}&t={to}', 'regress_maps.map(jsonb,bigint)', 'regress_src_mapper')$$);
REVOKE pg_read_all_settings FROM regress_src_mapper;
-- a non-superuser admin may not widen where sources may go
SET ROLE regress_src_admin;
SELECT try($$SET llm_usage.source_url_prefixes = 'http://169.254.169.254'$$);
RESET ROLE;
-- a non-superuser admin may name only a role it could SET ROLE to
SET ROLE regress_src_admin;
SELECT try($$SELECT llm_usage.add_usage_source('x', 'src1', 'https://x.test', '/a?f={from}&t={to}', 'regress_maps.map(jsonb,bigint)', 'regress_src_mapper')$$);
RESET ROLE;
GRANT regress_src_mapper TO regress_src_admin;
SET ROLE regress_src_admin;
SELECT llm_usage.add_usage_source('by_admin', 'src2', 'https://x.test', '/a?f={from}&t={to}', 'regress_maps.map(jsonb,bigint)', 'regress_src_mapper') AS s3 \gset
SELECT registered_by FROM llm_usage.usage_sources WHERE id = :s3;
RESET ROLE;
-- ... and the check is made again before every run: the admin left the role
REVOKE regress_src_mapper FROM regress_src_admin;
SELECT try(format('SELECT * FROM llm_usage._source_mapping_for_run(%s)', :s3));
GRANT regress_src_mapper TO regress_src_admin;
SELECT fn::regprocedure, role_id::regrole FROM llm_usage._source_mapping_for_run(:s3);
SELECT count(*) AS sources FROM llm_usage.usage_source_store;

-- the other functions' bad inputs
SELECT try($$SELECT llm_usage.set_usage_source_secret(999999, 'abcdefgh1')$$);
SELECT try(format($$SELECT llm_usage.set_usage_source_secret(%s, 'abcdefgh1')$$, :s2));
SELECT try(format($$SELECT llm_usage.set_usage_source_secret(%s, NULL)$$, :s1));
SELECT try(format($$SELECT llm_usage.set_usage_source_mapping(%s, 'regress_maps.definer_map(jsonb,bigint)', 'regress_src_mapper')$$, :s1));
SELECT try($$SELECT llm_usage.deactivate_usage_source(NULL)$$);
SELECT try($$SELECT llm_usage.attribute_source_usage(999999, 'a', 'src1')$$);
SELECT try(format($$SELECT llm_usage.attribute_source_usage(%s, '', 'src1')$$, :s1));
SELECT try(format($$SELECT llm_usage.attribute_source_usage(%s, 'a', 'nobody')$$, :s1));
SELECT try($$SELECT llm_usage.collect_source_now(999999)$$);
SELECT try(format($$SELECT llm_usage.collect_source_now(%s, '2026-10-05', '2026-10-01')$$, :s1));
SELECT try(format($$SELECT llm_usage.collect_source_now(%s, '2026-10-01', '2999-01-01')$$, :s1));
SELECT try($$SELECT llm_usage.source_usage('src1', '2026-10-05', '2026-10-01')$$);
-- only admins register, change or collect sources
SET ROLE regress_src_reader;
SELECT try($$SELECT llm_usage.add_usage_source('x', 'src2', 'https://x.test', '/a?f={from}&t={to}', 'regress_maps.map(jsonb,bigint)', 'regress_src_mapper')$$);
SELECT try(format('SELECT llm_usage.collect_source_now(%s)', :s3));
SELECT try(format('SELECT llm_usage.deactivate_usage_source(%s)', :s3));
SELECT try($$SELECT count(*) FROM llm_usage.usage_source_store$$);
RESET ROLE;
\set VERBOSITY default

-- deactivate drops the queued runs, activate checks again
SET client_min_messages = error;
SELECT llm_usage.collect_source_now(:s2, '2026-10-01', '2026-10-02') AS r1 \gset
RESET client_min_messages;
SELECT provider, trigger, tenant_id, window_from, window_to, status FROM llm_usage.collector_runs WHERE run_id = :r1;
SELECT llm_usage.deactivate_usage_source(:s2);
SELECT status, error FROM llm_usage.collector_runs WHERE run_id = :r1;
SELECT try(format('SELECT llm_usage.collect_source_now(%s)', :s2));
ALTER FUNCTION regress_maps.map(jsonb, bigint) SECURITY DEFINER;
SELECT try(format('SELECT llm_usage.activate_usage_source(%s)', :s2));
ALTER FUNCTION regress_maps.map(jsonb, bigint) SECURITY INVOKER;
SELECT llm_usage.activate_usage_source(:s2);

-- the ingest: a run of source s1 over 2026-10-01 .. 2026-10-03, rows as a mapping function makes them
INSERT INTO llm_usage.collector_runs (source_id, tenant_id, provider, trigger, window_from, window_to, status)
VALUES (:s1, 'src1', 'custom', 'manual', '2026-10-01 00:00+00', '2026-10-03 00:00+00', 'running')
RETURNING run_id AS run \gset
SELECT llm_usage.attribute_source_usage(:s1, 'team-b', 'src2');
CREATE FUNCTION pg_temp.rows(j jsonb) RETURNS llm_usage.usage_source_row[] LANGUAGE sql AS
$$ SELECT array_agg(m) FROM regress_maps.map(j, 0) m $$;
SELECT llm_usage._ingest_source_rows(:run, 1, pg_temp.rows('{"rows": [
  {"who": null, "from": "2026-10-01Z", "to": "2026-10-02Z", "metric": "requests", "n": 10, "usd": "0.5"},
  {"who": "team-b", "from": "2026-10-01Z", "to": "2026-10-02Z", "metric": "requests", "n": 20},
  {"who": "src2", "from": "2026-10-02Z", "to": "2026-10-03Z", "metric": "requests", "n": 30, "usd": "1.25"},
  {"who": "nobody-known", "from": "2026-10-02Z", "to": "2026-10-03Z", "metric": "requests", "n": 40}]}'));
SELECT tenant_id, attributed_by, attribution, bucket_start, metric, quantity, cost_usd
  FROM llm_usage.custom_usage ORDER BY bucket_start, attribution NULLS FIRST;
\set VERBOSITY verbose
-- a row the same run already wrote, or a bad row, fails the run
SELECT try(format($$SELECT llm_usage._ingest_source_rows(%s, 2, pg_temp.rows('{"rows": [{"who": "src2", "from": "2026-10-02Z", "to": "2026-10-03Z", "metric": "requests", "n": 31}]}'))$$, :run));
SELECT try(format($$SELECT llm_usage._ingest_source_rows(%s, 2, pg_temp.rows('{"rows": [{"who": "x", "from": "2026-10-02Z", "to": "2026-10-03Z", "metric": "m", "n": 1}, {"who": "x", "from": "2026-10-02Z", "to": "2026-10-03Z", "metric": "m", "n": 2}]}'))$$, :run));
SELECT try(format($$SELECT llm_usage._ingest_source_rows(%s, 3, pg_temp.rows('{"rows": [{"who": "x", "from": "2026-10-02Z", "to": "2026-10-04Z", "metric": "m", "n": 1}]}'))$$, :run));
SELECT try(format($$SELECT llm_usage._ingest_source_rows(%s, 3, pg_temp.rows('{"rows": [{"who": "x", "from": "2026-10-02Z", "to": "2026-10-02Z", "metric": "m", "n": 1}]}'))$$, :run));
SELECT try(format($$SELECT llm_usage._ingest_source_rows(%s, 3, pg_temp.rows('{"rows": [{"who": "x", "from": null, "to": "2026-10-02Z", "metric": "m", "n": 1}]}'))$$, :run));
SELECT try(format($$SELECT llm_usage._ingest_source_rows(%s, 3, pg_temp.rows('{"rows": [{"who": "x", "from": "2026-10-01Z", "to": "2026-10-02Z", "metric": "", "n": 1}]}'))$$, :run));
SELECT try(format($$SELECT llm_usage._ingest_source_rows(%s, 3, pg_temp.rows('{"rows": [{"who": "x", "from": "2026-10-01Z", "to": "2026-10-02Z", "metric": "m", "n": -1}]}'))$$, :run));
SELECT try(format($$SELECT llm_usage._ingest_source_rows(%s, 3, pg_temp.rows('{"rows": [{"who": "x", "from": "2026-10-01Z", "to": "2026-10-02Z", "metric": "m", "n": "NaN"}]}'))$$, :run));
SELECT try(format($$SELECT llm_usage._ingest_source_rows(%s, 3, pg_temp.rows('{"rows": [{"who": "x", "from": "2026-10-01Z", "to": "2026-10-02Z", "metric": "m", "n": 1e16}]}'))$$, :run));
SELECT try(format($$SELECT llm_usage._ingest_source_rows(%s, 3, pg_temp.rows('{"rows": [{"who": "x", "from": "2026-10-01Z", "to": "2026-10-02Z", "metric": "m", "n": 1, "usd": "1e13"}]}'))$$, :run));
SELECT try(format($$SELECT llm_usage._ingest_source_rows(%s, 3, pg_temp.rows('{"rows": [{"who": "a\u0007b", "from": "2026-10-01Z", "to": "2026-10-02Z", "metric": "m", "n": 1}]}'))$$, :run));
SELECT try(format($$SELECT llm_usage._ingest_source_rows(%s, 3, pg_temp.rows('{"rows": [{"who": "x", "from": "infinity", "to": "2026-10-02Z", "metric": "m", "n": 1}]}'))$$, :run));
\set VERBOSITY default
-- re-collecting in a later run updates rows in place
INSERT INTO llm_usage.collector_runs (source_id, tenant_id, provider, trigger, window_from, window_to, status)
VALUES (:s1, 'src1', 'custom', 'manual', '2026-10-01 00:00+00', '2026-10-03 00:00+00', 'running')
RETURNING run_id AS run2 \gset
SELECT llm_usage._ingest_source_rows(:run2, 1, pg_temp.rows('{"rows": [
  {"who": "team-b", "from": "2026-10-01Z", "to": "2026-10-02Z", "metric": "requests", "n": 25, "usd": "0.1"}]}'));
SELECT count(*) AS rows, sum(quantity) AS quantity, count(*) FILTER (WHERE run_id = :run2) AS of_run2
  FROM llm_usage.custom_usage;
-- a later mapping moves rows already collected
SELECT llm_usage.attribute_source_usage(:s1, 'nobody-known', 'src2');
SELECT tenant_id, attributed_by, attribution, quantity FROM llm_usage.custom_usage ORDER BY bucket_start, attribution NULLS FIRST;
-- a reader sees its tenant's rows through the function; the sources'
-- configuration is for admins (no role reads a table or view of tenant data)
SET ROLE regress_src_reader;
SELECT tenant, source_name, attribution, quantity, cost_usd FROM llm_usage.source_usage() ORDER BY attribution;
SELECT tenant, quantity FROM llm_usage.source_usage('src2', '2026-10-02 00:00+00', '2026-10-03 00:00+00') ORDER BY attribution;
SELECT try($$SELECT count(*) FROM llm_usage.source_usage('src1')$$);
SELECT try($$SELECT name FROM llm_usage.usage_sources$$);
RESET ROLE;

-- clean up
SELECT llm_usage.deactivate_usage_source(id) FROM llm_usage.usage_sources ORDER BY id;
SELECT llm_usage.revoke_tenant_access('regress_src_reader', 'src2');
DROP SCHEMA regress_maps CASCADE;
REVOKE regress_src_mapper FROM regress_src_admin;
DROP OWNED BY regress_src_admin, regress_src_reader, regress_src_mapper;
DROP ROLE regress_src_admin, regress_src_reader, regress_src_mapper;
