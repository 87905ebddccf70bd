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

static const ProviderEndpoint openai_endpoints[] = {
	{"completions", "/v1/organization/usage/completions", completions_params, 7},
	{"embeddings", "/v1/organization/usage/embeddings", embeddings_params, 7},
	{"costs", "/v1/organization/costs", costs_params, 7},
};
static const ProviderEndpoint openai_probe = {"costs", "/v1/organization/costs", probe_params, 1};

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
	openai_base_url, openai_window, openai_auth
};
