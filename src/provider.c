/*-------------------------------------------------------------------------
 *
 * provider.c
 *	  What the provider adapters share: finding one by name, building the
 *	  URL of one page of one endpoint for a window, the authentication
 *	  headers as registered secrets, and checking and reducing a page.
 *
 * A page is accepted only if all of it is plausible; anything else raises
 * an ERROR that fails the run (which then writes nothing):
 *
 *	- the body is valid UTF-8 without NUL bytes, convertible to the
 *	  database's encoding, and parses as JSON (PostgreSQL's jsonb);
 *	- the envelope is {"data": [...], "has_more": bool, "next_page":
 *	  string|null} (the same for OpenAI and Anthropic); has_more true needs
 *	  a next_page, of at most 1,024 printable ASCII characters;
 *	- every bucket is an object with a start and an end (Unix seconds or
 *	  RFC 3339, per provider), whole seconds, start < end, both inside the
 *	  requested window, and a "results" array of objects;
 *	- every field the endpoint declares (provider_openai.c,
 *	  provider_anthropic.c) has its type: counts are whole numbers from 0 to
 *	  10^15, money is a finite number within +-10^12 USD (10^14 cents),
 *	  grouping dimensions are strings of at most 512 bytes without control
 *	  characters (or booleans), currencies say USD; required fields are
 *	  present.  Unknown keys are ignored.
 *
 * What is kept of a page is only the declared fields, flattened ("a.b"
 * keys), in {"data": [{"start": s, "end": s, "results": [...]}]}: the raw
 * body and its parse are freed at once, so a run's memory follows its rows,
 * not the pages' size.  Each bucket and row also yields its natural key
 * (endpoint, bucket start, dimensions), with which the collector refuses a
 * bucket or a row that comes twice within a run.
 *
 * Knows nothing about curl or SPI.  Turning the kept rows into table rows
 * is done in SQL (llm_usage._ingest_rows) in the collector's write
 * transaction.  Needs no transaction.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "llm_usage.h"

#define MAX_TEXT_BYTES 512
#define MAX_CURSOR_BYTES 1024
#define MAX_COUNT INT64CONST(1000000000000000)	/* 10^15 */
#define MAX_USD INT64CONST(1000000000000)	/* 10^12 */
#define MAX_CENTS INT64CONST(100000000000000)	/* 10^14 */

const Provider *
provider_lookup(const char *name)
{
	if (strcmp(name, "openai") == 0)
		return &llm_usage_provider_openai;
	if (strcmp(name, "anthropic") == 0)
		return &llm_usage_provider_anthropic;
	return NULL;
}

/*
 * provider_percent_encode
 *		Percent-encode s, all but the unreserved characters of RFC 3986,
 *		into dst (no terminating NUL), or only count when dst is NULL;
 *		returns the encoded length.  Counting first lets a caller allocate
 *		exactly once (a URL carrying a secret must not leave copies behind
 *		in buffers outgrown on the way).
 */
size_t
provider_percent_encode(char *dst, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t		n = 0;

	for (const unsigned char *p = (const unsigned char *) s; *p; p++)
	{
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			(*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.' || *p == '~')
		{
			if (dst)
				dst[n] = (char) *p;
			n++;
		}
		else
		{
			if (dst)
			{
				dst[n] = '%';
				dst[n + 1] = hex[*p >> 4];
				dst[n + 2] = hex[*p & 15];
			}
			n += 3;
		}
	}
	return n;
}

/* percent-encode s onto buf */
static void
append_encoded(StringInfo buf, const char *s)
{
	size_t		n = provider_percent_encode(NULL, s);

	enlargeStringInfo(buf, (int) n);
	provider_percent_encode(buf->data + buf->len, s);
	buf->len += (int) n;
	buf->data[buf->len] = '\0';
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

/*
 * provider_auth_headers
 *		The request headers that authenticate with api_key, each registered
 *		as a secret; release them with provider_free_headers on every path.
 */
char	  **
provider_auth_headers(const Provider *p, const char *api_key)
{
	char	  **headers = p->auth_headers(api_key);

	provider_register_headers(headers);
	return headers;
}

/* register every header of a NULL-terminated list as a secret */
void
provider_register_headers(char **headers)
{
	for (char **h = headers; h && *h; h++)
		secret_register_string(*h);
}

/* wipe (and forget) headers made by provider_auth_headers; NULL is fine */
void
provider_free_headers(char **headers)
{
	for (char **h = headers; h && *h; h++)
	{
		secret_release(*h);
		explicit_bzero(*h, strlen(*h));
	}
}

/* ---------------------------------------------------------------- checks */

static void pg_attribute_noreturn()
malformed(const char *endpoint, const char *fmt,...) pg_attribute_printf(2, 3);

static void
malformed(const char *endpoint, const char *fmt,...)
{
	char		buf[256];
	va_list		args;

	va_start(args, fmt);
	vsnprintf(buf, sizeof(buf), fmt, args);
	va_end(args);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_JSON_TEXT),
			 errmsg("malformed provider response (%s): %s", endpoint, buf)));
}

/* the body: valid UTF-8, no NUL byte, convertible to the database encoding */
static char *
checked_text(const char *endpoint, const char *body, size_t len)
{
	char	   *converted;

	if (memchr(body, '\0', len) != NULL)
		malformed(endpoint, "the body contains a NUL byte");
	if (!pg_verify_mbstr(PG_UTF8, body, (int) len, true))
		malformed(endpoint, "the body is not valid UTF-8");
	converted = (char *) pg_do_encoding_conversion((unsigned char *) body, (int) len,
												   PG_UTF8, GetDatabaseEncoding());
	return converted;
}

/*
 * provider_body_text
 *		A response body checked as provider_parse_page checks it (valid
 *		UTF-8, no NUL byte, convertible), converted to the database encoding;
 *		for the custom sources (provider_custom.c).
 */
char *
provider_body_text(const char *endpoint, const char *body, size_t len)
{
	return checked_text(endpoint, body, len);
}

static Numeric
num(int64 v)
{
	return int64_to_numeric(v);
}

static int
cmp(Numeric a, Numeric b)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(a), NumericGetDatum(b)));
}

static bool
is_whole(Numeric n)
{
	Datum		f = DirectFunctionCall1(numeric_floor, NumericGetDatum(n));

	return DatumGetBool(DirectFunctionCall2(numeric_eq, NumericGetDatum(n), f));
}

/* a plain decimal string: -?digits[.digits], at most 40 characters */
static bool
is_decimal_string(const char *s, int len)
{
	int			i = 0;
	int			digits = 0;

	if (len == 0 || len > 40)
		return false;
	if (s[0] == '-')
		i++;
	for (; i < len && s[i] >= '0' && s[i] <= '9'; i++)
		digits++;
	if (digits == 0)
		return false;
	if (i < len && s[i] == '.')
	{
		int			frac = 0;

		for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++)
			frac++;
		if (frac == 0)
			return false;
	}
	return i == len;
}

static Numeric
decimal_string_value(const JsonbValue *v)
{
	char	   *s = pnstrdup(v->val.string.val, v->val.string.len);

	return DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(s),
											   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
}

/* within +-bound */
static bool
within(Numeric n, int64 bound)
{
	return cmp(n, num(bound)) <= 0 && cmp(n, num(-bound)) >= 0;
}

/* what a JSON value is, for error messages ("a string", "an array", ...) */
const char *
provider_json_type(const JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			return "null";
		case jbvString:
			return "a string";
		case jbvNumeric:
			return "a number";
		case jbvBool:
			return "a boolean";
		case jbvBinary:
			return JsonContainerIsArray(v->val.binary.data) ? "an array" : "an object";
		default:
			return "something else";
	}
}

/* key of an object container; false if absent */
static bool
get_key(JsonbContainer *c, const char *key, JsonbValue *out)
{
	return getKeyJsonValueFromContainer(c, key, strlen(key), out) != NULL;
}

/*
 * find the value of path ("key" or "object.key") in a result object;
 * false when it (or its object) is absent or null
 */
static bool
get_path(const char *endpoint, JsonbContainer *c, const char *path, JsonbValue *out, const char *where)
{
	const char *dot = strchr(path, '.');

	if (dot == NULL)
		return get_key(c, path, out) && out->type != jbvNull;
	else
	{
		char	   *head = pnstrdup(path, dot - path);
		JsonbValue	obj;

		if (!get_key(c, head, &obj) || obj.type == jbvNull)
			return false;
		if (obj.type != jbvBinary || !JsonContainerIsObject(obj.val.binary.data))
			malformed(endpoint, "%s: \"%s\" is %s, not an object", where, head, provider_json_type(&obj));
		return get_key(obj.val.binary.data, dot + 1, out) && out->type != jbvNull;
	}
}

/* ---------------------------------------------------------------- buckets */

/* an RFC 3339 timestamp: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM) */
static bool
is_rfc3339(const char *s, int len)
{
	static const char *const shape = "dddd-dd-ddTdd:dd:dd";
	int			i;

	if (len < 20 || len > 40)
		return false;
	for (i = 0; shape[i]; i++)
	{
		if (shape[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9') : s[i] != shape[i])
			return false;
	}
	if (s[i] == '.')
	{
		int			f = 0;

		for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++)
			f++;
		if (f == 0 || f > 9)
			return false;
	}
	if (i < len && s[i] == 'Z')
		return i + 1 == len;
	return i + 6 == len && (s[i] == '+' || s[i] == '-') &&
		isdigit((unsigned char) s[i + 1]) && isdigit((unsigned char) s[i + 2]) && s[i + 3] == ':' &&
		isdigit((unsigned char) s[i + 4]) && isdigit((unsigned char) s[i + 5]);
}

/* a bucket's start or end as Unix seconds */
static int64
bucket_time(const Provider *p, const char *endpoint, JsonbContainer *bucket, const char *key, int bi)
{
	JsonbValue	v;

	if (!get_key(bucket, key, &v) || v.type == jbvNull)
		malformed(endpoint, "bucket %d has no \"%s\"", bi, key);
	if (!p->rfc3339_buckets)
	{
		if (v.type != jbvNumeric)
			malformed(endpoint, "bucket %d: \"%s\" is %s, not Unix seconds", bi, key, provider_json_type(&v));
		if (!within(v.val.numeric, INT64CONST(100000000000)) || !is_whole(v.val.numeric))
			malformed(endpoint, "bucket %d: \"%s\" is not a plausible Unix time in whole seconds", bi, key);
		return DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(v.val.numeric)));
	}
	else
	{
		char	   *s;
		TimestampTz ts;

		if (v.type != jbvString || !is_rfc3339(v.val.string.val, v.val.string.len))
			malformed(endpoint, "bucket %d: \"%s\" is not an RFC 3339 timestamp", bi, key);
		s = pnstrdup(v.val.string.val, v.val.string.len);
		ts = DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in, CStringGetDatum(s),
													 ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
		if (TIMESTAMP_NOT_FINITE(ts) || ts % USECS_PER_SEC != 0)
			malformed(endpoint, "bucket %d: \"%s\" is not a whole second", bi, key);
		return (int64) timestamptz_to_time_t(ts);
	}
}

/* ---------------------------------------------------------------- building */

static void
push_key(JsonbParseState **ps, const char *key)
{
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	(void) pushJsonbValue(ps, WJB_KEY, &k);
}

static void
push_numeric(JsonbParseState **ps, const char *key, Numeric n)
{
	JsonbValue	v;

	push_key(ps, key);
	v.type = jbvNumeric;
	v.val.numeric = n;
	(void) pushJsonbValue(ps, WJB_VALUE, &v);
}

/*
 * one result row: check every declared field, push the kept ones, append
 * the row's dimensions to key
 */
static void
reduce_result(const ProviderEndpoint *ep, JsonbContainer *row, JsonbParseState **ps,
			  StringInfo key, const char *where)
{
	(void) pushJsonbValue(ps, WJB_BEGIN_OBJECT, NULL);
	for (int f = 0; f < ep->nfields; f++)
	{
		const ProviderField *pf = &ep->fields[f];
		JsonbValue	v;
		bool		present = get_path(ep->name, row, pf->path, &v, where);

		if (!present)
		{
			if (pf->required)
				malformed(ep->name, "%s: \"%s\" is missing or null", where, pf->path);
			if (pf->kind == PF_TEXT || pf->kind == PF_BOOL)
				appendStringInfoString(key, "\x1e\x1d");
			continue;
		}
		switch (pf->kind)
		{
			case PF_COUNT:
				if (v.type != jbvNumeric)
					malformed(ep->name, "%s: \"%s\" is %s, not a count", where, pf->path, provider_json_type(&v));
				if (cmp(v.val.numeric, num(0)) < 0)
					malformed(ep->name, "%s: \"%s\" is negative", where, pf->path);
				if (cmp(v.val.numeric, num(MAX_COUNT)) > 0)
					malformed(ep->name, "%s: \"%s\" is implausibly large (over 10^15)", where, pf->path);
				if (!is_whole(v.val.numeric))
					malformed(ep->name, "%s: \"%s\" is not a whole number", where, pf->path);
				push_numeric(ps, pf->path, v.val.numeric);
				break;
			case PF_USD:
			case PF_CENTS:
				{
					Numeric		n;
					int64		bound = pf->kind == PF_USD ? MAX_USD : MAX_CENTS;

					if (v.type == jbvNumeric && pf->kind == PF_USD)
						n = v.val.numeric;
					else if (v.type == jbvString && is_decimal_string(v.val.string.val, v.val.string.len))
						n = decimal_string_value(&v);
					else if (v.type == jbvString)
						malformed(ep->name, "%s: \"%s\" is a string but not a plain decimal number", where, pf->path);
					else
						malformed(ep->name, "%s: \"%s\" is %s, not a decimal amount", where, pf->path, provider_json_type(&v));
					if (!within(n, bound))
						malformed(ep->name, "%s: \"%s\" is implausibly large", where, pf->path);
					push_numeric(ps, pf->path, n);
				}
				break;
			case PF_CURRENCY:
				if (v.type != jbvString || v.val.string.len != 3 ||
					pg_strncasecmp(v.val.string.val, "usd", 3) != 0)
					malformed(ep->name, "%s: \"%s\" is not USD (only USD amounts are collected)", where, pf->path);
				break;
			case PF_TEXT:
				if (v.type != jbvString)
					malformed(ep->name, "%s: \"%s\" is %s, not a string", where, pf->path, provider_json_type(&v));
				if (v.val.string.len > MAX_TEXT_BYTES)
					malformed(ep->name, "%s: \"%s\" is longer than %d bytes", where, pf->path, MAX_TEXT_BYTES);
				for (int i = 0; i < v.val.string.len; i++)
				{
					unsigned char c = (unsigned char) v.val.string.val[i];

					if (c < 0x20 || c == 0x7f)
						malformed(ep->name, "%s: \"%s\" contains a control character", where, pf->path);
				}
				push_key(ps, pf->path);
				(void) pushJsonbValue(ps, WJB_VALUE, &v);
				appendStringInfoChar(key, '\x1e');
				appendBinaryStringInfo(key, v.val.string.val, v.val.string.len);
				break;
			case PF_BOOL:
				if (v.type != jbvBool)
					malformed(ep->name, "%s: \"%s\" is %s, not a boolean", where, pf->path, provider_json_type(&v));
				push_key(ps, pf->path);
				(void) pushJsonbValue(ps, WJB_VALUE, &v);
				appendStringInfoString(key, v.val.boolean ? "\x1e" "t" : "\x1e" "f");
				break;
		}
	}
	(void) pushJsonbValue(ps, WJB_END_OBJECT, NULL);
}

/*
 * provider_parse_page
 *		Check a page of endpoint ep of provider p, fetched for
 *		[window_from, window_to), and fill *out with what is kept of it (see
 *		the file header), allocated in the caller's memory context.  The
 *		parse happens in a context of its own, deleted before returning.
 *		Raises an ERROR on anything implausible.
 */
void
provider_parse_page(const Provider *p, const ProviderEndpoint *ep,
					const char *body, size_t len,
					TimestampTz window_from, TimestampTz window_to,
					ProviderPage *out)
{
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext tmp = AllocSetContextCreate(caller, "llm_usage page", ALLOCSET_DEFAULT_SIZES);
	const char *epn = ep->name;
	Jsonb	   *jb;
	JsonbValue	v;
	JsonbContainer *data;
	JsonbParseState *ps = NULL;
	JsonbValue *built;
	Jsonb	   *rows;
	List	   *keys = NIL;
	char	   *next_page = NULL;
	bool		has_more;
	int64		wfrom = (int64) timestamptz_to_time_t(window_from);
	int64		wto = (int64) timestamptz_to_time_t(window_to);

	MemoryContextSwitchTo(tmp);

	jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(checked_text(epn, body, len))));
	if (!JB_ROOT_IS_OBJECT(jb))
		malformed(epn, "the body is not a JSON object");
	if (!get_key(&jb->root, "data", &v) || v.type != jbvBinary || !JsonContainerIsArray(v.val.binary.data))
		malformed(epn, "no \"data\" array");
	data = v.val.binary.data;
	if (!get_key(&jb->root, "has_more", &v) || v.type != jbvBool)
		malformed(epn, "no boolean \"has_more\"");
	has_more = v.val.boolean;
	if (get_key(&jb->root, "next_page", &v) && v.type != jbvNull)
	{
		if (v.type != jbvString)
			malformed(epn, "\"next_page\" is %s, neither a string nor null", provider_json_type(&v));
		if (v.val.string.len == 0 || v.val.string.len > MAX_CURSOR_BYTES)
			malformed(epn, "\"next_page\" is empty or longer than %d bytes", MAX_CURSOR_BYTES);
		for (int i = 0; i < v.val.string.len; i++)
			if (v.val.string.val[i] < 0x21 || v.val.string.val[i] > 0x7e)
				malformed(epn, "\"next_page\" holds characters other than printable ASCII");
		next_page = pnstrdup(v.val.string.val, v.val.string.len);
	}
	if (has_more && next_page == NULL)
		malformed(epn, "\"has_more\" is true but there is no \"next_page\"; the window would be incomplete");
	if (!has_more)
		next_page = NULL;

	(void) pushJsonbValue(&ps, WJB_BEGIN_OBJECT, NULL);
	push_key(&ps, "data");
	(void) pushJsonbValue(&ps, WJB_BEGIN_ARRAY, NULL);
	for (uint32 bi = 0; bi < JsonContainerSize(data); bi++)
	{
		JsonbValue *b = getIthJsonbValueFromContainer(data, bi);
		JsonbContainer *bucket;
		JsonbContainer *results;
		int64		start;
		int64		end;
		StringInfoData bkey;

		if (b->type != jbvBinary || !JsonContainerIsObject(b->val.binary.data))
			malformed(epn, "bucket %u is %s, not an object", bi + 1, provider_json_type(b));
		bucket = b->val.binary.data;
		start = bucket_time(p, epn, bucket, p->bucket_start, bi + 1);
		end = bucket_time(p, epn, bucket, p->bucket_end, bi + 1);
		if (end <= start)
			malformed(epn, "bucket %u ends before it starts", bi + 1);
		if (start < wfrom || end > wto)
			malformed(epn, "bucket %u (" INT64_FORMAT " to " INT64_FORMAT ") is outside the requested window (" INT64_FORMAT " to " INT64_FORMAT ")",
					  bi + 1, start, end, wfrom, wto);
		if (!get_key(bucket, "results", &v) || v.type != jbvBinary || !JsonContainerIsArray(v.val.binary.data))
			malformed(epn, "bucket %u has no \"results\" array", bi + 1);
		results = v.val.binary.data;

		initStringInfo(&bkey);
		appendStringInfo(&bkey, "%s\x1f" INT64_FORMAT, epn, start);
		keys = lappend(keys, psprintf("B\x1f%s", bkey.data));

		(void) pushJsonbValue(&ps, WJB_BEGIN_OBJECT, NULL);
		push_numeric(&ps, "start", num(start));
		push_numeric(&ps, "end", num(end));
		push_key(&ps, "results");
		(void) pushJsonbValue(&ps, WJB_BEGIN_ARRAY, NULL);
		for (uint32 ri = 0; ri < JsonContainerSize(results); ri++)
		{
			JsonbValue *r = getIthJsonbValueFromContainer(results, ri);
			char		where[64];
			StringInfoData rkey;

			snprintf(where, sizeof(where), "bucket %u result %u", bi + 1, ri + 1);
			if (r->type != jbvBinary || !JsonContainerIsObject(r->val.binary.data))
				malformed(epn, "%s is %s, not an object", where, provider_json_type(r));
			initStringInfo(&rkey);
			appendStringInfo(&rkey, "R\x1f%s", bkey.data);
			reduce_result(ep, r->val.binary.data, &ps, &rkey, where);
			keys = lappend(keys, rkey.data);
		}
		(void) pushJsonbValue(&ps, WJB_END_ARRAY, NULL);
		(void) pushJsonbValue(&ps, WJB_END_OBJECT, NULL);
	}
	(void) pushJsonbValue(&ps, WJB_END_ARRAY, NULL);
	built = pushJsonbValue(&ps, WJB_END_OBJECT, NULL);
	rows = JsonbValueToJsonb(built);

	/* keep what is kept in the caller's context, drop the rest */
	MemoryContextSwitchTo(caller);
	out->rows = (Jsonb *) palloc(VARSIZE(rows));
	memcpy(out->rows, rows, VARSIZE(rows));
	out->has_more = has_more;
	out->next_page = next_page ? pstrdup(next_page) : NULL;
	out->keys = NIL;
	{
		ListCell   *lc;

		foreach(lc, keys)
			out->keys = lappend(out->keys, pstrdup((char *) lfirst(lc)));
	}
	MemoryContextDelete(tmp);
}
