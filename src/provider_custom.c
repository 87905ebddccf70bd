/*-------------------------------------------------------------------------
 *
 * provider_custom.c
 *	  Custom usage sources (src/sql/sources.sql): the URL of one page of a
 *	  source for a window, its authentication, and the check of a page and
 *	  where the next one is.
 *
 * A source is registered by an admin: base URL, path template with {from}
 * and {to} (replaced by the window's ends as RFC 3339 UTC or Unix
 * seconds, URL-encoded), authentication (a bearer token, a named header, or
 * a query parameter) and a pagination rule:
 *
 *	none		one page per window (or per day, per_day);
 *	cursor		the next cursor is the string (or integer) at cursor_path;
 *				absent, null or "" ends; it goes into query parameter param;
 *	has_more	the boolean at has_more_path says whether a page follows, the
 *				string (or integer) at next_path is its token, sent as param;
 *	page_number param = first, first + 1, ...; the array at items_path being
 *				empty ends.
 *
 * A page is accepted only if it is valid UTF-8 without NUL bytes,
 * convertible to the database encoding, JSON, and its pagination fields
 * are what the rule says (a cursor or token of at most 1,024 printable
 * ASCII characters).  What a page means is the admin's mapping function's
 * business, called by the collector; this file keeps the whole page.
 *
 * Secrets: with query authentication the URL carries the secret, so it is
 * built in one allocation of its exact size (no copy left behind by a
 * growing buffer) for the caller to register as a secret and wipe.
 *
 * Knows nothing about curl or SPI.  Needs no transaction.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "llm_usage.h"

#define MAX_TOKEN_BYTES 1024

/* s percent-encoded, in a new string */
static char *
encoded(const char *s)
{
	size_t		n = provider_percent_encode(NULL, s);
	char	   *out = palloc(n + 1);

	provider_percent_encode(out, s);
	out[n] = '\0';
	return out;
}

/* a window end as the source wants it */
static char *
time_text(const CustomSource *s, pg_time_t t)
{
	if (s->unix_time)
		return psprintf("%lld", (long long) t);
	else
	{
		struct pg_tm *tm = pg_gmtime(&t);

		return psprintf("%04d-%02d-%02dT%02d:%02d:%02dZ", tm->tm_year + 1900, tm->tm_mon + 1, tm->tm_mday,
						tm->tm_hour, tm->tm_min, tm->tm_sec);
	}
}

/*
 * custom_page_url
 *		URL of one page of source s for [from, to): base URL, path template
 *		with the window, the pagination parameter with next (when not NULL)
 *		and, with query authentication, the secret.  With a secret the result
 *		is one allocation of exactly its size; the caller registers it as a
 *		secret and wipes it when the request is done.
 */
char *
custom_page_url(const CustomSource *s, pg_time_t from, pg_time_t to, const char *next, const char *secret)
{
	StringInfoData buf;
	const char *t = s->path_template;
	char	   *url;
	size_t		len;
	size_t		secret_len = 0;
	bool		has_query;

	initStringInfo(&buf);
	appendStringInfoString(&buf, s->base_url);
	while (*t)
	{
		if (strncmp(t, "{from}", 6) == 0)
		{
			appendStringInfoString(&buf, encoded(time_text(s, from)));
			t += 6;
		}
		else if (strncmp(t, "{to}", 4) == 0)
		{
			appendStringInfoString(&buf, encoded(time_text(s, to)));
			t += 4;
		}
		else
			appendStringInfoChar(&buf, *t++);
	}
	has_query = strchr(s->path_template, '?') != NULL;
	if (next != NULL)
	{
		appendStringInfo(&buf, "%c%s=%s", has_query ? '&' : '?', s->page_param, encoded(next));
		has_query = true;
	}
	if (s->auth != CA_QUERY)
		return buf.data;

	/* name=secret at the end, in one allocation of the exact size */
	if (secret != NULL)
		secret_len = provider_percent_encode(NULL, secret);
	len = buf.len + 1 + strlen(s->auth_name) + 1 + secret_len;
	url = MemoryContextAlloc(CurrentMemoryContext, len + 1);
	memcpy(url, buf.data, buf.len);
	url[buf.len] = has_query ? '&' : '?';
	memcpy(url + buf.len + 1, s->auth_name, strlen(s->auth_name));
	url[buf.len + 1 + strlen(s->auth_name)] = '=';
	if (secret != NULL)
		provider_percent_encode(url + buf.len + 2 + strlen(s->auth_name), secret);
	url[len] = '\0';
	pfree(buf.data);
	return url;
}

/*
 * custom_auth_headers
 *		The request headers that carry secret (bearer, named header), NULL-
 *		terminated; none for query authentication or none at all.  The caller
 *		registers them (provider_register_headers) and wipes them.
 */
char	  **
custom_auth_headers(const CustomSource *s, const char *secret)
{
	char	  **h = palloc0(sizeof(char *) * 2);

	if (s->auth == CA_BEARER)
		h[0] = psprintf("Authorization: Bearer %s", secret);
	else if (s->auth == CA_HEADER)
		h[0] = psprintf("%s: %s", s->auth_name, secret);
	return h;
}

/* ---------------------------------------------------------------- pages */

static void pg_attribute_noreturn()
bad_page(const CustomSource *s, int page_no, const char *fmt,...) pg_attribute_printf(3, 4);

static void
bad_page(const CustomSource *s, int page_no, const char *fmt,...)
{
	char		buf[256];
	va_list		args;

	va_start(args, fmt);
	vsnprintf(buf, sizeof(buf), fmt, args);
	va_end(args);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_JSON_TEXT),
			 errmsg("malformed response of custom source " INT64_FORMAT " (page %d): %s",
					s->source_id, page_no, buf)));
}

/*
 * the value at a dotted path of object keys; false when a key is absent or
 * null on the way; a step that is present but not an object is malformed
 */
static bool
at_path(const CustomSource *s, int page_no, Jsonb *jb, const char *path, JsonbValue *out)
{
	JsonbContainer *c = &jb->root;
	char	   *copy = pstrdup(path);
	char	   *save = NULL;
	char	   *key;
	char	   *prev = NULL;
	JsonbValue	v;

	if (!JB_ROOT_IS_OBJECT(jb))
		return false;
	for (key = strtok_r(copy, ".", &save); key != NULL; key = strtok_r(NULL, ".", &save))
	{
		if (prev != NULL)
		{
			if (v.type == jbvNull)
				return false;
			if (v.type != jbvBinary || !JsonContainerIsObject(v.val.binary.data))
				bad_page(s, page_no, "\"%s\" is %s, not an object", prev, provider_json_type(&v));
			c = v.val.binary.data;
		}
		if (getKeyJsonValueFromContainer(c, key, strlen(key), &v) == NULL)
			return false;
		prev = key;
	}
	*out = v;
	return true;
}

/* a cursor or token: a string of printable ASCII, or an integer; NULL for absent, null or "" */
static char *
token_at(const CustomSource *s, int page_no, Jsonb *jb, const char *path)
{
	JsonbValue	v;

	if (!at_path(s, page_no, jb, path, &v) || v.type == jbvNull)
		return NULL;
	if (v.type == jbvNumeric)
	{
		char	   *n = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v.val.numeric)));

		if (strspn(n, "0123456789") != strlen(n) || strlen(n) > 18)
			bad_page(s, page_no, "\"%s\" is a number but not a whole number of at most 18 digits", path);
		return n;
	}
	if (v.type != jbvString)
		bad_page(s, page_no, "\"%s\" is %s, neither a string nor a number", path, provider_json_type(&v));
	if (v.val.string.len == 0)
		return NULL;
	if (v.val.string.len > MAX_TOKEN_BYTES)
		bad_page(s, page_no, "\"%s\" is longer than %d bytes", path, MAX_TOKEN_BYTES);
	for (int i = 0; i < v.val.string.len; i++)
		if (v.val.string.val[i] < 0x21 || v.val.string.val[i] > 0x7e)
			bad_page(s, page_no, "\"%s\" holds characters other than printable ASCII", path);
	return pnstrdup(v.val.string.val, v.val.string.len);
}

/*
 * custom_parse_page
 *		Check page page_no of source s (body, len) and fill *out, allocated in
 *		the caller's context: the page as jsonb and the token of the next
 *		page (NULL at the end).  page_number is the number this page was
 *		requested with (page_number pagination).  Raises an ERROR on anything
 *		the rule does not allow.
 */
void
custom_parse_page(const CustomSource *s, const char *body, size_t len, int page_no, int page_number,
				  CustomPage *out)
{
	Jsonb	   *jb;
	JsonbValue	v;
	char	   *name = psprintf("custom source " INT64_FORMAT, s->source_id);

	jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(provider_body_text(name, body, len))));
	out->page = jb;
	out->next = NULL;
	switch (s->pagination)
	{
		case CP_NONE:
			break;
		case CP_CURSOR:
			if (!JB_ROOT_IS_OBJECT(jb))
				bad_page(s, page_no, "the body is not a JSON object, so it has no \"%s\"", s->cursor_path);
			out->next = token_at(s, page_no, jb, s->cursor_path);
			break;
		case CP_HAS_MORE:
			if (!JB_ROOT_IS_OBJECT(jb))
				bad_page(s, page_no, "the body is not a JSON object, so it has no \"%s\"", s->has_more_path);
			if (!at_path(s, page_no, jb, s->has_more_path, &v) || v.type != jbvBool)
				bad_page(s, page_no, "no boolean \"%s\"", s->has_more_path);
			if (v.val.boolean)
			{
				out->next = token_at(s, page_no, jb, s->next_path);
				if (out->next == NULL)
					bad_page(s, page_no, "\"%s\" is true but there is no \"%s\"; the window would be incomplete",
							 s->has_more_path, s->next_path);
			}
			break;
		case CP_PAGE_NUMBER:
			if (!at_path(s, page_no, jb, s->items_path, &v) || v.type != jbvBinary || !JsonContainerIsArray(v.val.binary.data))
				bad_page(s, page_no, "no \"%s\" array", s->items_path);
			if (JsonContainerSize(v.val.binary.data) > 0)
				out->next = psprintf("%d", page_number + 1);
			break;
	}
}
