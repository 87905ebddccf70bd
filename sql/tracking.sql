--
-- track_usage, calculate_cost, prices and their history, unpriced models
--
SET timezone = 'UTC';
SELECT llm_usage.create_tenant('trk', 'pro', 'UTC');

-- cost arithmetic (USD per million tokens; exact numeric)
-- gpt-4o: input 2.5, cached 1.25, output 10
SELECT llm_usage.calculate_cost('gpt-4o', 1000, 200);
SELECT llm_usage.calculate_cost('gpt-4o', 1000, 200, 400);          -- 600*2.5 + 400*1.25 + 200*10
SELECT llm_usage.calculate_cost('gpt-4o', 0, 0);
-- claude-sonnet-4-5: input 3, cached 0.3, cache write 3.75, output 15
SELECT llm_usage.calculate_cost('claude-sonnet-4-5', 10000, 500, 8000, cache_write_tokens => 1000);
-- embeddings: input only
SELECT llm_usage.calculate_cost('text-embedding-3-small', 123456, 0);
-- long context: claude-4-sonnet-20250514 bills 6 / 22.5 once a call passes 200k input tokens
SELECT llm_usage.calculate_cost('claude-4-sonnet-20250514', 200000, 1000) AS at_200k,
       llm_usage.calculate_cost('claude-4-sonnet-20250514', 200001, 1000) AS above_200k;
-- a model without a cached rate bills cached tokens at the input rate
SELECT cached_input_usd_per_mtok IS NULL AS no_cached_rate FROM llm_usage.model_prices WHERE model = 'gpt-4';
SELECT llm_usage.calculate_cost('gpt-4', 1000, 0, 1000) = llm_usage.calculate_cost('gpt-4', 1000, 0) AS cached_at_input_rate;

-- calculate_cost: bad input
SELECT try($$SELECT llm_usage.calculate_cost('no-such-model', 1, 1, at => '2026-01-01')$$);
SELECT try($$SELECT llm_usage.calculate_cost(NULL, 1, 1)$$);
SELECT try($$SELECT llm_usage.calculate_cost('gpt-4o', -1, 1)$$);
SELECT try($$SELECT llm_usage.calculate_cost('gpt-4o', 1, -1)$$);
SELECT try($$SELECT llm_usage.calculate_cost('gpt-4o', NULL, 1)$$);
SELECT try($$SELECT llm_usage.calculate_cost('gpt-4o', 10, 1, 11)$$);
SELECT try($$SELECT llm_usage.calculate_cost('gpt-4o', 10, 1, 5, now(), 6)$$);
SELECT try($$SELECT llm_usage.calculate_cost('gpt-4o', 2000000000, 1)$$);
SELECT try($$SELECT llm_usage.calculate_cost('gpt-4o', 1, 1, 0, NULL)$$);
\set SHOW_CONTEXT never
SELECT llm_usage.calculate_cost('no-such-model', 1, 1, at => '2026-01-01');
\set SHOW_CONTEXT errors

-- track_usage stores the call with its exact cost at occurred_at
SELECT llm_usage.track_usage('trk', 'chat', 'gpt-4o', 1000, 200, 400, 350, 200, 'success',
                             '{"feature": "summary"}', 'req-1', '2026-01-15 10:00+00') AS event_1;
SELECT llm_usage.track_usage('trk', 'chat', 'claude-sonnet-4-5', 10000, 500, 8000, 900,
                             request_id => 'req-2', occurred_at => '2026-01-15 11:00+00',
                             cache_write_tokens => 1000) AS event_2;
SELECT llm_usage.track_usage('trk', 'embedding', 'text-embedding-3-small', 123456,
                             occurred_at => '2026-01-15 12:00+00') AS event_3;
SELECT llm_usage.track_usage('trk', 'chat', 'gpt-4o', 10, 0, 0, 30000, 429, 'rate_limited',
                             occurred_at => '2026-01-15 12:30+00') AS event_4;
SELECT llm_usage.track_usage('trk', 'tool', occurred_at => '2026-01-15 12:31+00') AS event_5;
SELECT event_id, event_type, model, provider, input_tokens, output_tokens, cached_input_tokens, cache_write_tokens,
       total_tokens, cost_usd, latency_ms, status_code, result, metadata, request_id, occurred_at
  FROM llm_usage.usage_events WHERE tenant_id = 'trk' ORDER BY event_id;

-- idempotent on (tenant_id, request_id): the repeat returns the first id and adds nothing
SELECT llm_usage.track_usage('trk', 'chat', 'gpt-4o', 999999, 999999, request_id => 'req-1',
                             occurred_at => '2026-01-15 10:00+00') AS same_event;
SELECT count(*), sum(input_tokens) FROM llm_usage.usage_events WHERE tenant_id = 'trk';
-- the same request id for another tenant is another call
SELECT llm_usage.create_tenant('trk2', 'pro');
SELECT llm_usage.track_usage('trk2', 'chat', 'gpt-4o', 1, 1, request_id => 'req-1') > 0 AS other_tenant_tracked;

-- an unknown model keeps the event with a NULL cost, and shows up
SELECT llm_usage.track_usage('trk', 'chat', 'acme-llm-9', 5000, 1000, occurred_at => '2026-01-10 09:00+00');
SELECT llm_usage.track_usage('trk', 'chat', 'acme-llm-9', 3000, 500, occurred_at => '2026-01-20 09:00+00');
SELECT llm_usage.track_usage('trk2', 'chat', 'acme-llm-9', 1, 1, occurred_at => '2026-01-20 09:00+00');
SELECT cost_usd IS NULL AS cost_is_null FROM llm_usage.usage_events WHERE model = 'acme-llm-9' ORDER BY event_id;
SELECT model, calls, tenants, input_tokens, output_tokens, first_seen, last_seen FROM llm_usage.unpriced_models();

-- pricing a model that had no price prices its earlier calls from valid_from on
SELECT llm_usage.set_model_price('custom', 'acme-llm-9', 1, 4, valid_from => '2026-01-15') > 0 AS priced;
SELECT occurred_at, cost_usd FROM llm_usage.usage_events WHERE model = 'acme-llm-9' ORDER BY event_id;
-- and one before its first price fills the gap, touching nothing else
SELECT llm_usage.set_model_price('custom', 'acme-llm-9', 2, 8, valid_from => '2026-01-01') > 0 AS priced;
SELECT occurred_at, cost_usd FROM llm_usage.usage_events WHERE model = 'acme-llm-9' ORDER BY event_id;
SELECT model, calls FROM llm_usage.unpriced_models();
SELECT model, input_usd_per_mtok, output_usd_per_mtok, valid_from, valid_to
  FROM llm_usage.model_prices WHERE model = 'acme-llm-9' ORDER BY valid_from;

-- a price change applies from now on; history keeps its price
SELECT llm_usage.set_model_price('openai', 'gpt-4o', 5, 20, 2.5) > 0 AS new_version;
SELECT count(*) AS versions, count(*) FILTER (WHERE valid_to IS NULL) AS open_versions
  FROM llm_usage.model_prices WHERE model = 'gpt-4o';
SELECT cost_usd FROM llm_usage.usage_events WHERE tenant_id = 'trk' AND request_id = 'req-1';
SELECT llm_usage.calculate_cost('gpt-4o', 1000, 200, 400, '2026-01-15 10:00+00') AS january,
       llm_usage.calculate_cost('gpt-4o', 1000, 200, 400) AS now;
SELECT llm_usage.track_usage('trk', 'chat', 'gpt-4o', 1000, 200, 400, request_id => 'req-now') > 0 AS tracked;
SELECT cost_usd FROM llm_usage.usage_events WHERE tenant_id = 'trk' AND request_id = 'req-now';
-- a scheduled price
SELECT llm_usage.set_model_price('openai', 'gpt-4o', 4, 16, 2, valid_from => now() + interval '30 days') > 0 AS scheduled;
SELECT llm_usage.calculate_cost('gpt-4o', 1000000, 0, at => now() + interval '31 days') AS after_schedule;

-- set_model_price: bad input, nothing changed
SELECT count(*) AS price_rows FROM llm_usage.model_price_versions;
SELECT try($$SELECT llm_usage.set_model_price('openai', 'gpt-4o', 1, 1, valid_from => '2026-01-01')$$);
SELECT regexp_replace(try($$SELECT llm_usage.set_model_price('openai', 'gpt-4o', 1, 1, valid_from => now() + interval '1 day')$$),
                      'from .* would', 'from (tomorrow) would');
SELECT try($$SELECT llm_usage.set_model_price('custom', 'acme-llm-9', 1, 1, valid_from => '2026-01-10')$$);
SELECT try($$SELECT llm_usage.set_model_price('custom', 'acme-llm-9', 1, 1, valid_from => '2026-02-01')$$);
SELECT try($$SELECT llm_usage.set_model_price('anthropic', 'gpt-4o', 1, 1, valid_from => now() + interval '60 days')$$);
SELECT try($$SELECT llm_usage.set_model_price('openai', 'm', -1, 1)$$);
SELECT try($$SELECT llm_usage.set_model_price('openai', 'm', 1, NULL)$$);
SELECT try($$SELECT llm_usage.set_model_price('openai', 'm', 1, 1, -0.5)$$);
SELECT try($$SELECT llm_usage.set_model_price('openai', 'm', 1, 1, 1, 'NaN')$$);
SELECT try($$SELECT llm_usage.set_model_price('Open AI', 'm', 1, 1)$$);
SELECT try($$SELECT llm_usage.set_model_price(NULL, 'm', 1, 1)$$);
SELECT try($$SELECT llm_usage.set_model_price('openai', '', 1, 1)$$);
SELECT try($$SELECT llm_usage.set_model_price('openai', NULL, 1, 1)$$);
SELECT try($$SELECT llm_usage.set_model_price('openai', 'm', 1, 1, valid_from => NULL)$$);
SELECT count(*) AS price_rows FROM llm_usage.model_price_versions;
\set SHOW_CONTEXT never
SELECT llm_usage.set_model_price('custom', 'acme-llm-9', 1, 1, valid_from => '2026-01-10');
\set SHOW_CONTEXT errors

-- track_usage: bad input, nothing stored
SELECT count(*) AS events FROM llm_usage.usage_events;
SELECT try($$SELECT llm_usage.track_usage(NULL, 'chat')$$);
SELECT try($$SELECT llm_usage.track_usage('', 'chat')$$);
SELECT try($$SELECT llm_usage.track_usage('nobody', 'chat')$$);
SELECT try($$SELECT llm_usage.track_usage('trk', NULL)$$);
-- event types: any name of 1 to 64 characters without control characters, not blank
SELECT try($$SELECT llm_usage.track_usage('trk', '')$$);
SELECT try($$SELECT llm_usage.track_usage('trk', '   ')$$);
SELECT try($$SELECT llm_usage.track_usage('trk', repeat('x', 65))$$);
SELECT try($$SELECT llm_usage.track_usage('trk', repeat('é', 65))$$);
SELECT try($$SELECT llm_usage.track_usage('trk', E'tab\there')$$);
SELECT try($$SELECT llm_usage.track_usage('trk', E'line\nbreak')$$);
SELECT try($$SELECT llm_usage.track_usage('trk', E'del\u007f')$$);
SELECT try($$SELECT llm_usage.track_usage('trk', E'c1\u0085')$$);
SELECT try($$SELECT llm_usage.track_usage('trk', 'chat', 'has space')$$);
SELECT try($$SELECT llm_usage.track_usage('trk', 'chat', 'gpt-4o', -1)$$);
SELECT try($$SELECT llm_usage.track_usage('trk', 'chat', 'gpt-4o', 1, -1)$$);
SELECT try($$SELECT llm_usage.track_usage('trk', 'chat', 'gpt-4o', 1, 1, -1)$$);
SELECT try($$SELECT llm_usage.track_usage('trk', 'chat', 'gpt-4o', 1000000001, 1)$$);
SELECT try($$SELECT llm_usage.track_usage('trk', 'chat', 'gpt-4o', NULL, 1)$$);
SELECT try($$SELECT llm_usage.track_usage('trk', 'chat', 'gpt-4o', 10, 1, 11)$$);
SELECT try($$SELECT llm_usage.track_usage('trk', 'chat', 'gpt-4o', 10, 1, 0, cache_write_tokens => -3)$$);
SELECT try($$SELECT llm_usage.track_usage('trk', 'chat', 'gpt-4o', 10, 1, latency_ms => -5)$$);
SELECT try($$SELECT llm_usage.track_usage('trk', 'chat', 'gpt-4o', 10, 1, status_code => 999)$$);
SELECT try($$SELECT llm_usage.track_usage('trk', 'chat', 'gpt-4o', 10, 1, result => 'meh')$$);
SELECT try($$SELECT llm_usage.track_usage('trk', 'chat', 'gpt-4o', 10, 1, result => NULL)$$);
SELECT try($$SELECT llm_usage.track_usage('trk', 'chat', 'gpt-4o', 10, 1, metadata => '[1]')$$);
SELECT try($$SELECT llm_usage.track_usage('trk', 'chat', 'gpt-4o', 10, 1, metadata => NULL)$$);
SELECT try($$SELECT llm_usage.track_usage('trk', 'chat', 'gpt-4o', 10, 1, request_id => '')$$);
SELECT try($$SELECT llm_usage.track_usage('trk', 'chat', 'gpt-4o', 10, 1, request_id => repeat('r', 256))$$);
SELECT regexp_replace(try($$SELECT llm_usage.track_usage('trk', 'chat', 'gpt-4o', 10, 1, occurred_at => now() + interval '2 hours')$$),
                      'occurred_at .* is', 'occurred_at (in two hours) is');
SELECT try($$SELECT llm_usage.track_usage('trk', 'chat', 'gpt-4o', 10, 1, occurred_at => '1999-12-31')$$);
SELECT try($$SELECT llm_usage.track_usage('trk', 'chat', 'gpt-4o', 10, 1, occurred_at => NULL)$$);
SELECT count(*) AS events FROM llm_usage.usage_events;
\set SHOW_CONTEXT never
SELECT llm_usage.track_usage('trk', 'chat', 'gpt-4o', 10, 1, 11);
SELECT llm_usage.track_usage('trk', 'chat', 'gpt-4o', 10, 1, result => 'meh');

-- Open event types: any valid name is tracked (C path and SQL path), by its own name
\set SHOW_CONTEXT errors
SELECT llm_usage.create_tenant('evt');
-- (3 days back: in no current period that later suites rank tenants by)
SELECT llm_usage.track_usage('evt', t, 'gpt-4o', 10, 1, occurred_at => now() - interval '3 days') > 0 AS tracked
  FROM unnest(ARRAY['chat_message', 'search', 'My App Call', repeat('x', 64), 'ünïcode', repeat('é', 64)]) t;
-- the SQL twin takes the same names (an occurred_at 30 days back goes to it)
SELECT llm_usage.track_usage('evt', 'search', 'gpt-4o', 10, 1, occurred_at => now() - interval '30 days') > 0 AS tracked_sql;
SELECT event_type, count(*) FROM llm_usage.usage_events WHERE tenant_id = 'evt' GROUP BY 1 ORDER BY 1;
SELECT count(*) AS searches FROM llm_usage.tenant_events('evt', now() - interval '40 days', now() + interval '1 hour', 'search');
-- the shipped mapping, and an admin's
SELECT * FROM llm_usage.event_type_counters ORDER BY event_type;
SELECT llm_usage.set_event_type('search', 'embeddings');
SELECT llm_usage.set_event_type('My App Call', 'chat_messages');
SELECT llm_usage.set_event_type('chat', NULL);
SELECT llm_usage.set_event_type('chat', 'none');
SELECT * FROM llm_usage.event_type_counters WHERE source = 'admin' ORDER BY event_type;
SELECT event_type, counts_as, is_shipped FROM llm_usage.event_types WHERE event_type = 'chat' ORDER BY is_shipped;
SELECT llm_usage.remove_event_type('chat');
SELECT * FROM llm_usage.event_type_counters WHERE event_type = 'chat';
-- bad input changes nothing
SELECT try($$SELECT llm_usage.set_event_type('', 'embeddings')$$);
SELECT try($$SELECT llm_usage.set_event_type(NULL, 'embeddings')$$);
SELECT try($$SELECT llm_usage.set_event_type(repeat('y', 65), NULL)$$);
SELECT try($$SELECT llm_usage.set_event_type(E'a\tb', NULL)$$);
SELECT try($$SELECT llm_usage.set_event_type('search', 'tokens')$$);
SELECT try($$SELECT llm_usage.remove_event_type('chat')$$);
SELECT try($$SELECT llm_usage.remove_event_type('never-set')$$);
SELECT try($$SELECT llm_usage.remove_event_type(NULL)$$);
SELECT try($$SELECT llm_usage.remove_event_type('   ')$$);
SELECT count(*) AS admin_rows FROM llm_usage.event_types WHERE NOT is_shipped;
-- only admins change the mapping; every role reads it
SET ROLE llm_usage_app;
SELECT try($$SELECT llm_usage.set_event_type('search', NULL)$$);
SELECT try($$SELECT llm_usage.remove_event_type('search')$$);
SELECT try($$INSERT INTO llm_usage.event_types VALUES ('x', NULL)$$);
SELECT count(*) > 0 AS readable FROM llm_usage.event_type_counters;
RESET ROLE;
SELECT llm_usage.remove_event_type('search');
SELECT llm_usage.remove_event_type('My App Call');
-- a request id of 255 multi-byte characters reserves and settles like any other
SELECT llm_usage.set_custom_quota('evt', 'tokens', 1000, 'day');
SELECT allowed, used FROM llm_usage.enforce_quota('evt', 'tokens', 500, repeat('é', 255));
SELECT used FROM llm_usage.quota_status('evt') WHERE quota_type = 'tokens' AND period = 'day';
SELECT llm_usage.track_usage('evt', 'chat', 'gpt-4o', 2, 1, request_id => repeat('é', 255)) > 0 AS tracked;
SELECT used FROM llm_usage.quota_status('evt') WHERE quota_type = 'tokens' AND period = 'day';
