/*
 * src/sql/post_install/partitions.sql — the default partition of usage_events (install only)
 *
 * After the functions, because every partition gets its keys and indexes
 * from llm_usage._partition_indexes() (src/sql/maintenance.sql).
 */

CREATE TABLE llm_usage.usage_events_default PARTITION OF llm_usage.usage_events DEFAULT;
SELECT llm_usage._partition_indexes('usage_events_default');
SELECT llm_usage._secure_partition('usage_events_default');
COMMENT ON TABLE llm_usage.usage_events_default IS
'Calls of months without a partition yet; the worker moves them into usage_events_YYYYMM.';
