/*
 * src/sql/focus.sql — FOCUS 1.2 export
 *
 * focus_export(from_ts, to_ts, source) presents what the providers reported
 * (provider_costs, with token quantities matched from provider_usage) and
 * what the application tracked (usage_events, one row per tenant, UTC day,
 * model, price and tags) in the columns of the FinOps Open Cost and Usage
 * Specification 1.2, so that FinOps tools can load them.  The README maps
 * every column to its source.  An entry point and its body (src/caller.c):
 * the body reads as the owner and keeps explicitly to the tenants the
 * caller may see (llm_usage._can_access), so readers need no privilege on
 * the tables (and get no EXPLAIN ANALYZE oracle on them).
 */

CREATE OR REPLACE FUNCTION llm_usage._focus_provider_name(p_provider text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE p_provider
               WHEN 'openai' THEN 'OpenAI'
               WHEN 'anthropic' THEN 'Anthropic'
               ELSE pg_catalog.initcap(pg_catalog.replace(p_provider, '_', ' '))
           END
$$;
COMMENT ON FUNCTION llm_usage._focus_provider_name(text) IS
'Internal: display name of a provider for FOCUS ProviderName/PublisherName/InvoiceIssuerName (openai -> OpenAI, anthropic -> Anthropic, else the name capitalised).';

/*
 * _focus_check(from_ts, to_ts, source): the argument checks of
 * focus_export(); raises 22004 for a missing argument, 22023 for an
 * infinite, inverted or longer-than-366-days range or an unknown source.
 */
CREATE OR REPLACE FUNCTION llm_usage._focus_check(p_from timestamptz, p_to timestamptz, p_source text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_from IS NULL OR p_to IS NULL OR p_source IS NULL THEN
        RAISE EXCEPTION '% must not be NULL', CASE WHEN p_from IS NULL THEN 'from_ts' WHEN p_to IS NULL THEN 'to_ts'
                                                   ELSE 'source' END
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT isfinite(p_from) OR NOT isfinite(p_to) THEN
        RAISE EXCEPTION 'from_ts and to_ts must be finite'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Export a range of at most 366 days, e.g. one month at a time.';
    END IF;
    IF p_to < p_from THEN
        RAISE EXCEPTION 'to_ts (%) is before from_ts (%)', p_to, p_from
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_to - p_from > interval '366 days' THEN
        RAISE EXCEPTION 'range from % to % is longer than 366 days', p_from, p_to
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Export a range of at most 366 days, e.g. one month at a time.';
    END IF;
    IF p_source NOT IN ('all', 'provider', 'tracked') THEN
        RAISE EXCEPTION 'unknown source "%"', p_source
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Sources are: all, provider (what the providers reported), tracked (what track_usage() recorded).';
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._focus_check(timestamptz, timestamptz, text) IS
'Internal: raise 22004/22023 unless focus_export() got a finite range of at most 366 days and a known source.';

CREATE OR REPLACE FUNCTION llm_usage.focus_export(from_ts timestamptz, to_ts timestamptz, source text DEFAULT 'all')
RETURNS TABLE ("BilledCost" numeric, "EffectiveCost" numeric, "ListCost" numeric, "ContractedCost" numeric,
               "BillingCurrency" text, "BillingPeriodStart" timestamptz, "BillingPeriodEnd" timestamptz,
               "ChargePeriodStart" timestamptz, "ChargePeriodEnd" timestamptz, "ChargeCategory" text,
               "ChargeClass" text, "ChargeDescription" text, "ChargeFrequency" text, "ServiceName" text,
               "ServiceCategory" text, "ProviderName" text, "PublisherName" text, "InvoiceIssuerName" text,
               "SubAccountId" text, "SubAccountName" text, "ResourceId" text, "ResourceType" text, "SkuId" text,
               "SkuPriceId" text, "PricingCategory" text, "ConsumedQuantity" numeric, "ConsumedUnit" text,
               "PricingQuantity" numeric, "PricingUnit" text, "Tags" jsonb, "x_Source" text, "x_Calls" bigint,
               "x_UnpricedCalls" bigint)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.focus_export(timestamptz, timestamptz, text) IS
'Cost and usage in FinOps FOCUS 1.2 columns for charge periods starting in [from_ts, to_ts) (at most 366 days): source "provider" = one row per provider-reported cost line (provider_costs, token quantities from provider_usage), "tracked" = tracked calls (usage_events) per tenant, UTC day, model, price and tags, "all" = both, told apart by x_Source (do not add them up: they are two views of the same spend).  Only the tenants the caller may see (all for admins).';

CREATE OR REPLACE FUNCTION llm_usage._focus_export_impl(from_ts timestamptz, to_ts timestamptz, source text DEFAULT 'all')
RETURNS TABLE ("BilledCost" numeric, "EffectiveCost" numeric, "ListCost" numeric, "ContractedCost" numeric,
               "BillingCurrency" text, "BillingPeriodStart" timestamptz, "BillingPeriodEnd" timestamptz,
               "ChargePeriodStart" timestamptz, "ChargePeriodEnd" timestamptz, "ChargeCategory" text,
               "ChargeClass" text, "ChargeDescription" text, "ChargeFrequency" text, "ServiceName" text,
               "ServiceCategory" text, "ProviderName" text, "PublisherName" text, "InvoiceIssuerName" text,
               "SubAccountId" text, "SubAccountName" text, "ResourceId" text, "ResourceType" text, "SkuId" text,
               "SkuPriceId" text, "PricingCategory" text, "ConsumedQuantity" numeric, "ConsumedUnit" text,
               "PricingQuantity" numeric, "PricingUnit" text, "Tags" jsonb, "x_Source" text, "x_Calls" bigint,
               "x_UnpricedCalls" bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET TimeZone = 'UTC'
AS $$
#variable_conflict use_column
DECLARE
    -- the tenants the caller may see: every one for an admin
    v_all     boolean := llm_usage._is_admin();
    v_tenants text[] := llm_usage._my_tenants();
BEGIN
    -- TimeZone is UTC here, so that days and months below are UTC ones
    PERFORM llm_usage._focus_check($1, $2, $3);

    IF $3 IN ('all', 'provider') THEN
        RETURN QUERY
        WITH c AS (
            SELECT c.*,
                   -- which token count a cost line is for: Anthropic names
                   -- model and token type; OpenAI's line item is "<model>, <kind>"
                   CASE WHEN c.provider = 'anthropic' AND c.model IS NOT NULL THEN c.token_type
                        WHEN c.provider = 'openai' THEN lower(substring(c.line_item FROM ', ([^,]+)$'))
                   END AS kind,
                   CASE WHEN c.provider = 'openai' THEN coalesce(c.model, substring(c.line_item FROM '^(.+), [^,]+$'))
                        ELSE c.model
                   END AS qmodel
              FROM llm_usage.provider_costs c
             WHERE c.bucket_start >= $1 AND c.bucket_start < $2
               AND (v_all OR c.tenant_id = ANY (v_tenants))),
        q AS (
            SELECT c.*,
                   count(*) OVER (PARTITION BY c.tenant_id, c.key_id, c.bucket_start, c.qmodel, c.kind,
                                               c.project_id, c.workspace_id) AS sharing,
                   (SELECT sum(CASE c.kind
                                   WHEN 'uncached_input_tokens' THEN u.input_tokens - u.cached_input_tokens - u.cache_write_tokens
                                   WHEN 'cache_read_input_tokens' THEN u.cached_input_tokens
                                   WHEN 'output_tokens' THEN u.output_tokens
                                   WHEN 'input' THEN u.input_tokens - u.cached_input_tokens
                                   WHEN 'cached input' THEN u.cached_input_tokens
                                   WHEN 'output' THEN u.output_tokens
                               END)
                      FROM llm_usage.provider_usage u
                     WHERE u.key_id = c.key_id AND u.endpoint IN ('completions', 'embeddings', 'messages')
                       AND u.bucket_start = c.bucket_start AND u.tenant_id = c.tenant_id AND u.model = c.qmodel
                       AND u.project_id IS NOT DISTINCT FROM c.project_id
                       AND u.workspace_id IS NOT DISTINCT FROM c.workspace_id) AS tokens
              FROM c)
        SELECT q.amount_usd, q.amount_usd, q.amount_usd, q.amount_usd,
               'USD'::text,
               date_trunc('month', q.bucket_start, 'UTC'),
               date_trunc('month', q.bucket_start, 'UTC') + interval '1 month',
               q.bucket_start, q.bucket_end,
               'Usage'::text, NULL::text,
               q.line_item,
               'Usage-Based'::text,
               llm_usage._focus_provider_name(q.provider) || ' API',
               'AI and Machine Learning'::text,
               llm_usage._focus_provider_name(q.provider),
               llm_usage._focus_provider_name(q.provider),
               llm_usage._focus_provider_name(q.provider),
               q.tenant_id, q.tenant_id,
               coalesce(q.provider_api_key_id, q.project_id, q.workspace_id),
               CASE WHEN q.provider_api_key_id IS NOT NULL THEN 'API Key'
                    WHEN q.project_id IS NOT NULL THEN 'Project'
                    WHEN q.workspace_id IS NOT NULL THEN 'Workspace' END,
               coalesce(q.model || '/' || q.token_type, q.line_item, q.model),
               NULL::text,
               'Standard'::text,
               t.tokens::numeric, CASE WHEN t.tokens IS NOT NULL THEN 'Tokens' END,
               round(t.tokens::numeric / 1000000, 6), CASE WHEN t.tokens IS NOT NULL THEN '1M Tokens' END,
               jsonb_strip_nulls(jsonb_build_object('project', q.project_id, 'workspace', q.workspace_id,
                                                    'api_key', q.provider_api_key_id,
                                                    'llm_usage/key_id', q.key_id::text)),
               'provider'::text, NULL::bigint, NULL::bigint
          FROM q
         CROSS JOIN LATERAL (SELECT CASE WHEN q.sharing = 1 AND q.tokens >= 0 THEN q.tokens END AS tokens) t
         ORDER BY q.bucket_start, q.tenant_id, q.cost_id;
    END IF;

    IF $3 IN ('all', 'tracked') THEN
        RETURN QUERY
        SELECT coalesce(g.cost, 0), coalesce(g.cost, 0), coalesce(g.cost, 0), coalesce(g.cost, 0),
               'USD'::text,
               date_trunc('month', g.day, 'UTC'),
               date_trunc('month', g.day, 'UTC') + interval '1 month',
               greatest(g.day, $1), least(g.day + interval '24 hours', $2),
               'Usage'::text, NULL::text,
               format('%s %s call%s of %s tracked with track_usage()%s', g.calls, g.event_type,
                      CASE WHEN g.calls = 1 THEN '' ELSE 's' END, coalesce(g.model, 'no model'),
                      CASE WHEN g.unpriced > 0 THEN format(', %s without a price (cost unknown, counted as 0)', g.unpriced)
                           ELSE '' END),
               'Usage-Based'::text,
               coalesce(llm_usage._focus_provider_name(g.provider) || ' API', 'LLM API'),
               'AI and Machine Learning'::text,
               coalesce(llm_usage._focus_provider_name(g.provider), 'Unknown'),
               coalesce(llm_usage._focus_provider_name(g.provider), 'Unknown'),
               coalesce(llm_usage._focus_provider_name(g.provider), 'Unknown'),
               g.tenant_id, g.tenant_id,
               coalesce(g.api_key, g.project, g.workspace),
               CASE WHEN g.api_key IS NOT NULL THEN 'API Key'
                    WHEN g.project IS NOT NULL THEN 'Project'
                    WHEN g.workspace IS NOT NULL THEN 'Workspace' END,
               coalesce(g.model, 'none'),
               g.price_id::text,
               'Standard'::text,
               CASE WHEN g.tokens > 0 THEN g.tokens ELSE g.calls END::numeric,
               CASE WHEN g.tokens > 0 THEN 'Tokens' ELSE 'Requests' END,
               CASE WHEN g.tokens > 0 THEN round(g.tokens::numeric / 1000000, 6) ELSE g.calls END::numeric,
               CASE WHEN g.tokens > 0 THEN '1M Tokens' ELSE 'Requests' END,
               jsonb_strip_nulls(jsonb_build_object('project', g.project, 'workspace', g.workspace,
                                                    'api_key', g.api_key, 'event_type', g.event_type)),
               'tracked'::text, g.calls, g.unpriced
          FROM (SELECT e.tenant_id, date_trunc('day', e.occurred_at, 'UTC') AS day, e.provider, e.model, e.price_id,
                       e.event_type,
                       coalesce(e.metadata->>'project', e.metadata->>'project_id') AS project,
                       coalesce(e.metadata->>'workspace', e.metadata->>'workspace_id') AS workspace,
                       coalesce(e.metadata->>'api_key', e.metadata->>'api_key_id') AS api_key,
                       count(*) AS calls, count(*) FILTER (WHERE e.cost_usd IS NULL) AS unpriced,
                       sum(e.cost_usd) AS cost, sum(e.total_tokens) AS tokens
                  FROM llm_usage.usage_events e
                 WHERE e.occurred_at >= $1 AND e.occurred_at < $2
                   AND (v_all OR e.tenant_id = ANY (v_tenants))
                 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9) g
         ORDER BY g.day, g.tenant_id, g.model, g.price_id, g.event_type, g.project, g.workspace, g.api_key;
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._focus_export_impl(timestamptz, timestamptz, text) IS
'Internal: the body of llm_usage.focus_export(), run as the owner by its entry point, which records the caller (src/caller.c); keeps to the caller''s tenants explicitly.';
