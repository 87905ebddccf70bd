/*-------------------------------------------------------------------------
 *
 * llm_usage.h
 *	  Declarations shared by the llm_usage C files: settings, shared state,
 *	  crypto, HTTP, providers, collector, worker and schedule.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LLM_USAGE_H
#define LLM_USAGE_H

#include "compat.h"

#include "datatype/timestamp.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "pgtime.h"
#include "utils/jsonb.h"

/* LLM_USAGE_VERSION, the extension's version, comes from the Makefile (-D). */

/* settings (llm_usage.c) */
extern bool llm_usage_preloaded;
extern char *llm_usage_database;
extern bool llm_usage_enabled;
extern char *llm_usage_master_key_file;
extern char *llm_usage_collect_schedule;
extern char *llm_usage_timezone;
extern char *llm_usage_openai_base_url;
extern char *llm_usage_anthropic_base_url;
extern int	llm_usage_http_timeout_ms;
extern int	llm_usage_max_retries;
extern int	llm_usage_http_max_response_kb;
/* the response cap, so that a body and its terminating NUL stay below MaxAllocSize */
#define LLM_USAGE_MAX_RESPONSE_KB 262144
extern int	llm_usage_aggregate_interval;
extern int	llm_usage_max_pages;
extern int	llm_usage_mapping_timeout_ms;
extern int	llm_usage_alert_delivery_attempts;
extern int	llm_usage_alert_retry_delay;
extern int	llm_usage_quota_max_tenants;	/* sizes quota_shmem.c and session_cache.c */

/* who is calling (caller.c): the role tenant checks are made for */
extern Oid	llm_usage_caller_id(void);
/* the owner of a function, whose rights a C path switching user takes (caller.c) */
extern Oid	llm_usage_function_owner(Oid fn);

/* shared state (shmem.c) */
extern void llm_usage_shmem_request(void);
extern void llm_usage_shmem_startup(void);
extern void llm_usage_shmem_publish_worker(void);
extern bool llm_usage_wake_worker_now(void);

/* crypto (crypto.c) */
#define LLM_USAGE_KEY_BYTES 32
extern void llm_usage_check_master_key_file(void);
extern char *llm_usage_decrypt_provider_key(bytea *ciphertext, bytea *wrapped_dek,
											int master_version, const char *aad);

/* secrets in process memory (secret.c) */
extern void secret_register(void *ptr, size_t len);
extern void secret_register_string(char *s);
extern void secret_release(void *ptr);
extern void secret_release_all(void);
extern int	secret_live_count(void);

/* the worker's short transactions; exit on postmaster death (worker_tx.c) */
extern void llm_usage_exit_if_orphaned(void);
extern MemoryContext worker_tx_begin(const char *activity);
extern void worker_tx_commit(MemoryContext caller);
extern void worker_tx_abort(MemoryContext caller);

/* HTTP (http.c) */
typedef struct HttpRequest
{
	const char *url;
	const char *const *headers; /* "Name: value", NULL-terminated */
	int			timeout_ms;		/* of one attempt */
	int			max_retries;
	size_t		max_body;		/* below MaxAllocSize */
	const char *post_body;		/* NULL: GET; else POST this body */
	bool		expect_json;	/* a 2xx answer must be application/json */
} HttpRequest;

typedef struct HttpResult
{
	bool		ok;				/* a 2xx (JSON) response is in body */
	long		status;			/* HTTP status of the last attempt, 0 if none */
	int			attempts;		/* requests sent */
	char	   *body;			/* when ok: NUL-terminated, body_len bytes */
	size_t		body_len;
	char		error[256];		/* why not ok; never contains request headers */
} HttpResult;

extern void llm_usage_curl_init(void);
extern void http_fetch(const HttpRequest *req, HttpResult *res);
#ifdef LIBCURL_VERSION_NUM
extern CURLcode llm_usage_curl_perform(CURLM *m, CURL *h);
#endif

/* mail (smtp.c) */
extern bool smtp_send(const char *url, const char *from, const char *to_list,
					  const char *message, int timeout_ms, char *error, size_t error_size);

/* crypto (crypto.c) */
extern char *llm_usage_hmac_sha256_hex(const char *key, const char *data, size_t len);

/* alert delivery (delivery.c) */
extern char *llm_usage_alert_webhook_url;
extern char *llm_usage_alert_webhook_secret;
extern char *llm_usage_alert_smtp_url;
extern char *llm_usage_alert_email_from;
extern char *llm_usage_alert_email_to;
extern TimestampTz delivery_run(TimestampTz deadline, bool *more);

/* providers (provider_openai.c, provider_anthropic.c, provider.c) */
typedef enum ProviderFieldKind
{
	PF_COUNT,					/* whole number, 0 <= n <= 10^15 (tokens, requests) */
	PF_TEXT,					/* string or null, <= 512 bytes, no control
								 * characters: a grouping dimension */
	PF_BOOL,					/* boolean or null: a grouping dimension */
	PF_USD,						/* number (or decimal string), |n| <= 10^12 */
	PF_CENTS,					/* decimal string, |n| <= 10^14 */
	PF_CURRENCY					/* string that must say USD (checked, not kept) */
} ProviderFieldKind;

typedef struct ProviderField
{
	const char *path;			/* "key" or "object.key" */
	ProviderFieldKind kind;
	bool		required;		/* absent or null fails the page */
} ProviderField;

typedef struct ProviderEndpoint
{
	const char *name;			/* stored in provider_usage.endpoint or "costs" */
	const char *path;			/* appended to the base URL */
	const char *const *params;	/* fixed query parameters, already encoded */
	int			page_limit;		/* buckets per page */
	const ProviderField *fields;	/* what a result row may hold */
	int			nfields;
} ProviderEndpoint;

typedef struct Provider
{
	const char *name;
	const ProviderEndpoint *endpoints;
	int			nendpoints;
	const ProviderEndpoint *probe;	/* cheap authenticated request */
	const char *bucket_start;	/* bucket keys */
	const char *bucket_end;
	bool		rfc3339_buckets;	/* else Unix seconds */
	const char *(*base_url) (void);
	char	   *(*window_params) (pg_time_t from, pg_time_t to);
	char	  **(*auth_headers) (const char *api_key);
} Provider;

/* what one page brought, checked and reduced (provider_parse_page) */
typedef struct ProviderPage
{
	Jsonb	   *rows;			/* {"data": [{"start", "end", "results": [...]}]} */
	bool		has_more;
	char	   *next_page;		/* NULL at the end */
	List	   *keys;			/* char *: natural keys of its buckets and rows */
} ProviderPage;

extern const Provider *provider_lookup(const char *name);
extern char *provider_page_url(const Provider *p, const ProviderEndpoint *ep,
							   pg_time_t from, pg_time_t to, const char *cursor);
extern void provider_parse_page(const Provider *p, const ProviderEndpoint *ep,
								const char *body, size_t len,
								TimestampTz window_from, TimestampTz window_to,
								ProviderPage *out);
extern char **provider_auth_headers(const Provider *p, const char *api_key);
extern void provider_register_headers(char **headers);
extern void provider_free_headers(char **headers);
extern char *provider_body_text(const char *endpoint, const char *body, size_t len);
extern size_t provider_percent_encode(char *dst, const char *s);
extern const char *provider_json_type(const JsonbValue *v);
extern const Provider llm_usage_provider_openai;
extern const Provider llm_usage_provider_anthropic;

/* custom usage sources (provider_custom.c; registered in src/sql/sources.sql) */
typedef enum CustomAuth
{
	CA_NONE,
	CA_BEARER,					/* Authorization: Bearer <secret> */
	CA_HEADER,					/* <auth_name>: <secret> */
	CA_QUERY					/* ?<auth_name>=<secret> */
} CustomAuth;

typedef enum CustomPagination
{
	CP_NONE,
	CP_CURSOR,					/* the token at cursor_path */
	CP_HAS_MORE,				/* has_more_path and the token at next_path */
	CP_PAGE_NUMBER				/* first, first + 1, ... until items_path is empty */
} CustomPagination;

typedef struct CustomSource
{
	int64		source_id;
	char	   *base_url;
	char	   *path_template;	/* with {from} and {to} */
	bool		unix_time;		/* else RFC 3339 UTC */
	bool		per_day;		/* one request series per UTC day */
	CustomAuth	auth;
	char	   *auth_name;
	CustomPagination pagination;
	char	   *page_param;
	char	   *cursor_path;
	char	   *has_more_path;
	char	   *next_path;
	char	   *items_path;
	int			first_page;
	bool		url_allowed;	/* llm_usage.source_url_prefixes allows base_url */
} CustomSource;

typedef struct CustomPage
{
	Jsonb	   *page;			/* the whole body */
	char	   *next;			/* token of the next page; NULL at the end */
} CustomPage;

extern char *custom_page_url(const CustomSource *s, pg_time_t from, pg_time_t to,
							 const char *next, const char *secret);
extern char **custom_auth_headers(const CustomSource *s, const char *secret);
extern void custom_parse_page(const CustomSource *s, const char *body, size_t len,
							  int page_no, int page_number, CustomPage *out);

/* the window a mapping function is called for (llm_usage.c; set by collector.c) */
extern char *llm_usage_source_window_from;
extern char *llm_usage_source_window_to;

/* the worker session's settings that the database's owner may not change (worker_tx.c) */
extern void llm_usage_capture_server_settings(void);
extern void llm_usage_pin_worker_settings(void);

/* schedule (cron.c) */
typedef struct CronSpec
{
	uint64		minutes;		/* bit n: minute n */
	uint32		hours;
	uint32		days;			/* bit n: day of month n (1..31) */
	uint16		months;			/* bit n: month n (1..12) */
	uint8		weekdays;		/* bit n: weekday n (0 = Sunday) */
	bool		days_star;
	bool		weekdays_star;
} CronSpec;

extern bool cron_parse(const char *expr, CronSpec *spec, char **error);
extern TimestampTz cron_next(const CronSpec *spec, TimestampTz after, const pg_tz *tz);

/* collector and worker (collector.c, worker.c) */
extern bool collector_run_next(void);
extern PGDLLEXPORT void llm_usage_worker_main(Datum main_arg);

#endif							/* LLM_USAGE_H */
