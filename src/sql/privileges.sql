/*
 * src/sql/privileges.sql — roles and grants: who may do what
 *
 * The one place where privileges are given.  Re-run by every upgrade after
 * the area files: each block first takes every privilege of the
 * extension's roles (and PUBLIC) on its objects away and then grants the
 * current set, so the result is this file, whatever earlier versions
 * granted.  The roles themselves are made in pre_install/roles.sql.
 *
 *   llm_usage_app     enforce, track, status, audit, deduct credits
 *   llm_usage_reader  roll-ups, dashboards, audit reads, alerts, collection runs,
 *                     FOCUS export, HTML report
 *   llm_usage_admin   everything (it has the other two)
 *
 * PUBLIC may execute nothing and read nothing.
 */

GRANT USAGE ON SCHEMA llm_usage TO llm_usage_admin, llm_usage_app, llm_usage_reader;

------------------------------------------------------------------------
-- Functions
------------------------------------------------------------------------
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA llm_usage FROM PUBLIC, llm_usage_admin, llm_usage_app, llm_usage_reader;

-- policy helpers must be callable by whoever reads the tables
GRANT EXECUTE ON FUNCTION llm_usage._caller(), llm_usage._is_admin(), llm_usage._my_tenants(),
                          llm_usage._can_access(text)
    TO llm_usage_admin, llm_usage_app, llm_usage_reader;

GRANT EXECUTE ON FUNCTION
    llm_usage.build_info(),
    llm_usage.quota_status(text),
    llm_usage.today_usage(text),
    llm_usage.calculate_cost(text, bigint, bigint, bigint, timestamptz, bigint, bigint, text),
    llm_usage.credit_balance(text),
    llm_usage.credit_ledger_for(text, integer),
    llm_usage._quota_counters(text),
    -- the rows of the quota_counters, provider_keys and reconciliation views
    llm_usage._provider_keys(),
    llm_usage._reconciliation()
    TO llm_usage_app, llm_usage_reader;

GRANT EXECUTE ON FUNCTION
    llm_usage.enforce_quota(text, text, numeric, text),
    llm_usage.enforce_quotas(text, jsonb, text),
    llm_usage.track_usage(text, text, text, bigint, bigint, bigint, integer, integer, text, jsonb, text, timestamptz, bigint, bigint, text),
    llm_usage.track_response_usage(text, text, text, jsonb, text, integer, integer, text, jsonb, text, timestamptz, text),
    llm_usage.audit(text, text, text, text, jsonb),
    llm_usage.deduct_credits(text, numeric, text, text),
    -- what the C enforce_quota and track_usage call as the calling role
    llm_usage._enforce_quota_sql(text, text, numeric, text),
    llm_usage._track_usage_sql(text, text, text, bigint, bigint, bigint, integer, integer, text, jsonb, text, timestamptz, bigint, bigint, text),
    llm_usage._quota_configs(text, integer),
    llm_usage._plan_quotas(),
    llm_usage._quota_table_counters(text)
    TO llm_usage_app;

GRANT EXECUTE ON FUNCTION
    llm_usage.tenant_usage(text, timestamptz, timestamptz, text),
    llm_usage.top_consumers(text, text, integer),
    llm_usage.tenant_events(text, timestamptz, timestamptz, text, integer),
    llm_usage.usage_overview(text, text),
    llm_usage.cost_summary(text),
    llm_usage.price_reconciliation(date, date, text),
    llm_usage.unpriced_models(),
    llm_usage.audit_trail(text, integer),
    llm_usage.failed_operations(text, integer),
    llm_usage.security_events(text, integer),
    llm_usage.audit_report(text, timestamptz, timestamptz),
    llm_usage.alert_rules_for(text),
    llm_usage.acknowledge_alert(bigint),
    llm_usage.alerts_for(text, integer),
    llm_usage.collector_runs_for(text, integer),
    llm_usage.focus_export(timestamptz, timestamptz, text),
    llm_usage.usage_report_html(text, text),
    llm_usage.source_usage(text, timestamptz, timestamptz)
    TO llm_usage_reader;

GRANT EXECUTE ON FUNCTION
    llm_usage.create_plan(text, text, text),
    llm_usage.set_plan_quota(text, text, numeric, text),
    llm_usage.create_tenant(text, text, text),
    llm_usage.update_tenant(text, text, text),
    llm_usage.grant_tenant_access(regrole, text),
    llm_usage.revoke_tenant_access(regrole, text),
    llm_usage.set_custom_quota(text, text, numeric, text),
    llm_usage.clear_custom_quota(text, text, text),
    llm_usage.set_model_price(text, text, numeric, numeric, numeric, numeric, timestamptz, numeric, bigint, numeric, numeric,
                              numeric, numeric, numeric, numeric, numeric, numeric, numeric, numeric, numeric, numeric,
                              numeric, numeric, numeric, numeric, numeric),
    llm_usage.import_price_map(jsonb, timestamptz, text[]),
    llm_usage.set_event_type(text, text),
    llm_usage.remove_event_type(text),
    llm_usage.aggregate_usage_metrics(text, timestamptz),
    llm_usage.grant_credits(text, numeric, text, text),
    llm_usage.set_prepaid_billing(text, boolean, numeric),
    llm_usage.add_provider_key(text, text, text, text, boolean),
    llm_usage.rotate_provider_key(bigint, text, boolean),
    llm_usage.deactivate_provider_key(bigint),
    llm_usage.rotate_master_key(),
    llm_usage.collect_now(bigint, date, date),
    llm_usage.next_collection(text, timestamptz, text),
    llm_usage.attribute_provider_usage(text, text, text, text),
    llm_usage.add_usage_source(text, text, text, text, regprocedure, regrole, text, text, text, text, jsonb, boolean),
    llm_usage.set_usage_source_secret(bigint, text),
    llm_usage.set_usage_source_mapping(bigint, regprocedure, regrole),
    llm_usage.deactivate_usage_source(bigint),
    llm_usage.activate_usage_source(bigint),
    llm_usage.attribute_source_usage(bigint, text, text),
    llm_usage.collect_source_now(bigint, date, date),
    llm_usage.set_alert_rule(text, numeric, integer, boolean, text),
    llm_usage.check_alerts(),
    llm_usage.admin_summary(timestamptz, timestamptz, integer),
    llm_usage.save_quota_counters(),
    llm_usage.flush_quota_denials(),
    llm_usage._shm_credits(text),
    llm_usage._shm_status(),
    -- what the triggers of tables admins may write call: the time zone
    -- check of tenants, counter corrections through the quota_counters view
    llm_usage._check_timezone(text),
    llm_usage._zone_known(text),
    llm_usage._shm_usable(text),
    llm_usage._shm_set_counter(text, text, text, timestamptz, numeric),
    llm_usage._quota_counters_update()
    TO llm_usage_admin;

------------------------------------------------------------------------
-- Tables, views and sequences
------------------------------------------------------------------------
REVOKE ALL ON TABLE
    llm_usage.quota_types, llm_usage.plans, llm_usage.plan_quotas, llm_usage.tenants,
    llm_usage.tenant_quota_overrides, llm_usage.tenant_access, llm_usage.quota_counters_table,
    llm_usage.quota_denials_pending, llm_usage.quota_counters, llm_usage.model_price_versions, llm_usage.model_prices,
    llm_usage.usage_events, llm_usage.usage_requests, llm_usage.tenant_usage_metrics,
    llm_usage.aggregation_state, llm_usage.provider_usage, llm_usage.provider_costs,
    llm_usage.provider_key_store, llm_usage.provider_keys, llm_usage.collector_runs,
    llm_usage.provider_attributions, llm_usage.reconciliation, llm_usage.audit_events,
    llm_usage.credit_balances, llm_usage.credit_ledger, llm_usage.alerts, llm_usage.alert_rules,
    llm_usage.alert_rule_overrides, llm_usage.alert_state, llm_usage.alert_quota_marks, llm_usage.rollup_status,
    llm_usage.usage_source_store, llm_usage.usage_sources, llm_usage.usage_source_attributions,
    llm_usage.custom_usage, llm_usage.event_types, llm_usage.event_type_counters, llm_usage.quota_reservations,
    llm_usage.credit_holds
    FROM PUBLIC, llm_usage_admin, llm_usage_app, llm_usage_reader;

-- Catalog-like tables: readable by every llm_usage role.
GRANT SELECT ON llm_usage.quota_types, llm_usage.plans, llm_usage.plan_quotas,
                llm_usage.model_price_versions, llm_usage.model_prices, llm_usage.alert_rules,
                llm_usage.event_types, llm_usage.event_type_counters
    TO llm_usage_app, llm_usage_reader, llm_usage_admin;

-- Tenant tables: app and reader roles have no privilege on any table that
-- holds tenant data.  They read through the functions, whose bodies keep
-- to the caller's tenants explicitly, and through three views over such
-- functions.  Row-level security alone is not enough for a role that may
-- run queries on a table: a condition of its own ("WHERE tenant_id =
-- 'beta'") is leakproof, so the planner may use it as an index condition
-- below the policy's filter, and EXPLAIN ANALYZE then counts another
-- tenant's rows ("Rows Removed by Filter").  Row-level security stays, for
-- admins and as a second line.
GRANT SELECT ON llm_usage.quota_counters, llm_usage.provider_keys, llm_usage.reconciliation
    TO llm_usage_app, llm_usage_reader;
-- roll-up progress (no tenant data)
GRANT SELECT ON llm_usage.rollup_status TO llm_usage_reader;

-- Admins may also read and fix data directly, in tables only, with their
-- own rights.  Not: the audit log (written by the extension and by
-- audit(), never directly), price versions (history; set_model_price()
-- only), key ciphertext (the worker, which runs as the owner, only), runs
-- (the worker), and no view: a write through an auto-updatable view runs
-- with the view owner's rights (provider_keys over the key store).  Nor
-- who may act on a tenant (tenant_access) and money (credit_balances,
-- credit_ledger): grant_tenant_access()/revoke_tenant_access() and
-- grant_credits()/deduct_credits() audit every change, a direct write
-- would not.  Alerts: the worker delivers them signed as the extension's,
-- so admins may acknowledge (acknowledge_alert(), or UPDATE of
-- acknowledged_at) and delete them, never write one or change its text.
GRANT SELECT, INSERT, UPDATE, DELETE ON
    llm_usage.plans, llm_usage.plan_quotas, llm_usage.tenants, llm_usage.tenant_quota_overrides,
    llm_usage.quota_counters_table, llm_usage.usage_events, llm_usage.usage_requests,
    llm_usage.tenant_usage_metrics, llm_usage.aggregation_state, llm_usage.provider_usage,
    llm_usage.provider_costs, llm_usage.provider_attributions, llm_usage.alert_rule_overrides,
    llm_usage.custom_usage, llm_usage.usage_source_attributions
    TO llm_usage_admin;
GRANT SELECT, DELETE ON llm_usage.alerts TO llm_usage_admin;
GRANT UPDATE (acknowledged_at) ON llm_usage.alerts TO llm_usage_admin;
GRANT SELECT ON llm_usage.audit_events, llm_usage.provider_keys, llm_usage.collector_runs,
                llm_usage.reconciliation, llm_usage.alert_state, llm_usage.alert_quota_marks,
                llm_usage.rollup_status, llm_usage.tenant_access, llm_usage.credit_balances, llm_usage.credit_ledger,
                llm_usage.usage_sources, llm_usage.credit_holds
    TO llm_usage_admin;
-- counter corrections: the view is not auto-updatable, its INSTEAD OF
-- trigger runs with the admin's own rights
GRANT UPDATE ON llm_usage.quota_counters TO llm_usage_admin;

REVOKE ALL ON SEQUENCE
    llm_usage.model_price_versions_price_id_seq, llm_usage.usage_events_id_seq,
    llm_usage.provider_usage_usage_id_seq, llm_usage.provider_costs_cost_id_seq,
    llm_usage.provider_key_store_key_id_seq, llm_usage.collector_runs_run_id_seq,
    llm_usage.audit_events_audit_id_seq, llm_usage.credit_ledger_entry_id_seq, llm_usage.alerts_id_seq,
    llm_usage.usage_source_store_source_id_seq, llm_usage.custom_usage_usage_id_seq,
    llm_usage.credit_holds_hold_id_seq
    FROM PUBLIC, llm_usage_admin, llm_usage_app, llm_usage_reader;
GRANT USAGE ON SEQUENCE
    llm_usage.model_price_versions_price_id_seq, llm_usage.usage_events_id_seq,
    llm_usage.provider_usage_usage_id_seq, llm_usage.provider_costs_cost_id_seq,
    llm_usage.provider_key_store_key_id_seq, llm_usage.collector_runs_run_id_seq,
    llm_usage.audit_events_audit_id_seq, llm_usage.credit_ledger_entry_id_seq, llm_usage.alerts_id_seq,
    llm_usage.custom_usage_usage_id_seq
    TO llm_usage_admin;

------------------------------------------------------------------------
-- Row-level security: a role sees the rows of the tenants it was granted
-- (admins see everything); only admins write directly.  The helpers run
-- once per query (initplans).
------------------------------------------------------------------------
DO $rls$
DECLARE
    tbl text;
BEGIN
    FOREACH tbl IN ARRAY ARRAY['tenants', 'tenant_quota_overrides', 'quota_counters_table', 'quota_denials_pending', 'quota_reservations', 'tenant_access',
                               'usage_events', 'usage_requests', 'tenant_usage_metrics', 'provider_usage',
                               'provider_costs', 'audit_events', 'credit_balances', 'credit_ledger', 'credit_holds', 'alerts',
                               'collector_runs', 'provider_key_store', 'provider_attributions',
                               'alert_rule_overrides', 'alert_quota_marks', 'usage_source_store',
                               'usage_source_attributions', 'custom_usage']
    LOOP
        EXECUTE format('ALTER TABLE llm_usage.%I ENABLE ROW LEVEL SECURITY', tbl);
        EXECUTE format('DROP POLICY IF EXISTS tenant_isolation ON llm_usage.%I', tbl);
        EXECUTE format($p$CREATE POLICY tenant_isolation ON llm_usage.%I
                            USING ((SELECT llm_usage._is_admin())
                                   OR tenant_id IN (SELECT unnest(llm_usage._my_tenants())))
                            WITH CHECK ((SELECT llm_usage._is_admin()))$p$, tbl);
        EXECUTE format('COMMENT ON POLICY tenant_isolation ON llm_usage.%I IS %L', tbl,
                       'Non-admin roles see only the rows of tenants granted to them; only admins write directly.');
    END LOOP;
END
$rls$;

-- Partitions of usage_events (the default one and those the worker made at
-- run time): the same policy, no direct privileges.  Re-run by every
-- update, so partitions made by earlier versions get it too.
DO $partitions$
BEGIN
    PERFORM llm_usage._secure_partition(c.relname)
       FROM pg_catalog.pg_inherits i
       JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.inhrelid
      WHERE i.inhparent OPERATOR(pg_catalog.=) 'llm_usage.usage_events'::pg_catalog.regclass;
END
$partitions$;
