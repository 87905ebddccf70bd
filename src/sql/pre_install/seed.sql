/*
 * src/sql/pre_install/seed.sql — shipped rows (install only)
 *
 * The quota types, the shipped plans with their quotas and the alert rules'
 * defaults.  Shipped rows are read-only and not dumped (pg_dump carries only
 * what users made); CREATE EXTENSION recreates them.
 */

INSERT INTO llm_usage.quota_types VALUES
    ('tokens',        'tokens',   'input plus output tokens'),
    ('api_calls',     'calls',    'LLM API calls of any kind'),
    ('cost_usd',      'USD',      'spend in US dollars'),
    ('chat_messages', 'messages', 'chat messages sent'),
    ('embeddings',    'vectors',  'embeddings generated');

INSERT INTO llm_usage.plans (plan, description, is_shipped) VALUES
    ('trial',      'Evaluation: small daily allowances, $5 a month',                   true),
    ('starter',    'Small production apps: per-minute rate limits and daily budgets', true),
    ('pro',        'Growing apps: high rate limits, large daily budgets',             true),
    ('enterprise', 'Rate limits only; token, cost and message volume unlimited',      true);

INSERT INTO llm_usage.plan_quotas (plan, quota_type, period, quota_limit, is_shipped) VALUES
    ('trial',      'api_calls',     'minute',        10, true),
    ('trial',      'api_calls',     'day',          500, true),
    ('trial',      'tokens',        'day',       100000, true),
    ('trial',      'cost_usd',      'month',          5, true),
    ('trial',      'chat_messages', 'day',          200, true),
    ('trial',      'embeddings',    'day',         1000, true),
    ('starter',    'api_calls',     'minute',        60, true),
    ('starter',    'api_calls',     'day',        10000, true),
    ('starter',    'tokens',        'minute',    100000, true),
    ('starter',    'tokens',        'day',      2000000, true),
    ('starter',    'cost_usd',      'month',         50, true),
    ('starter',    'chat_messages', 'day',         5000, true),
    ('starter',    'embeddings',    'day',        50000, true),
    ('pro',        'api_calls',     'minute',       600, true),
    ('pro',        'api_calls',     'day',       200000, true),
    ('pro',        'tokens',        'minute',   1000000, true),
    ('pro',        'tokens',        'day',     50000000, true),
    ('pro',        'cost_usd',      'month',       1000, true),
    ('pro',        'chat_messages', 'day',       100000, true),
    ('pro',        'embeddings',    'day',      1000000, true),
    ('enterprise', 'api_calls',     'minute',      6000, true),
    ('enterprise', 'tokens',        'minute',  10000000, true),
    ('enterprise', 'tokens',        'month',       NULL, true),
    ('enterprise', 'cost_usd',      'month',       NULL, true);

INSERT INTO llm_usage.alert_rules (kind, enabled, threshold, min_calls, severity, description) VALUES
    ('quota_exceeded',     true, NULL, NULL, 'warning',
     'enforce_quota() denied a tenant since the last check (one alert per quota type and period)'),
    ('quota_near',         true, 80,   NULL, 'warning',
     'a quota crossed threshold percent, and again 100 percent, of its limit (once per period each)'),
    ('high_latency',       true, 5000, 10,   'warning',
     'p99 latency over the last hour above threshold ms, with at least min_calls calls'),
    ('high_error_rate',    true, 5,    20,   'warning',
     'share of calls that did not succeed over the last hour above threshold percent, with at least min_calls calls'),
    ('cost_anomaly',       true, 2,    NULL, 'warning',
     'a day''s cost (yesterday, or today so far) above threshold times the average of the 7 days before it'),
    ('collection_failed',  true, NULL, NULL, 'error',
     'a collection run of a provider key failed'),
    ('maintenance_failed', true, NULL, NULL, 'error',
     'the worker''s roll-up or alert check failed'),
    ('unpriced_usage',     true, NULL, NULL, 'warning',
     'calls of a model with no price were tracked since the last check (their cost is NULL, not 0)'),
    ('price_mismatch',     true, 10,   NULL, 'warning',
     'the cost a provider reported for a tenant''s model on a UTC day differs from its collected usage priced with llm_usage''s prices by more than threshold percent (checked when collected data arrives; see price_reconciliation())'),
    ('credits_low',        true, NULL, NULL, 'warning',
     'a prepaid tenant''s credit balance fell below its low_balance_usd (set_prepaid_billing()), or below threshold USD where the tenant has none'),
    ('credits_exhausted',  true, NULL, NULL, 'error',
     'a prepaid tenant''s credit balance reached zero (its calls are denied by enforce_quota(tenant, ''credits'', ...); costs beyond the balance are ledgered as uncovered)');

INSERT INTO llm_usage.event_types (event_type, counts_as, is_shipped) VALUES
    ('chat',         'chat_messages', true),
    ('chat_message', 'chat_messages', true),
    ('completion',   NULL,            true),
    ('embedding',    'embeddings',    true),
    ('embeddings',   'embeddings',    true),
    ('search',       NULL,            true),
    ('tool',         NULL,            true),
    ('image',        NULL,            true),
    ('audio',        NULL,            true),
    ('moderation',   NULL,            true),
    ('other',        NULL,            true);
