/*-------------------------------------------------------------------------
 *
 * http.c
 *	  One libcurl wrapper for every provider request and alert webhook: GET
 *	  (or POST) with timeouts, TLS verification, http/https only, no
 *	  redirects, a response size cap, and retries of 408/409/429/5xx and
 *	  timeouts with exponential backoff and jitter that honour Retry-After.
 *	  Also the interruptible transfer loop that smtp.c uses.  Knows nothing
 *	  about providers.
 *
 * No ERROR ever jumps through libcurl.  Transfers run through the multi
 * interface: curl_multi_perform() does the work and returns; between its
 * calls, with no libcurl frame on the stack, the loop waits at most
 * WAIT_STEP_MS on the transfer's sockets and on the postmaster-death pipe,
 * exits the process if the postmaster is gone, and runs
 * CHECK_FOR_INTERRUPTS(), so SIGTERM, pg_cancel_backend() and
 * statement_timeout act within WAIT_STEP_MS (a signal also cuts the wait
 * short).  The callbacks (body, headers) only copy bytes into memory they
 * can allocate without raising (MCXT_ALLOC_NO_OOM, never past the cap) and
 * set flags; whatever went wrong is reported after curl returns.  Handles
 * are released, and the request headers (which may carry an API key) wiped,
 * in PG_FINALLY blocks, so on every path; secret.c wipes them at process
 * exit on the paths that do not unwind.  libcurl's own copies (the request
 * it builds) are wiped when it frees them: it allocates through wiping
 * allocators (llm_usage_curl_init).
 *
 * Secrets: curl's verbose mode is never enabled, no header is ever copied
 * into an error message or a log line, and error texts name only the
 * status, a sanitised content type or curl's error.
 *
 * No transaction state is needed or touched.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>
#include <poll.h>

#include "common/pg_prng.h"
#include "miscadmin.h"
#include "postmaster/postmaster.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "llm_usage.h"

#define BACKOFF_BASE_MS 500
#define BACKOFF_CAP_MS 30000
#define RETRY_AFTER_CAP_S 120
#define WAIT_STEP_MS 100

/* the response body, grown without ever raising an ERROR */
typedef struct BodyBuffer
{
	MemoryContext cxt;
	char	   *data;
	size_t		len;
	size_t		alloc;
	size_t		max;			/* cap on len */
	bool		too_big;
	bool		oom;
} BodyBuffer;

/* response headers we read, copied by the header callback */
typedef struct HeaderState
{
	char		retry_after[64];
	char		retry_after_ms[64];
} HeaderState;

static bool curl_initialised = false;

StaticAssertDecl((Size) LLM_USAGE_MAX_RESPONSE_KB * 1024 < MaxAllocSize,
				 "the largest response body and its NUL must fit in one allocation");

/*
 * write_body: the body callback.  Appends to the buffer, growing it with an
 * allocation that returns NULL rather than raising; refuses (and so makes
 * curl stop with CURLE_WRITE_ERROR) past the cap or out of memory.
 */
static size_t
write_body(char *data, size_t size, size_t nmemb, void *userdata)
{
	BodyBuffer *b = (BodyBuffer *) userdata;
	size_t		n = size * nmemb;

	if (n > b->max - b->len)
	{
		b->too_big = true;
		return 0;
	}
	if (b->len + n + 1 > b->alloc)
	{
		size_t		want = Max(b->alloc, 8192);
		char	   *p;

		while (want < b->len + n + 1)
			want *= 2;
		want = Min(want, b->max + 1);
		p = MemoryContextAllocExtended(b->cxt, want, MCXT_ALLOC_NO_OOM);
		if (p == NULL)
		{
			b->oom = true;
			return 0;
		}
		if (b->len > 0)
			memcpy(p, b->data, b->len);
		if (b->data != NULL)
			pfree(b->data);
		b->data = p;
		b->alloc = want;
	}
	memcpy(b->data + b->len, data, n);
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

/* copy the value of header "name" (lower case, with the colon) from line into out */
static void
take_header(const char *line, size_t len, const char *name, char *out, size_t outlen)
{
	size_t		nlen = strlen(name);
	size_t		i;
	size_t		o = 0;

	if (len < nlen || pg_strncasecmp(line, name, nlen) != 0)
		return;
	i = nlen;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	while (i < len && line[i] != '\r' && line[i] != '\n' && o + 1 < outlen)
		out[o++] = line[i++];
	out[o] = '\0';
}

/*
 * on_header: the header callback.  A status line starts a new response
 * (after a 1xx, or on a retry): forget what an earlier one said.
 */
static size_t
on_header(char *line, size_t size, size_t nitems, void *userdata)
{
	HeaderState *hs = (HeaderState *) userdata;
	size_t		len = size * nitems;

	if (len >= 5 && strncmp(line, "HTTP/", 5) == 0)
	{
		hs->retry_after[0] = '\0';
		hs->retry_after_ms[0] = '\0';
	}
	take_header(line, len, "retry-after:", hs->retry_after, sizeof(hs->retry_after));
	take_header(line, len, "retry-after-ms:", hs->retry_after_ms, sizeof(hs->retry_after_ms));
	return len;
}

/* a non-negative decimal integer of at most maxdigits digits, or -1 */
static int64
parse_digits(const char *s, int maxdigits)
{
	int64		v = 0;
	int			n = 0;

	for (; *s >= '0' && *s <= '9'; s++, n++)
	{
		if (n == maxdigits)
			return PG_INT64_MAX;	/* absurdly large */
		v = v * 10 + (*s - '0');
	}
	return (n == 0 || *s != '\0') ? -1 : v;
}

/*
 * Milliseconds the last response asked to wait (retry-after-ms first, then
 * Retry-After as seconds or an HTTP date); -1 if it asked nothing readable.
 * Absurd values come back as PG_INT64_MAX.
 */
static int64
retry_after_ms(const HeaderState *hs)
{
	int64		v;

	if (hs->retry_after_ms[0] && (v = parse_digits(hs->retry_after_ms, 12)) >= 0)
		return v;
	if (hs->retry_after[0] == '\0')
		return -1;
	if ((v = parse_digits(hs->retry_after, 9)) >= 0)
		return v == PG_INT64_MAX ? v : v * 1000;
	else
	{
		time_t		when = curl_getdate(hs->retry_after, NULL);

		if (when > 0)
			return (int64) Max(0, (int64) when - (int64) time(NULL)) * 1000;
	}
	return -1;
}

static bool
retryable_status(long status)
{
	return status == 408 || status == 409 || status == 429 || status >= 500;
}

/*
 * sleep_ms
 *		Sleep ms milliseconds on the latch, noticing interrupts and
 *		postmaster death at least every second.  A latch set early (a
 *		collect_now() wake-up, a procsignal) does not shorten the sleep: the
 *		time left is taken from the clock.
 */
static void
sleep_ms(long ms)
{
	TimestampTz end = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);

	for (;;)
	{
		long		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), end);

		if (left <= 0)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Min(left, 1000), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* what curl said the content type was, printable ASCII only, for an error text */
static void
sanitised(const char *in, char *out, size_t outlen)
{
	size_t		o = 0;

	if (in == NULL)
		in = "(none)";
	for (; *in && o + 1 < outlen; in++)
		out[o++] = (*in >= 0x20 && *in < 0x7f) ? *in : '?';
	out[o] = '\0';
}

/*
 * libcurl's memory, wiped when freed.  libcurl builds each request (the
 * headers with the API key among them) in buffers of its own and frees them
 * without clearing them; with these allocators every block it frees is
 * zeroed first, so no copy of a key outlives the request in freed memory.
 * A block carries its size in a 16-byte prefix (which keeps malloc's
 * alignment).  Thread-safe, as malloc is (the resolver runs in threads).
 */
#define WIPE_PREFIX 16

static void *
wipe_malloc(size_t n)
{
	char	   *p;

	if (n > SIZE_MAX - WIPE_PREFIX)
		return NULL;
	p = malloc(n + WIPE_PREFIX);
	if (p == NULL)
		return NULL;
	*(size_t *) p = n;
	return p + WIPE_PREFIX;
}

static void
wipe_free(void *q)
{
	char	   *p;

	if (q == NULL)
		return;
	p = (char *) q - WIPE_PREFIX;
	explicit_bzero(q, *(size_t *) p);
	free(p);
}

static void *
wipe_realloc(void *q, size_t n)
{
	void	   *r;

	if (q == NULL)
		return wipe_malloc(n);
	if (n == 0)
	{
		wipe_free(q);
		return NULL;
	}
	r = wipe_malloc(n);
	if (r == NULL)
		return NULL;
	memcpy(r, q, Min(n, *(size_t *) ((char *) q - WIPE_PREFIX)));
	wipe_free(q);
	return r;
}

static char *
wipe_strdup(const char *s)
{
	size_t		n = strlen(s) + 1;
	char	   *r = wipe_malloc(n);

	if (r != NULL)
		memcpy(r, s, n);
	return r;
}

static void *
wipe_calloc(size_t nmemb, size_t size)
{
	void	   *r;

	if (size != 0 && nmemb > SIZE_MAX / size)
		return NULL;
	r = wipe_malloc(nmemb * size);
	if (r != NULL)
		memset(r, 0, nmemb * size);
	return r;
}

/*
 * llm_usage_curl_init
 *		Initialise libcurl once per process, with the wiping allocators.
 */
void
llm_usage_curl_init(void)
{
	if (curl_initialised)
		return;
	if (curl_global_init_mem(CURL_GLOBAL_DEFAULT, wipe_malloc, wipe_free, wipe_realloc,
							 wipe_strdup, wipe_calloc) != CURLE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not initialise libcurl")));
	curl_initialised = true;
}

/*
 * llm_usage_curl_perform
 *		Run the transfer of easy handle h to its end through multi handle m
 *		and return its result.  Between steps (curl not on the stack) the
 *		process exits if the postmaster died and CHECK_FOR_INTERRUPTS() may
 *		raise; h is taken out of m on every path.  No transaction needed.
 */
CURLcode
llm_usage_curl_perform(CURLM *m, CURL *h)
{
	volatile CURLcode result = CURLE_OK;
	volatile bool done = false;
	CURLMcode	mc;

	mc = curl_multi_add_handle(m, h);
	if (mc != CURLM_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("libcurl: %s", curl_multi_strerror(mc))));
	PG_TRY();
	{
		while (!done)
		{
			int			running = 0;
			int			left;
			int			numfds;
			CURLMsg    *msg;
			struct curl_waitfd pm;

			mc = curl_multi_perform(m, &running);
			while (mc == CURLM_OK && (msg = curl_multi_info_read(m, &left)) != NULL)
			{
				if (msg->msg == CURLMSG_DONE && msg->easy_handle == h)
				{
					result = msg->data.result;
					done = true;
				}
			}
			if (mc != CURLM_OK)
				ereport(ERROR,
						(errcode(ERRCODE_INTERNAL_ERROR),
						 errmsg("libcurl: %s", curl_multi_strerror(mc))));
			if (done)
				break;
			if (running == 0)
			{
				/* cannot happen: a finished transfer reports CURLMSG_DONE */
				result = CURLE_RECV_ERROR;
				break;
			}

			/* no libcurl frame below us: now interrupts may act */
			llm_usage_exit_if_orphaned();
			CHECK_FOR_INTERRUPTS();

			pm.fd = postmaster_alive_fds[POSTMASTER_FD_WATCH];
			pm.events = CURL_WAIT_POLLIN;
			pm.revents = 0;
			mc = curl_multi_wait(m, &pm, 1, WAIT_STEP_MS, &numfds);
			if (mc != CURLM_OK)
				ereport(ERROR,
						(errcode(ERRCODE_INTERNAL_ERROR),
						 errmsg("libcurl: %s", curl_multi_strerror(mc))));
		}
	}
	PG_FINALLY();
	{
		curl_multi_remove_handle(m, h);
	}
	PG_END_TRY();
	return result;
}

/* wipe every string of a header list, forget them as secrets, free the list */
static void
free_header_list(struct curl_slist *list)
{
	for (struct curl_slist *s = list; s != NULL; s = s->next)
	{
		secret_release(s->data);
		explicit_bzero(s->data, strlen(s->data));
	}
	curl_slist_free_all(list);
}

/*
 * http_fetch
 *		GET (or POST req->post_body to) req->url; on return res->ok says
 *		whether a 2xx answer came (with a JSON content type when
 *		req->expect_json), its body in res->body (NUL-terminated, allocated
 *		in the caller's memory context, res->body_len bytes; it may contain
 *		NUL bytes).  Otherwise res->error says why and res->status is the
 *		last HTTP status (0 when no response came).  Raises only for
 *		interrupts (and exits on postmaster death); no transaction needed.
 */
void
http_fetch(const HttpRequest *req, HttpResult *res)
{
	CURL	   *volatile h = NULL;
	CURLM	   *volatile m = NULL;
	struct curl_slist *volatile headers = NULL;
	BodyBuffer	body;
	HeaderState hs;

	llm_usage_curl_init();
	if (req->max_body >= MaxAllocSize)
		elog(ERROR, "response cap %zu is not below MaxAllocSize", req->max_body);
	memset(res, 0, sizeof(*res));
	memset(&body, 0, sizeof(body));
	body.cxt = CurrentMemoryContext;
	body.max = req->max_body;

	PG_TRY();
	{
		struct curl_slist *list = NULL;
		bool		ok;

		h = curl_easy_init();
		m = curl_multi_init();
		if (h == NULL || m == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not create a libcurl handle")));
		for (const char *const *hp = req->headers; hp && *hp; hp++)
		{
			struct curl_slist *n = curl_slist_append(list, *hp);

			if (n == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_OUT_OF_MEMORY),
						 errmsg("out of memory building request headers")));
			list = n;
			headers = list;
		}
		/* libcurl's copies of the headers: wiped at process exit too */
		for (struct curl_slist *s = list; s != NULL; s = s->next)
			secret_register_string(s->data);

		ok = curl_easy_setopt(h, CURLOPT_URL, req->url) == CURLE_OK &&
			LLM_CURL_SET_PROTOCOLS(h, "http,https", CURLPROTO_HTTP | CURLPROTO_HTTPS) &&
			curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
			curl_easy_setopt(h, CURLOPT_HTTPHEADER, list) == CURLE_OK &&
			curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK &&
			curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK &&
			curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
			curl_easy_setopt(h, CURLOPT_VERBOSE, 0L) == CURLE_OK &&
			curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long) req->timeout_ms) == CURLE_OK &&
			curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long) Min(req->timeout_ms, 10000)) == CURLE_OK &&
			curl_easy_setopt(h, CURLOPT_USERAGENT, "llm_usage/" LLM_USAGE_VERSION " (PostgreSQL extension)") == CURLE_OK &&
			curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "") == CURLE_OK &&
			curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_body) == CURLE_OK &&
			curl_easy_setopt(h, CURLOPT_WRITEDATA, &body) == CURLE_OK &&
			curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header) == CURLE_OK &&
			curl_easy_setopt(h, CURLOPT_HEADERDATA, &hs) == CURLE_OK;
		if (ok && req->post_body != NULL)
			ok = curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->post_body) == CURLE_OK &&
				curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long) strlen(req->post_body)) == CURLE_OK;
		else if (ok)
			ok = curl_easy_setopt(h, CURLOPT_HTTPGET, 1L) == CURLE_OK;
		if (!ok)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("libcurl refused an option (it may lack http or https support)")));

		for (int attempt = 0; attempt <= req->max_retries; attempt++)
		{
			CURLcode	rc;
			bool		retry = false;
			int64		wait_ms = -1;
			char	   *ctype = NULL;

			body.len = 0;
			body.too_big = false;
			body.oom = false;
			if (body.data != NULL)
				body.data[0] = '\0';
			memset(&hs, 0, sizeof(hs));
			res->status = 0;
			res->attempts++;

			rc = llm_usage_curl_perform(m, h);

			if (rc == CURLE_OK)
			{
				curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &res->status);
				curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ctype);
				if (res->status >= 200 && res->status < 300)
				{
					if (req->expect_json &&
						(ctype == NULL || pg_strncasecmp(ctype, "application/json", 16) != 0))
					{
						char		shown[64];

						sanitised(ctype, shown, sizeof(shown));
						snprintf(res->error, sizeof(res->error),
								 "HTTP %ld with content type \"%s\", not application/json",
								 res->status, shown);
					}
					else
						res->ok = true;
					break;
				}
				if (res->status >= 300 && res->status < 400)
					snprintf(res->error, sizeof(res->error), "HTTP %ld (redirects are not followed)", res->status);
				else
					snprintf(res->error, sizeof(res->error), "HTTP %ld", res->status);
				if (res->status == 401 || res->status == 403)
					break;		/* the key is refused: retrying cannot help */
				retry = retryable_status(res->status);
				wait_ms = retry_after_ms(&hs);
			}
			else if (body.too_big)
			{
				snprintf(res->error, sizeof(res->error),
						 "response body larger than llm_usage.http_max_response_kb (%zu kB)",
						 req->max_body / 1024);
				break;
			}
			else if (body.oom)
			{
				snprintf(res->error, sizeof(res->error), "out of memory reading the response body");
				break;
			}
			else
			{
				snprintf(res->error, sizeof(res->error), "%s%s",
						 rc == CURLE_OPERATION_TIMEDOUT ? "timed out: " : "request failed: ",
						 curl_easy_strerror(rc));
				retry = (rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_COULDNT_CONNECT ||
						 rc == CURLE_GOT_NOTHING || rc == CURLE_RECV_ERROR ||
						 rc == CURLE_SEND_ERROR || rc == CURLE_PARTIAL_FILE);
			}

			if (!retry || attempt == req->max_retries)
				break;
			if (wait_ms > (int64) RETRY_AFTER_CAP_S * 1000)
			{
				size_t		l = strlen(res->error);

				if (wait_ms == PG_INT64_MAX)
					snprintf(res->error + l, sizeof(res->error) - l,
							 "; Retry-After asks for an absurd wait, more than %d s", RETRY_AFTER_CAP_S);
				else
					snprintf(res->error + l, sizeof(res->error) - l,
							 "; Retry-After asks for " INT64_FORMAT " s, more than %d s",
							 wait_ms / 1000, RETRY_AFTER_CAP_S);
				break;
			}
			if (wait_ms < 0)
			{
				long		backoff = Min((long) BACKOFF_CAP_MS, (long) BACKOFF_BASE_MS << attempt);

				/* full jitter in [backoff/2, backoff] */
				wait_ms = backoff / 2 + (long) pg_prng_uint64_range(&pg_global_prng_state, 0, backoff / 2);
			}
			sleep_ms((long) wait_ms);
		}
	}
	PG_FINALLY();
	{
		if (h != NULL)
			curl_easy_cleanup(h);
		if (m != NULL)
			curl_multi_cleanup(m);
		free_header_list(headers);
	}
	PG_END_TRY();

	if (res->ok)
	{
		res->body = body.data ? body.data : MemoryContextAllocZero(body.cxt, 1);
		res->body_len = body.len;
	}
	else if (body.data != NULL)
		pfree(body.data);
}
