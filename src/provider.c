/*-------------------------------------------------------------------------
 *
 * provider.c
 *	  What the provider adapters share: finding one by name, building the
 *	  URL of one page of one endpoint for a window, and reading the page
 *	  envelope ({"data": [...], "has_more": bool, "next_page": str|null},
 *	  the same for OpenAI and Anthropic) with PostgreSQL's jsonb.
 *
 * Knows nothing about curl or SPI.  Turning a page's buckets into rows is
 * done in SQL (llm_usage._ingest_page) inside the collector's write
 * transaction.  Parsing needs no transaction; a malformed page raises an
 * ERROR that the collector catches.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "llm_usage.h"

const Provider *
provider_lookup(const char *name)
{
	if (strcmp(name, "openai") == 0)
		return &llm_usage_provider_openai;
	if (strcmp(name, "anthropic") == 0)
		return &llm_usage_provider_anthropic;
	return NULL;
}

/* percent-encode everything but unreserved characters (RFC 3986) */
static void
append_encoded(StringInfo buf, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (const unsigned char *p = (const unsigned char *) s; *p; p++)
	{
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			(*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.' || *p == '~')
			appendStringInfoChar(buf, (char) *p);
		else
		{
			appendStringInfoChar(buf, '%');
			appendStringInfoChar(buf, hex[*p >> 4]);
			appendStringInfoChar(buf, hex[*p & 15]);
		}
	}
}

/*
 * provider_page_url
 *		URL of one page: base + path + window + fixed parameters + limit,
 *		and the URL-encoded cursor of the previous page when there is one.
 */
char *
provider_page_url(const Provider *p, const ProviderEndpoint *ep,
				  pg_time_t from, pg_time_t to, const char *cursor)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "%s%s?%s", p->base_url(), ep->path, p->window_params(from, to));
	for (const char *const *q = ep->params; q && *q; q++)
		appendStringInfo(&buf, "&%s", *q);
	appendStringInfo(&buf, "&limit=%d", ep->page_limit);
	if (cursor != NULL)
	{
		appendStringInfoString(&buf, "&page=");
		append_encoded(&buf, cursor);
	}
	return buf.data;
}

static void
malformed(const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_JSON_TEXT),
			 errmsg("malformed provider response: %s", what)));
}

/*
 * provider_parse_page
 *		Parse a page; return it as jsonb, with has_more and the next cursor
 *		(NULL at the end).  Raises an ERROR on anything but a well-formed
 *		envelope.
 */
Jsonb *
provider_parse_page(const char *body, bool *has_more, char **next_page)
{
	Jsonb	   *jb;
	JsonbValue	v;

	jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(body)));
	if (!JB_ROOT_IS_OBJECT(jb))
		malformed("the body is not a JSON object");
	if (getKeyJsonValueFromContainer(&jb->root, "data", 4, &v) == NULL ||
		v.type != jbvBinary || !JsonContainerIsArray(v.val.binary.data))
		malformed("no \"data\" array");
	if (getKeyJsonValueFromContainer(&jb->root, "has_more", 8, &v) == NULL || v.type != jbvBool)
		malformed("no boolean \"has_more\"");
	*has_more = v.val.boolean;
	*next_page = NULL;
	if (getKeyJsonValueFromContainer(&jb->root, "next_page", 9, &v) != NULL)
	{
		if (v.type == jbvString)
			*next_page = pnstrdup(v.val.string.val, v.val.string.len);
		else if (v.type != jbvNull)
			malformed("\"next_page\" is neither a string nor null");
	}
	if (*next_page == NULL)
		*has_more = false;
	return jb;
}

void
provider_free_headers(char **headers)
{
	for (char **h = headers; h && *h; h++)
		explicit_bzero(*h, strlen(*h));
}
