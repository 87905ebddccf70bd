--
-- provider keys, collection requests, attribution: the SQL surface and its
-- bad inputs (the HTTP side is tested against the simulator by test/t_worker_*.sh)
--
SELECT llm_usage.create_tenant('k1', 'pro');
SELECT llm_usage.create_tenant('k2', 'pro');
SELECT (SELECT loaded FROM llm_usage._master_key_status()) AS master_key_loaded;

SELECT llm_usage.add_provider_key('k1', 'openai', 'sk-admin-regress-key-0001', 'main') AS k_openai \gset
SELECT llm_usage.add_provider_key('k1', 'openai', 'sk-admin-regress-key-0001', 'same key again') AS k_same \gset
SELECT llm_usage.add_provider_key('k2', 'anthropic', 'sk-ant-admin01-regress-0002') AS k_anthropic \gset
SELECT llm_usage.add_provider_key('k2', 'custom', 'custom-provider-token-0003', 'in-house gateway') AS k_custom \gset
SELECT tenant_id, provider, label, key_preview, is_active, key_version, last_sync_status
  FROM llm_usage.provider_keys ORDER BY id;
-- what is stored: AES-256-GCM (format byte, 12-byte nonce, 16-byte tag) of the key and of a 32-byte data key
SELECT key_id, octet_length(key_ciphertext) - 29 AS plaintext_length, octet_length(wrapped_dek) - 29 AS dek_length,
       position(convert_to('regress', 'UTF8') in key_ciphertext) = 0 AS not_in_clear
  FROM llm_usage.provider_key_store ORDER BY key_id;
-- the same key stored twice encrypts differently (fresh data key and nonce)
SELECT a.key_ciphertext <> b.key_ciphertext AS differs
  FROM llm_usage.provider_key_store a, llm_usage.provider_key_store b
 WHERE a.key_id = :k_openai AND b.key_id = :k_same;
-- ciphertext is bound to its row: unwrapping with another row's binding fails
SELECT try(format($$SELECT llm_usage._rewrap_key(wrapped_dek, master_key_version, %L) FROM llm_usage.provider_key_store WHERE key_id = %s$$,
                  llm_usage._key_aad(:k_same, 'k1', 'openai', 1), :k_openai));
SELECT try(format($$SELECT llm_usage._rewrap_key(wrapped_dek, master_key_version, %L) FROM llm_usage.provider_key_store WHERE key_id = %s$$,
                  llm_usage._key_aad(:k_openai, 'k1', 'openai', 1), :k_openai));

-- rotate, deactivate, reactivate
SELECT llm_usage.rotate_provider_key(:k_openai, 'sk-admin-regress-key-9999');
SELECT key_preview, key_version, is_active, rotated_at IS NOT NULL AS rotated FROM llm_usage.provider_keys WHERE id = :k_openai;
SELECT llm_usage.deactivate_provider_key(:k_same);
SELECT is_active FROM llm_usage.provider_keys WHERE id = :k_same;
SELECT try(format('SELECT llm_usage.collect_now(%s)', :k_same));
SELECT llm_usage.rotate_provider_key(:k_same, 'sk-admin-regress-key-8888');
SELECT is_active, key_version FROM llm_usage.provider_keys WHERE id = :k_same;
SELECT action, details - 'key_id' AS details FROM llm_usage.security_events('k1') WHERE action LIKE '%provider_key' ORDER BY audit_id;

-- master key rotation: after one pass every key is on the newest version in
-- the file, and a second pass has nothing to do
SET client_min_messages = warning;
SELECT llm_usage.rotate_master_key() >= 0 AS rotated;
SELECT llm_usage.rotate_master_key() AS second_pass;
RESET client_min_messages;
SELECT count(DISTINCT master_key_version) AS versions_in_use FROM llm_usage.provider_key_store;

-- bad input: clear errors, nothing stored
SELECT count(*) AS keys FROM llm_usage.provider_key_store;
SELECT try($$SELECT llm_usage.add_provider_key(NULL, 'openai', 'sk-admin-xxxxxxxx')$$);
SELECT try($$SELECT llm_usage.add_provider_key('nobody', 'openai', 'sk-admin-xxxxxxxx')$$);
SELECT try($$SELECT llm_usage.add_provider_key('k1', 'google', 'sk-admin-xxxxxxxx')$$);
SELECT try($$SELECT llm_usage.add_provider_key('k1', NULL, 'sk-admin-xxxxxxxx')$$);
SELECT try($$SELECT llm_usage.add_provider_key('k1', 'openai', NULL)$$);
SELECT try($$SELECT llm_usage.add_provider_key('k1', 'openai', 'short')$$);
SELECT try($$SELECT llm_usage.add_provider_key('k1', 'openai', 'sk-admin with space')$$);
SELECT try($$SELECT llm_usage.add_provider_key('k1', 'openai', 'sk-admin-xxxxxxxx', '')$$);
SELECT try($$SELECT llm_usage.add_provider_key('k1', 'openai', 'sk-admin-xxxxxxxx', validate => NULL)$$);
SELECT try($$SELECT llm_usage.add_provider_key('k1', 'custom', 'sk-admin-xxxxxxxx', validate => true)$$);
SELECT try($$SELECT llm_usage.rotate_provider_key(NULL, 'sk-admin-xxxxxxxx')$$);
SELECT try($$SELECT llm_usage.rotate_provider_key(999999, 'sk-admin-xxxxxxxx')$$);
SELECT try(format($$SELECT llm_usage.rotate_provider_key(%s, 'x')$$, :k_openai));
SELECT try($$SELECT llm_usage.deactivate_provider_key(999999)$$);
SELECT try($$SELECT llm_usage.deactivate_provider_key(NULL)$$);
SELECT count(*) AS keys, max(key_version) AS max_key_version FROM llm_usage.provider_key_store;

SELECT try($$SELECT llm_usage.collect_now(999999)$$);
SELECT try(format('SELECT llm_usage.collect_now(%s)', :k_custom));
SELECT try($$SELECT llm_usage.collect_now(NULL, '2026-02-01', '2026-01-01')$$);
SELECT try($$SELECT llm_usage.collect_now(NULL, NULL, '2999-01-01')$$);
SELECT try($$SELECT llm_usage.collect_now(NULL, '1990-01-01')$$);
SELECT count(*) AS runs FROM llm_usage.collector_runs;

SELECT try($$SELECT llm_usage.attribute_provider_usage('google', 'project_id', 'p', 'k2')$$);
SELECT try($$SELECT llm_usage.attribute_provider_usage('openai', 'model', 'p', 'k2')$$);
SELECT try($$SELECT llm_usage.attribute_provider_usage('openai', 'project_id', '', 'k2')$$);
SELECT try($$SELECT llm_usage.attribute_provider_usage('openai', 'project_id', 'p', 'nobody')$$);
SELECT try($$SELECT llm_usage.attribute_provider_usage(NULL, 'project_id', 'p', 'k2')$$);
SELECT try($$SELECT llm_usage.attribute_provider_usage('openai', NULL, 'p', 'k2')$$);
SELECT llm_usage.attribute_provider_usage('openai', 'project_id', 'proj_x', 'k2');
SELECT llm_usage.attribute_provider_usage('openai', 'project_id', 'proj_x', 'k1');   -- remapped
SELECT provider, dimension, value, tenant_id FROM llm_usage.provider_attributions;

\set SHOW_CONTEXT never
SELECT llm_usage.add_provider_key('k1', 'google', 'sk-admin-xxxxxxxx');
SELECT llm_usage.collect_now(999999);

-- the collector's own tables and views
SELECT attname FROM pg_attribute WHERE attrelid = 'llm_usage.provider_keys'::regclass AND attnum > 0 ORDER BY attnum;
SELECT attname FROM pg_attribute WHERE attrelid = 'llm_usage.reconciliation'::regclass AND attnum > 0 ORDER BY attnum;
SELECT has_table_privilege('llm_usage_admin', 'llm_usage.provider_key_store', 'SELECT') AS admin_reads_ciphertext,
       has_table_privilege('llm_usage_reader', 'llm_usage.provider_keys', 'SELECT') AS reader_reads_keys_view;
