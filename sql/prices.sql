--
-- prices: every price dimension (long context with its threshold, cache
-- reads, 5-minute and 1-hour cache writes, batch, flex, priority),
-- set_model_price() and import_price_map() with every dimension, and
-- track_response_usage() from the providers' own usage objects
--
SET timezone = 'UTC';
SELECT llm_usage.create_tenant('prc', 'enterprise', 'UTC');

-- the issue's examples: long-context rates apply to cache reads too
-- (Claude Sonnet 4.5 above 200k input: input 6, cache read 0.6, output 22.5),
-- and GPT-5.4 has its own band above 272k input tokens
SELECT llm_usage.calculate_cost('claude-sonnet-4-5', 1234567, 234567, 34567) AS sonnet_long;
SELECT llm_usage.calculate_cost('gpt-5.4', 290000, 9000, 60000) AS gpt_5_4_long,
       llm_usage.calculate_cost('gpt-5.4', 272000, 9000, 60000) AS gpt_5_4_at_threshold;
SELECT model, long_context_threshold, input_long_context_usd_per_mtok, cached_input_long_context_usd_per_mtok,
       cache_write_long_context_usd_per_mtok, cache_write_1h_long_context_usd_per_mtok
  FROM llm_usage.model_prices
 WHERE model IN ('claude-sonnet-4-5', 'claude-sonnet-4-20250514', 'gpt-5.4', 'gpt-5.4-pro')
 ORDER BY model;

-- one model with every dimension, to see each rule at work
SELECT llm_usage.set_model_price('custom', 'prc-every', 3, 15, 0.3, 3.75, '2026-01-01',
                                 cache_write_1h_usd_per_mtok => 6, long_context_threshold => 200000,
                                 input_long_context_usd_per_mtok => 6, output_long_context_usd_per_mtok => 22.5,
                                 cached_input_long_context_usd_per_mtok => 0.6,
                                 batch_input_usd_per_mtok => 1.5, batch_output_usd_per_mtok => 7.5,
                                 flex_input_usd_per_mtok => 1.25, flex_output_usd_per_mtok => 7,
                                 flex_cached_input_usd_per_mtok => 0.13,
                                 priority_input_usd_per_mtok => 5, priority_output_usd_per_mtok => 25) > 0 AS priced;
-- each kind of token at its rate (per million: input 3, cached 0.3, 5-minute write 3.75, 1-hour write 6, output 15)
SELECT k, llm_usage.calculate_cost('prc-every', i, o, r, '2026-06-01', w5, w1) AS cost
  FROM (VALUES ('input', 1000000, 0, 0, 0, 0), ('output', 0, 1000000, 0, 0, 0), ('cache read', 1000000, 0, 1000000, 0, 0),
               ('5-minute write', 1000000, 0, 0, 1000000, 0), ('1-hour write', 1000000, 0, 0, 0, 1000000)) v(k, i, o, r, w5, w1)
 ORDER BY 1;
-- above the threshold every kind changes band: stored rates (input 6,
-- output 22.5, cached 0.6), and derived ones: 5-minute write 3.75 x 6/3 = 7.5,
-- 1-hour write 6 x 6/3 = 12
SELECT k, llm_usage.calculate_cost('prc-every', i, o, r, '2026-06-01', w5, w1) AS cost
  FROM (VALUES ('input', 1000000, 0, 0, 0, 0), ('output', 1000000, 1000000, 1000000, 0, 0),
               ('cache read', 1000000, 0, 1000000, 0, 0), ('5-minute write', 1000000, 0, 0, 1000000, 0),
               ('1-hour write', 1000000, 0, 0, 0, 1000000)) v(k, i, o, r, w5, w1)
 ORDER BY 1;
-- tiers, normal band: batch has its own input and output, cache reads at
-- 0.3 x 1.5/3; flex its own three; priority its own input and output, the
-- cache reads at 0.3 x 5/3
SELECT t, llm_usage.calculate_cost('prc-every', 100000, 10000, 40000, '2026-06-01', 10000, 5000, t) AS cost
  FROM unnest(ARRAY['standard', 'batch', 'flex', 'priority', 'default']) t;
-- tiers, long-context band: each tier rate times that kind's long-context factor
SELECT t, llm_usage.calculate_cost('prc-every', 300000, 10000, 40000, '2026-06-01', 10000, 5000, t) AS cost
  FROM unnest(ARRAY['standard', 'batch', 'flex', 'priority']) t;
-- a model without tier rates: batch at half the standard rates, flex and priority at standard
SELECT t, llm_usage.calculate_cost('gpt-4-0613', 1000000, 1000000, 0, at => '2026-06-01', service_tier => t) AS cost
  FROM unnest(ARRAY['standard', 'batch', 'flex', 'priority']) t;
-- the published batch rates where the map has them (gpt-4o-mini: 0.075 / 0.3)
SELECT batch_input_usd_per_mtok, batch_output_usd_per_mtok,
       llm_usage.calculate_cost('gpt-4o-mini', 1000000, 1000000, service_tier => 'batch') AS gpt_4o_mini_batch
  FROM llm_usage.model_prices WHERE model = 'gpt-4o-mini';
-- a 1-hour write without a 1-hour rate costs a 5-minute write (claude-4-opus-20250514)
SELECT llm_usage.calculate_cost('claude-4-opus-20250514', 1000, 0, 0, now(), 0, 1000)
     = llm_usage.calculate_cost('claude-4-opus-20250514', 1000, 0, 0, now(), 1000, 0) AS one_hour_at_5m_rate;

-- bad input: tiers and 1-hour writes
SELECT try($$SELECT llm_usage.calculate_cost('gpt-4o', 10, 1, service_tier => 'auto')$$);
SELECT try($$SELECT llm_usage.calculate_cost('gpt-4o', 10, 1, service_tier => NULL)$$);
SELECT try($$SELECT llm_usage.calculate_cost('gpt-4o', 10, 1, service_tier => 'Batch')$$);
SELECT try($$SELECT llm_usage.calculate_cost('gpt-4o', 10, 1, 0, now(), 0, -1)$$);
SELECT try($$SELECT llm_usage.calculate_cost('gpt-4o', 10, 1, 4, now(), 4, 3)$$);
SELECT try($$SELECT llm_usage.calculate_cost('gpt-4o', 10, 1, 0, now(), 0, NULL)$$);
\set VERBOSITY verbose
SELECT llm_usage.calculate_cost('gpt-4o', 10, 1, service_tier => 'scale');
\set VERBOSITY default

-- track_usage stores the tier and the 1-hour writes (C path: a recent call)
SELECT llm_usage.track_usage('prc', 'chat', 'prc-every', 300000, 10000, 40000, request_id => 'tier-1',
                             cache_write_tokens => 10000, cache_write_1h_tokens => 5000, service_tier => 'flex') > 0 AS tracked;
SELECT llm_usage.track_usage('prc', 'chat', 'prc-every', 100, 10, request_id => 'tier-2', service_tier => 'default') > 0 AS tracked;
SELECT request_id, input_tokens, cache_write_tokens, cache_write_1h_tokens, service_tier, cost_usd,
       cost_usd = llm_usage.calculate_cost(model, input_tokens, output_tokens, cached_input_tokens, occurred_at,
                                           cache_write_tokens, cache_write_1h_tokens, service_tier) AS as_calculated
  FROM llm_usage.usage_events WHERE tenant_id = 'prc' ORDER BY request_id;
SELECT try($$SELECT llm_usage.track_usage('prc', 'chat', 'gpt-4o', 10, 1, service_tier => 'economy')$$);
SELECT try($$SELECT llm_usage.track_usage('prc', 'chat', 'gpt-4o', 10, 1, cache_write_1h_tokens => 11)$$);

-- set_model_price: a new version says which rates of the previous one it leaves out
SELECT llm_usage.set_model_price('custom', 'prc-every', 4, 16, valid_from => now() + interval '1 day') > 0 AS repriced;
-- bad input: nothing is added
SELECT count(*) AS versions FROM llm_usage.model_price_versions WHERE model = 'prc-every';
SELECT try($$SELECT llm_usage.set_model_price('custom', 'prc-new', 1, 2, input_long_context_usd_per_mtok => 2)$$);
SELECT try($$SELECT llm_usage.set_model_price('custom', 'prc-new', 1, 2, long_context_threshold => 1000)$$);
SELECT try($$SELECT llm_usage.set_model_price('custom', 'prc-new', 1, 2, long_context_threshold => 0, output_long_context_usd_per_mtok => 3)$$);
SELECT try($$SELECT llm_usage.set_model_price('custom', 'prc-new', 1, 2, flex_input_usd_per_mtok => -1)$$);
SELECT try($$SELECT llm_usage.set_model_price('custom', 'prc-new', 1, 2, priority_cached_input_usd_per_mtok => 'NaN')$$);
SELECT try($$SELECT llm_usage.set_model_price('custom', 'prc-new', 1, 2, cache_write_1h_usd_per_mtok => 1e13)$$);
SELECT count(*) AS versions FROM llm_usage.model_price_versions WHERE model IN ('prc-every', 'prc-new');

-- import_price_map: a LiteLLM-format map (per-token costs)
CREATE TEMP TABLE prc_map (doc jsonb);
INSERT INTO prc_map VALUES ('{
  "sample_spec": {"input_cost_per_token": 0, "output_cost_per_token": 0, "litellm_provider": "one of litellm_provider", "mode": "chat"},
  "last_updated": "2026-08-01T00:00:00+00:00",
  "prc-gpt": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 2.5e-06, "output_cost_per_token": 1.5e-05,
              "cache_read_input_token_cost": 2.5e-07, "cache_read_input_token_cost_above_272k_tokens": 5e-07,
              "input_cost_per_token_above_272k_tokens": 5e-06, "output_cost_per_token_above_272k_tokens": 2.25e-05,
              "input_cost_per_token_flex": 1.25e-06, "output_cost_per_token_flex": 7.5e-06, "cache_read_input_token_cost_flex": 1.3e-07,
              "input_cost_per_token_priority": 5e-06, "output_cost_per_token_priority": 3e-05,
              "input_cost_per_token_batches": 1.25e-06, "output_cost_per_token_batches": 7.5e-06, "deprecation_date": "2027-03-05"},
  "prc-claude": {"litellm_provider": "anthropic", "mode": "chat", "input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05,
                 "cache_creation_input_token_cost": 3.75e-06, "cache_creation_input_token_cost_above_1hr": 6e-06,
                 "cache_read_input_token_cost": 3e-07, "input_cost_per_token_above_200k_tokens": 6e-06,
                 "output_cost_per_token_above_200k_tokens": 2.25e-05, "cache_read_input_token_cost_above_200k_tokens": 6e-07,
                 "cache_creation_input_token_cost_above_200k_tokens": 7.5e-06,
                 "cache_creation_input_token_cost_above_1hr_above_200k_tokens": 1.2e-05},
  "prc-davinci": {"litellm_provider": "text-completion-openai", "mode": "completion", "input_cost_per_token": 2e-06, "output_cost_per_token": 2e-06},
  "prc-embed": {"litellm_provider": "openai", "mode": "embedding", "input_cost_per_token": 2e-08, "output_cost_per_token": 0},
  "prc-image": {"litellm_provider": "openai", "mode": "image_generation", "input_cost_per_token": 5e-06, "output_cost_per_token": 4e-05},
  "prc-bedrock": {"litellm_provider": "bedrock", "mode": "chat", "input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05},
  "prc-noprice": {"litellm_provider": "openai", "mode": "chat"}
}');
SELECT model, provider, action, price_id > 0 AS added, changed FROM llm_usage.import_price_map((SELECT doc FROM prc_map), '2026-08-01') ORDER BY model;
SELECT model, provider, mode, input_usd_per_mtok, output_usd_per_mtok, cached_input_usd_per_mtok, cache_write_usd_per_mtok,
       cache_write_1h_usd_per_mtok, long_context_threshold, input_long_context_usd_per_mtok, output_long_context_usd_per_mtok,
       cached_input_long_context_usd_per_mtok, cache_write_long_context_usd_per_mtok, cache_write_1h_long_context_usd_per_mtok,
       batch_input_usd_per_mtok, flex_input_usd_per_mtok, flex_cached_input_usd_per_mtok, priority_output_usd_per_mtok,
       deprecation_date, valid_from, source
  FROM llm_usage.model_prices WHERE model LIKE 'prc-%' AND model <> 'prc-every' ORDER BY model;
-- the same map again: nothing changed, nothing added
SELECT count(*) AS added FROM llm_usage.import_price_map((SELECT doc FROM prc_map), '2026-08-02');
-- one price changed: one version, saying what changed; and other providers on request
SELECT model, provider, action, price_id > 0 AS added, changed
  FROM llm_usage.import_price_map(jsonb_set((SELECT doc FROM prc_map), '{prc-claude,cache_read_input_token_cost}', '3.5e-07'),
                                         providers => ARRAY['anthropic', 'bedrock']) ORDER BY model;
SELECT llm_usage.calculate_cost('prc-claude', 150000, 1000, 100000, '2026-08-02', 10000, 5000) AS before_change,
       llm_usage.calculate_cost('prc-claude', 150000, 1000, 100000, now(), 10000, 5000) AS after_change;

-- import_price_map: bad input changes nothing
SELECT count(*) AS versions_before FROM llm_usage.model_price_versions;
SELECT try($$SELECT llm_usage.import_price_map(NULL)$$);
SELECT try($$SELECT llm_usage.import_price_map('[1, 2]')$$);
SELECT try($$SELECT llm_usage.import_price_map('{}', NULL)$$);
SELECT try($$SELECT llm_usage.import_price_map('{}', now(), '{}')$$);
SELECT try($$SELECT llm_usage.import_price_map('{"a-ok": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06},
                                                 "b-bad": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": "1e-06", "output_cost_per_token": 2e-06}}')$$);
SELECT try($$SELECT llm_usage.import_price_map('{"c-neg": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": -1e-06, "output_cost_per_token": 2e-06}}')$$);
SELECT try($$SELECT llm_usage.import_price_map('{"d-two": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06,
                                                           "input_cost_per_token_above_128k_tokens": 2e-06, "output_cost_per_token_above_200k_tokens": 3e-06}}')$$);
SELECT try($$SELECT llm_usage.import_price_map('{"e bad name": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06}}')$$);
-- a version in the past of a model priced since would rewrite history
SELECT try($$SELECT llm_usage.import_price_map(jsonb_build_object('prc-gpt', jsonb_set((SELECT doc->'prc-gpt' FROM prc_map), '{input_cost_per_token}', '3e-06')), '2026-08-05')$$);
-- a model priced under another provider
SELECT try($$SELECT llm_usage.import_price_map('{"prc-every": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06}}')$$);
SELECT count(*) AS versions_after FROM llm_usage.model_price_versions;
CREATE ROLE regress_prc_app LOGIN IN ROLE llm_usage_app;
SET ROLE regress_prc_app;
SELECT try($$SELECT llm_usage.import_price_map('{}')$$);
SELECT try($$SELECT llm_usage.set_model_price('custom', 'prc-x', 1, 2)$$);
RESET ROLE;

-- track_response_usage: the usage objects of the providers' API references
-- OpenAI Chat Completions: prompt_tokens include the cached ones,
-- completion_tokens the reasoning ones; service_tier beside it
SELECT llm_usage.track_response_usage('prc', 'openai', 'gpt-4o', '{
    "prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
    "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 128, "audio_tokens": 0,
                                  "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}',
    request_id => 'oa-chat') > 0 AS tracked;
-- the whole response: model and service_tier ("default") read from it
SELECT llm_usage.track_response_usage('prc', 'openai', NULL, '{
    "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "object": "chat.completion", "created": 1741569952,
    "model": "gpt-4.1-2025-04-14",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!", "refusal": null, "annotations": []},
                 "logprobs": null, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29,
              "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
              "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
    "service_tier": "default"}', request_id => 'oa-whole') > 0 AS tracked;
-- OpenAI Responses, flex tier
SELECT llm_usage.track_response_usage('prc', 'openai', 'gpt-5.4', '{
    "input_tokens": 290000, "input_tokens_details": {"cached_tokens": 60000},
    "output_tokens": 9000, "output_tokens_details": {"reasoning_tokens": 6500}, "total_tokens": 299000}',
    request_id => 'oa-responses', service_tier => 'flex') > 0 AS tracked;
-- OpenAI Embeddings
SELECT llm_usage.track_response_usage('prc', 'openai', 'text-embedding-3-small', '{"prompt_tokens": 8, "total_tokens": 8}',
                                      event_type => 'embedding', request_id => 'oa-embed') > 0 AS tracked;
-- Anthropic Messages: input_tokens exclude cache reads and writes; writes split by TTL
SELECT llm_usage.track_response_usage('prc', 'anthropic', 'claude-sonnet-4-5', '{
    "cache_creation": {"ephemeral_1h_input_tokens": 1024, "ephemeral_5m_input_tokens": 2048},
    "cache_creation_input_tokens": 3072, "cache_read_input_tokens": 200000, "input_tokens": 25,
    "output_tokens": 503, "server_tool_use": {"web_search_requests": 0}, "service_tier": "standard"}',
    request_id => 'an-cache') > 0 AS tracked;
-- an older Anthropic object without the TTL split: all writes are 5-minute ones; batch tier
SELECT llm_usage.track_response_usage('prc', 'anthropic', 'claude-haiku-4-5', '{
    "input_tokens": 2095, "output_tokens": 503, "cache_creation_input_tokens": 2051, "cache_read_input_tokens": 0,
    "service_tier": "batch"}', request_id => 'an-batch') > 0 AS tracked;
SELECT request_id, model, input_tokens, cached_input_tokens, cache_write_tokens, cache_write_1h_tokens, output_tokens,
       service_tier, cost_usd
  FROM llm_usage.usage_events WHERE tenant_id = 'prc' AND request_id ~ '^(oa|an)-' ORDER BY request_id;

-- malformed usage objects: clear errors, nothing written
SELECT try($$SELECT llm_usage.track_response_usage('prc', 'openai', 'gpt-4o', NULL)$$);
SELECT try($$SELECT llm_usage.track_response_usage('prc', 'openai', 'gpt-4o', '[]')$$);
SELECT try($$SELECT llm_usage.track_response_usage('prc', NULL, 'gpt-4o', '{}')$$);
SELECT try($$SELECT llm_usage.track_response_usage('prc', 'mistral', 'gpt-4o', '{"prompt_tokens": 1}')$$);
SELECT try($$SELECT llm_usage.track_response_usage('prc', 'openai', 'gpt-4o', '{"total_tokens": 10}')$$);
SELECT try($$SELECT llm_usage.track_response_usage('prc', 'openai', 'gpt-4o', '{"prompt_tokens": "12", "completion_tokens": 1}')$$);
SELECT try($$SELECT llm_usage.track_response_usage('prc', 'openai', 'gpt-4o', '{"prompt_tokens": 12.5, "completion_tokens": 1}')$$);
SELECT try($$SELECT llm_usage.track_response_usage('prc', 'openai', 'gpt-4o', '{"prompt_tokens": -3, "completion_tokens": 1}')$$);
SELECT try($$SELECT llm_usage.track_response_usage('prc', 'openai', 'gpt-4o', '{"prompt_tokens": 10, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 11}}')$$);
SELECT try($$SELECT llm_usage.track_response_usage('prc', 'openai', 'gpt-4o', '{"prompt_tokens": 10, "completion_tokens": 1, "completion_tokens_details": {"reasoning_tokens": 5}}')$$);
SELECT try($$SELECT llm_usage.track_response_usage('prc', 'openai', 'gpt-4o', '{"input_tokens": 10}')$$);
SELECT try($$SELECT llm_usage.track_response_usage('prc', 'openai', 'gpt-4o', '{"input_tokens": 10, "output_tokens": 1, "cache_read_input_tokens": 5}')$$);
SELECT try($$SELECT llm_usage.track_response_usage('prc', 'anthropic', 'claude-sonnet-4-5', '{"prompt_tokens": 10, "completion_tokens": 1}')$$);
SELECT try($$SELECT llm_usage.track_response_usage('prc', 'anthropic', 'claude-sonnet-4-5', '{"input_tokens": 10}')$$);
SELECT try($$SELECT llm_usage.track_response_usage('prc', 'anthropic', 'claude-sonnet-4-5', '{"input_tokens": 10, "output_tokens": 1, "cache_creation_input_tokens": 100, "cache_creation": {"ephemeral_5m_input_tokens": 60, "ephemeral_1h_input_tokens": 30}}')$$);
SELECT try($$SELECT llm_usage.track_response_usage('prc', 'anthropic', 'claude-sonnet-4-5', '{"input_tokens": 10, "output_tokens": 1, "cache_creation": 100}')$$);
SELECT try($$SELECT llm_usage.track_response_usage('prc', 'anthropic', 'claude-sonnet-4-5', '{"input_tokens": 10, "output_tokens": 1, "service_tier": "premium"}')$$);
SELECT try($$SELECT llm_usage.track_response_usage('prc', 'anthropic', 'claude-sonnet-4-5', '{"input_tokens": 1000000000, "output_tokens": 1, "cache_read_input_tokens": 5}')$$);
SELECT try($$SELECT llm_usage.track_response_usage('nobody', 'openai', 'gpt-4o', '{"prompt_tokens": 1}')$$);
\set VERBOSITY verbose
SELECT llm_usage.track_response_usage('prc', 'openai', 'gpt-4o', '{"input_tokens": 10, "output_tokens": 1, "cache_creation_input_tokens": 5}');
\set VERBOSITY default
SELECT count(*) AS events FROM llm_usage.usage_events WHERE tenant_id = 'prc';
-- an application role may call it for its tenants only
SELECT llm_usage.grant_tenant_access('regress_prc_app', 'prc');
SELECT llm_usage.create_tenant('prc_other', 'enterprise');
SET ROLE regress_prc_app;
SELECT llm_usage.track_response_usage('prc', 'openai', 'gpt-4o', '{"prompt_tokens": 5, "completion_tokens": 1}') > 0 AS app_tracked;
SELECT try($$SELECT llm_usage.track_response_usage('prc_other', 'openai', 'gpt-4o', '{"prompt_tokens": 5}')$$);
RESET ROLE;
SELECT llm_usage.revoke_tenant_access('regress_prc_app', 'prc');
DROP ROLE regress_prc_app;
-- the calls of this suite are today's: out of the way of the dashboard suites
DELETE FROM llm_usage.usage_requests WHERE tenant_id LIKE 'prc%';
DELETE FROM llm_usage.usage_events WHERE tenant_id LIKE 'prc%';
