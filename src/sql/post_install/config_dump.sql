/*
 * src/sql/post_install/config_dump.sql — what pg_dump carries (install only)
 *
 * User data is dumped with the extension; shipped plans and prices are
 * recreated by CREATE EXTENSION instead.  Identity and id sequences are
 * dumped so that ids continue after a restore.
 */

SELECT pg_catalog.pg_extension_config_dump('llm_usage.plans', 'WHERE NOT is_shipped');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.plan_quotas', 'WHERE NOT is_shipped');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.model_price_versions', 'WHERE NOT is_shipped');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.event_types', 'WHERE NOT is_shipped');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.model_price_versions_price_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.tenants', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.tenant_quota_overrides', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.quota_counters_table', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.tenant_access', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.usage_events_default', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.usage_events_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.usage_requests', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.tenant_usage_metrics', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.aggregation_state', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.provider_usage', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.provider_usage_usage_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.provider_costs', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.provider_costs_cost_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.provider_key_store', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.provider_key_store_key_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.collector_runs', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.collector_runs_run_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.provider_attributions', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.audit_events', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.audit_events_audit_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.credit_balances', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.credit_ledger', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.credit_ledger_entry_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.alerts', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.alerts_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.alert_rule_overrides', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.alert_state', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.alert_quota_marks', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.usage_source_store', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.usage_source_store_source_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.usage_source_attributions', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.custom_usage', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.custom_usage_usage_id_seq', '');
