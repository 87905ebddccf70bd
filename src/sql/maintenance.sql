/*
 * src/sql/maintenance.sql — maintenance and partitions
 *
 * Monthly partitions of usage_events, retention, history pruning, and the
 * worker's periodic _maintenance().
 */

/*
 * Keys and indexes live on each partition, not on the partitioned table:
 * pg_dump re-attaches run-time partitions with their own indexes, which
 * would clash with indexes cloned from an extension-owned parent.  Every
 * partition gets the same set from this function.
 */
CREATE OR REPLACE FUNCTION llm_usage._partition_indexes(p_table text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format('ALTER TABLE llm_usage.%I ADD PRIMARY KEY (tenant_id, event_id, occurred_at)', p_table);
    EXECUTE format('CREATE INDEX ON llm_usage.%I (tenant_id, occurred_at)', p_table);
    EXECUTE format('CREATE INDEX ON llm_usage.%I USING brin (recorded_at)', p_table);
    EXECUTE format('CREATE INDEX ON llm_usage.%I USING brin (occurred_at)', p_table);
    EXECUTE format('CREATE INDEX ON llm_usage.%I (model) WHERE cost_usd IS NULL AND model IS NOT NULL', p_table);
END
$$;
COMMENT ON FUNCTION llm_usage._partition_indexes(text) IS
'Internal: the primary key and indexes every partition of usage_events has (tenant and time, recorded_at and occurred_at ranges, unpriced calls).';

/*
 * A partition can be read directly, bypassing the parent's row-level
 * security; so each one gets the parent's policy and loses every privilege
 * of PUBLIC and the extension's roles (ALTER DEFAULT PRIVILEGES could have
 * given some).  privileges.sql re-applies this to every partition on each
 * update.
 */
CREATE OR REPLACE FUNCTION llm_usage._secure_partition(p_table text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format('REVOKE ALL ON TABLE llm_usage.%I FROM PUBLIC, llm_usage_admin, llm_usage_app, llm_usage_reader', p_table);
    EXECUTE format('ALTER TABLE llm_usage.%I ENABLE ROW LEVEL SECURITY', p_table);
    EXECUTE format('DROP POLICY IF EXISTS tenant_isolation ON llm_usage.%I', p_table);
    EXECUTE format($p$CREATE POLICY tenant_isolation ON llm_usage.%I
                        USING ((SELECT llm_usage._is_admin())
                               OR tenant_id IN (SELECT unnest(llm_usage._my_tenants())))
                        WITH CHECK ((SELECT llm_usage._is_admin()))$p$, p_table);
    EXECUTE format('COMMENT ON POLICY tenant_isolation ON llm_usage.%I IS %L', p_table,
                   'Non-admin roles see only the rows of tenants granted to them; only admins write directly.');
END
$$;
COMMENT ON FUNCTION llm_usage._secure_partition(text) IS
'Internal: a partition of usage_events gets the parent''s row-level security policy and no privileges for PUBLIC or the extension''s roles (it is read through its parent).';

CREATE OR REPLACE FUNCTION llm_usage._partition_name(p_month date)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT 'usage_events_' || to_char(p_month, 'YYYYMM') $$;
COMMENT ON FUNCTION llm_usage._partition_name(date) IS 'Internal: the name of the monthly partition of usage_events for a month.';

/*
 * _ensure_partitions(from, to): a partition for every month from "from" to
 * "to", and for every month that has calls waiting in the default
 * partition.  A month's calls are moved out of the default partition into a
 * new table, which is then attached; all in the caller's transaction.
 */
CREATE OR REPLACE FUNCTION llm_usage._ensure_partitions(p_from date, p_to date)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    m     date;
    v_tab text;
    n     integer := 0;
BEGIN
    FOR m IN
        SELECT DISTINCT x.month FROM (
            SELECT generate_series(date_trunc('month', p_from), date_trunc('month', p_to), interval '1 month')::date AS month
            UNION
            SELECT DISTINCT date_trunc('month', d.occurred_at AT TIME ZONE 'UTC')::date FROM llm_usage.usage_events_default d
        ) x ORDER BY 1
    LOOP
        v_tab := llm_usage._partition_name(m);
        CONTINUE WHEN to_regclass('llm_usage.' || v_tab) IS NOT NULL;
        EXECUTE format('CREATE TABLE llm_usage.%I (LIKE llm_usage.usage_events INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING CONSTRAINTS)', v_tab);
        PERFORM llm_usage._partition_indexes(v_tab);
        PERFORM llm_usage._secure_partition(v_tab);
        EXECUTE format($q$WITH moved AS (
                              DELETE FROM llm_usage.usage_events_default
                               WHERE occurred_at >= %L::timestamp AT TIME ZONE 'UTC'
                                 AND occurred_at < %L::timestamp AT TIME ZONE 'UTC'
                           RETURNING *)
                           INSERT INTO llm_usage.%I (tenant_id, event_id, event_type, model, provider,
                               input_tokens, output_tokens, cached_input_tokens, cache_write_tokens, cost_usd,
                               price_id, latency_ms, status_code, result, metadata, request_id, occurred_at,
                               recorded_at)
                           SELECT tenant_id, event_id, event_type, model, provider, input_tokens, output_tokens,
                                  cached_input_tokens, cache_write_tokens, cost_usd, price_id, latency_ms,
                                  status_code, result, metadata, request_id, occurred_at, recorded_at
                             FROM moved$q$, m, m + interval '1 month', v_tab);
        EXECUTE format($q$ALTER TABLE llm_usage.usage_events ATTACH PARTITION llm_usage.%I
                           FOR VALUES FROM (%L) TO (%L)$q$,
                       v_tab, m::timestamp AT TIME ZONE 'UTC', (m + interval '1 month')::timestamp AT TIME ZONE 'UTC');
        EXECUTE format('COMMENT ON TABLE llm_usage.%I IS %L', v_tab,
                       format('Calls that occurred in %s (UTC); dropped after llm_usage.event_retention months.', to_char(m, 'YYYY-MM')));
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION llm_usage._ensure_partitions(date, date) IS
'Internal (worker): create the monthly partitions of usage_events from p_from to p_to and for calls waiting in the default partition.';

/*
 * _drop_old_partitions(): drop the monthly partitions that ended more than
 * llm_usage.event_retention months ago, once every roll-up has seen all of
 * their calls (no call recorded at or after the oldest roll-up watermark).
 */
CREATE OR REPLACE FUNCTION llm_usage._drop_old_partitions()
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_keep   timestamptz := date_trunc('month', now() AT TIME ZONE 'UTC')::timestamp AT TIME ZONE 'UTC'
                            - make_interval(months => coalesce(current_setting('llm_usage.event_retention', true), '13')::integer);
    v_wm     timestamptz;
    r        record;
    v_rolled boolean;
    n        integer := 0;
BEGIN
    SELECT CASE WHEN count(*) = 3 AND count(watermark) = 3 THEN min(watermark) END INTO v_wm
      FROM llm_usage.aggregation_state WHERE period_type IN ('hourly', 'daily', 'monthly');
    IF v_wm IS NULL THEN
        RETURN 0;               -- roll-ups have not all run yet: keep everything
    END IF;
    FOR r IN SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound
               FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = 'llm_usage.usage_events'::regclass AND c.relname ~ '^usage_events_[0-9]{6}$'
              ORDER BY c.relname
    LOOP
        CONTINUE WHEN (to_date(right(r.relname, 6), 'YYYYMM') + interval '1 month')::timestamp AT TIME ZONE 'UTC' > v_keep;
        EXECUTE format('SELECT NOT EXISTS (SELECT 1 FROM llm_usage.%I WHERE recorded_at >= %L)', r.relname, v_wm)
           INTO v_rolled;
        CONTINUE WHEN NOT v_rolled;
        EXECUTE format('ALTER TABLE llm_usage.usage_events DETACH PARTITION llm_usage.%I', r.relname);
        EXECUTE format('DROP TABLE llm_usage.%I', r.relname);
        DELETE FROM llm_usage.usage_requests
         WHERE occurred_at < (to_date(right(r.relname, 6), 'YYYYMM') + interval '1 month')::timestamp AT TIME ZONE 'UTC';
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION llm_usage._drop_old_partitions() IS
'Internal (worker): drop monthly partitions of usage_events older than llm_usage.event_retention whose calls are all rolled up.';

CREATE OR REPLACE FUNCTION llm_usage._prune_history()
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_before timestamptz := now() - make_interval(days => coalesce(current_setting('llm_usage.history_retention', true), '90')::integer);
    a integer;
    b integer;
BEGIN
    DELETE FROM llm_usage.collector_runs
     WHERE status IN ('succeeded', 'failed') AND finished_at < v_before;
    GET DIAGNOSTICS a = ROW_COUNT;
    DELETE FROM llm_usage.alerts
     WHERE created_at < v_before
       AND coalesce(webhook_status, 'delivered') <> 'pending' AND coalesce(email_status, 'delivered') <> 'pending';
    GET DIAGNOSTICS b = ROW_COUNT;
    RETURN a + b;
END
$$;
COMMENT ON FUNCTION llm_usage._prune_history() IS
'Internal (worker): delete finished collector runs and delivered alerts older than llm_usage.history_retention days.';

/*
 * _maintenance(): the worker's periodic steps, each in a subtransaction of
 * its own, so that one failing step (a broken roll-up, a full disk for a new
 * partition, whatever an application managed to store) never stops the
 * others: a failure is rolled back, reported as a maintenance_failed alert
 * with its reason (_maintenance_failed) and named in the result's "failed".
 *
 * No step waits more than 5 s for a lock (lock_timeout): attaching a new
 * partition needs an ACCESS EXCLUSIVE lock on usage_events_default, and a
 * transaction that an application left open after an API call that
 * touched it would otherwise hold maintenance forever, with every reader
 * of usage_events queued behind maintenance's lock request.  A step that
 * times out (55P03) fails like any other and is tried again next run.
 */
CREATE OR REPLACE FUNCTION llm_usage._maintenance()
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '5s'
AS $$
DECLARE
    v_today  date := (now() AT TIME ZONE 'UTC')::date;
    v_step   text;
    v_n      integer;
    v_result jsonb := '{}';
    v_failed jsonb := '{}';
BEGIN
    FOREACH v_step IN ARRAY ARRAY['partitions_created', 'hourly', 'daily', 'monthly', 'quota_denials_written', 'alerts',
                                  'partitions_dropped', 'history_pruned', 'quota_counters_saved', 'access_pruned',
                                  'quota_entries_reclaimed']
    LOOP
        BEGIN
            v_n := CASE v_step
                       WHEN 'partitions_created' THEN llm_usage._ensure_partitions(v_today, v_today + 62)
                       WHEN 'hourly' THEN llm_usage.aggregate_usage_metrics('hourly')
                       WHEN 'daily' THEN llm_usage.aggregate_usage_metrics('daily')
                       WHEN 'monthly' THEN llm_usage.aggregate_usage_metrics('monthly')
                       WHEN 'quota_denials_written' THEN llm_usage._write_quota_denials(NULL, false)
                       WHEN 'alerts' THEN llm_usage.check_alerts()
                       WHEN 'partitions_dropped' THEN llm_usage._drop_old_partitions()
                       WHEN 'history_pruned' THEN llm_usage._prune_history()
                       WHEN 'quota_counters_saved' THEN llm_usage.save_quota_counters()
                       WHEN 'quota_entries_reclaimed' THEN llm_usage._shm_reclaim()
                       WHEN 'access_pruned' THEN llm_usage._prune_tenant_access()
                   END;
            v_result := v_result || jsonb_build_object(v_step, v_n);
        EXCEPTION WHEN OTHERS THEN
            v_failed := v_failed || jsonb_build_object(v_step, SQLSTATE || ': ' || SQLERRM);
            PERFORM llm_usage._maintenance_failed(v_step, SQLSTATE, SQLERRM);
        END;
    END LOOP;
    IF v_failed <> '{}' THEN
        v_result := v_result || jsonb_build_object('failed', v_failed);
    END IF;
    RETURN v_result;
END
$$;
COMMENT ON FUNCTION llm_usage._maintenance() IS
'Internal (worker, every llm_usage.aggregate_interval): make usage_events partitions two months ahead, roll up hourly, daily and monthly, write pending quota denials to the audit log, check alerts, drop partitions past llm_usage.event_retention, prune history past llm_usage.history_retention, copy the quota counters to their table, remove tenant grants of dropped roles, reclaim shared quota entries nobody can use; each step in a subtransaction of its own that waits at most 5 s for a lock (lock_timeout), a failing one reported as a maintenance_failed alert (and under "failed" in the result) while the others go on and it is tried again next run.';
