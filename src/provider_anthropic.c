/*-------------------------------------------------------------------------
 *
 * provider_anthropic.c
 *	  Anthropic Admin API usage and cost reports: which endpoints, their
 *	  fixed parameters, the window as RFC 3339 timestamps, x-api-key plus
 *	  anthropic-version authentication, group_by[] in bracket form.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <time.h>

#include "llm_usage.h"

static const char *const messages_params[] = {
	"bucket_width=1d",
	"group_by%5B%5D=model", "group_by%5B%5D=api_key_id",
	"group_by%5B%5D=workspace_id", "group_by%5B%5D=service_tier", NULL
};
static const char *const costs_params[] = {
	"group_by%5B%5D=description", "group_by%5B%5D=workspace_id", NULL
};
static const char *const probe_params[] = {NULL};

/*
 * What a result row may hold (provider.c checks and keeps these; anything
 * else is ignored).  The dimensions (text) are exactly the natural key of
 * the row in provider_usage / provider_costs.  Cost amounts are decimal
 * strings in cents.
 */
static const ProviderField messages_fields[] = {
	{"uncached_input_tokens", PF_COUNT, true},
	{"cache_read_input_tokens", PF_COUNT, true},
	{"cache_creation.ephemeral_5m_input_tokens", PF_COUNT, false},
	{"cache_creation.ephemeral_1h_input_tokens", PF_COUNT, false},
	{"output_tokens", PF_COUNT, true},
	{"model", PF_TEXT, false},
	{"workspace_id", PF_TEXT, false},
	{"api_key_id", PF_TEXT, false},
	{"service_tier", PF_TEXT, false},
};
static const ProviderField costs_fields[] = {
	{"amount", PF_CENTS, true},
	{"currency", PF_CURRENCY, false},
	{"description", PF_TEXT, false},
	{"model", PF_TEXT, false},
	{"workspace_id", PF_TEXT, false},
	{"token_type", PF_TEXT, false},
	{"service_tier", PF_TEXT, false},
	{"context_window", PF_TEXT, false},
};

static const ProviderEndpoint anthropic_endpoints[] = {
	{"messages", "/v1/organizations/usage_report/messages", messages_params, 7,
	messages_fields, lengthof(messages_fields)},
	{"costs", "/v1/organizations/cost_report", costs_params, 7,
	costs_fields, lengthof(costs_fields)},
};
static const ProviderEndpoint anthropic_probe = {"costs", "/v1/organizations/cost_report", probe_params, 1,
costs_fields, lengthof(costs_fields)};

static const char *
anthropic_base_url(void)
{
	return llm_usage_anthropic_base_url;
}

static void
rfc3339(pg_time_t t, char *buf, size_t len)
{
	time_t		tt = (time_t) t;
	struct tm	tm;

	gmtime_r(&tt, &tm);
	/* ':' URL-encoded */
	strftime(buf, len, "%Y-%m-%dT%H%%3A%M%%3A%SZ", &tm);
}

static char *
anthropic_window(pg_time_t from, pg_time_t to)
{
	char		a[64];
	char		b[64];

	rfc3339(from, a, sizeof(a));
	rfc3339(to, b, sizeof(b));
	return psprintf("starting_at=%s&ending_at=%s", a, b);
}

static char **
anthropic_auth(const char *api_key)
{
	char	  **h = palloc0(sizeof(char *) * 3);

	h[0] = psprintf("x-api-key: %s", api_key);
	h[1] = pstrdup("anthropic-version: 2023-06-01");
	return h;
}

const Provider llm_usage_provider_anthropic = {
	"anthropic", anthropic_endpoints, lengthof(anthropic_endpoints), &anthropic_probe,
	"starting_at", "ending_at", true,
	anthropic_base_url, anthropic_window, anthropic_auth
};
