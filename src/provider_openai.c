/*-------------------------------------------------------------------------
 *
 * provider_openai.c
 *	  OpenAI organization Usage and Costs APIs: which endpoints, their fixed
 *	  parameters, the window as Unix seconds, Bearer authentication.
 *	  Arrays are sent in the bracket form the official SDK uses
 *	  (group_by[]=model, URL-encoded).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "llm_usage.h"

static const char *const completions_params[] = {
	"bucket_width=1d",
	"group_by%5B%5D=model", "group_by%5B%5D=project_id",
	"group_by%5B%5D=api_key_id", "group_by%5B%5D=batch", NULL
};
static const char *const embeddings_params[] = {
	"bucket_width=1d",
	"group_by%5B%5D=model", "group_by%5B%5D=project_id", "group_by%5B%5D=api_key_id", NULL
};
static const char *const costs_params[] = {
	"bucket_width=1d", "group_by%5B%5D=line_item", "group_by%5B%5D=project_id", NULL
};
static const char *const probe_params[] = {"bucket_width=1d", NULL};

/*
 * What a result row may hold (provider.c checks and keeps these; anything
 * else is ignored).  The dimensions (text, boolean) are exactly the natural
 * key of the row in provider_usage / provider_costs.
 */
static const ProviderField completions_fields[] = {
	{"input_tokens", PF_COUNT, true},
	{"input_cached_tokens", PF_COUNT, false},
	{"input_cache_write_tokens", PF_COUNT, false},
	{"output_tokens", PF_COUNT, true},
	{"num_model_requests", PF_COUNT, true},
	{"model", PF_TEXT, false},
	{"project_id", PF_TEXT, false},
	{"api_key_id", PF_TEXT, false},
	{"service_tier", PF_TEXT, false},
	{"batch", PF_BOOL, false},
};
static const ProviderField embeddings_fields[] = {
	{"input_tokens", PF_COUNT, true},
	{"num_model_requests", PF_COUNT, true},
	{"model", PF_TEXT, false},
	{"project_id", PF_TEXT, false},
	{"api_key_id", PF_TEXT, false},
};
static const ProviderField costs_fields[] = {
	{"amount.value", PF_USD, true},
	{"amount.currency", PF_CURRENCY, false},
	{"line_item", PF_TEXT, false},
	{"project_id", PF_TEXT, false},
	{"api_key_id", PF_TEXT, false},
};

static const ProviderEndpoint openai_endpoints[] = {
	{"completions", "/v1/organization/usage/completions", completions_params, 7,
	completions_fields, lengthof(completions_fields)},
	{"embeddings", "/v1/organization/usage/embeddings", embeddings_params, 7,
	embeddings_fields, lengthof(embeddings_fields)},
	{"costs", "/v1/organization/costs", costs_params, 7,
	costs_fields, lengthof(costs_fields)},
};
static const ProviderEndpoint openai_probe = {"costs", "/v1/organization/costs", probe_params, 1,
costs_fields, lengthof(costs_fields)};

static const char *
openai_base_url(void)
{
	return llm_usage_openai_base_url;
}

static char *
openai_window(pg_time_t from, pg_time_t to)
{
	return psprintf("start_time=%lld&end_time=%lld", (long long) from, (long long) to);
}

static char **
openai_auth(const char *api_key)
{
	char	  **h = palloc0(sizeof(char *) * 2);

	h[0] = psprintf("Authorization: Bearer %s", api_key);
	return h;
}

const Provider llm_usage_provider_openai = {
	"openai", openai_endpoints, lengthof(openai_endpoints), &openai_probe,
	"start_time", "end_time", false,
	openai_base_url, openai_window, openai_auth
};
