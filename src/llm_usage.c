/*-------------------------------------------------------------------------
 *
 * llm_usage.c
 *	  Entry point of the llm_usage library: module magic, _PG_init, the
 *	  settings (GUCs), shared-memory hooks and the background worker's
 *	  registration.
 *
 * Loaded through shared_preload_libraries, the library requests its shared
 * state, checks (without reading a key) that the master key file is usable
 * and registers the collector worker; the keys themselves are read only by
 * the processes that use them (crypto.c).  Loaded
 * on first use by a backend instead, the SQL API works but collection does
 * not, and build_info() says so.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "pgtime.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "utils/guc.h"

#include "llm_usage.h"
#include "quota.h"
#include "session_cache.h"

PG_MODULE_MAGIC;

bool		llm_usage_preloaded = false;
char	   *llm_usage_database = NULL;
bool		llm_usage_enabled = true;
char	   *llm_usage_master_key_file = NULL;
char	   *llm_usage_collect_schedule = NULL;
char	   *llm_usage_timezone = NULL;
char	   *llm_usage_openai_base_url = NULL;
char	   *llm_usage_anthropic_base_url = NULL;
int			llm_usage_http_timeout_ms = 30000;
int			llm_usage_max_retries = 3;
int			llm_usage_http_max_response_kb = 16384;
int			llm_usage_aggregate_interval = 300;
int			llm_usage_max_pages = 1000;
int			llm_usage_mapping_timeout_ms = 60000;
int			llm_usage_alert_delivery_attempts = 10;
int			llm_usage_alert_retry_delay = 30;
int			llm_usage_quota_max_tenants = 10000;
static char *llm_usage_source_url_prefixes = NULL;	/* read in SQL (_source_url_allowed) */
char	   *llm_usage_source_window_from = NULL;
char	   *llm_usage_source_window_to = NULL;

static int	llm_usage_alert_throttle = 3600;
static int	llm_usage_event_retention = 13;
static int	llm_usage_history_retention = 90;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

void		_PG_init(void);

static bool
check_schedule(char **newval, void **extra, GucSource source)
{
	CronSpec	spec;
	char	   *error = NULL;

	if (!cron_parse(*newval, &spec, &error))
	{
		GUC_check_errdetail("%c%s.", pg_toupper((unsigned char) error[0]), error + 1);
		GUC_check_errhint("Use five cron fields: minute hour day-of-month month day-of-week, e.g. \"0 9 * * *\", or @daily, @hourly, @weekly, @monthly, @yearly.");
		return false;
	}
	return true;
}

static bool
check_timezone(char **newval, void **extra, GucSource source)
{
	if (pg_tzset(*newval) == NULL)
	{
		GUC_check_errdetail("\"%s\" is not a time zone this server knows.", *newval);
		return false;
	}
	return true;
}

static bool
check_base_url(char **newval, void **extra, GucSource source)
{
	if (strncmp(*newval, "https://", 8) != 0 && strncmp(*newval, "http://", 7) != 0)
	{
		GUC_check_errdetail("The URL must start with https:// (or http:// for a local simulator or proxy).");
		return false;
	}
	if ((*newval)[strlen(*newval) - 1] == '/')
	{
		GUC_check_errdetail("Leave out the trailing slash; request paths start with /v1/.");
		return false;
	}
	return true;
}

static bool
check_optional_url(char **newval, void **extra, GucSource source)
{
	return (*newval)[0] == '\0' || check_base_url(newval, extra, source);
}

static bool
check_smtp_url(char **newval, void **extra, GucSource source)
{
	if ((*newval)[0] != '\0' && strncmp(*newval, "smtp://", 7) != 0 && strncmp(*newval, "smtps://", 8) != 0)
	{
		GUC_check_errdetail("The URL must start with smtp:// or smtps://.");
		return false;
	}
	return true;
}

static void
llm_usage_shmem_request_hook(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	llm_usage_shmem_request();
	quota_shmem_request();
	session_cache_shmem_request();
}

static void
llm_usage_shmem_startup_hook(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	llm_usage_shmem_startup();
	quota_shmem_startup();
	session_cache_shmem_startup();
}

static void
define_settings(void)
{
	/*
	 * Settings the postmaster acts on (the worker's database, shared memory
	 * sizes) can only be defined as PGC_POSTMASTER while the library is
	 * being preloaded; defined later that would be FATAL.  Loaded into a
	 * backend of a server that does not preload it, the SQL API still works
	 * (table counters, no worker), and these settings are read from the
	 * configuration like any reloadable one, with nothing to act on them.
	 */
	GucContext	postmaster = process_shared_preload_libraries_in_progress ? PGC_POSTMASTER : PGC_SIGHUP;

	DefineCustomBoolVariable("llm_usage.audit_quota_denials",
							 "Audits denied enforce_quota() and enforce_quotas() calls as quota_exceeded events.",
							 "Aggregated: one event per tenant and minute at most, with the count of denied calls.",
							 &llm_usage_audit_quota_denials, true,
							 PGC_SUSET, 0, NULL, NULL, NULL);

	DefineCustomStringVariable("llm_usage.database",
							   "Database the llm_usage background worker connects to.",
							   NULL,
							   &llm_usage_database, "postgres",
							   postmaster, 0, NULL, NULL, NULL);

	DefineCustomBoolVariable("llm_usage.enabled",
							 "Whether the llm_usage worker collects provider usage.",
							 NULL,
							 &llm_usage_enabled, true,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);

	DefineCustomStringVariable("llm_usage.master_key_file",
							   "File holding the master key that encrypts stored provider keys.",
							   "256 bits as 64 hex digits or base64, or lines \"version:key\"; owned by the server's OS user, mode 0600.",
							   &llm_usage_master_key_file, "",
							   postmaster, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);

	DefineCustomStringVariable("llm_usage.collect_schedule",
							   "When the worker collects provider usage, as a cron expression.",
							   "Read in llm_usage.timezone.",
							   &llm_usage_collect_schedule, "0 0 * * *",
							   PGC_SIGHUP, 0, check_schedule, NULL, NULL);

	DefineCustomStringVariable("llm_usage.timezone",
							   "Time zone of the collection schedule and of \"the previous day\".",
							   NULL,
							   &llm_usage_timezone, "UTC",
							   PGC_SIGHUP, 0, check_timezone, NULL, NULL);

	DefineCustomStringVariable("llm_usage.openai_base_url",
							   "Where OpenAI requests go (a proxy or a local simulator); superuser only.",
							   NULL,
							   &llm_usage_openai_base_url, "https://api.openai.com",
							   PGC_SUSET, 0, check_base_url, NULL, NULL);

	DefineCustomStringVariable("llm_usage.anthropic_base_url",
							   "Where Anthropic requests go (a proxy or a local simulator); superuser only.",
							   NULL,
							   &llm_usage_anthropic_base_url, "https://api.anthropic.com",
							   PGC_SUSET, 0, check_base_url, NULL, NULL);

	DefineCustomIntVariable("llm_usage.http_timeout_ms",
							"Timeout of one provider request.",
							NULL,
							&llm_usage_http_timeout_ms, 30000, 100, 600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);

	DefineCustomIntVariable("llm_usage.max_retries",
							"Retries of a provider request after 429, 5xx or a timeout.",
							NULL,
							&llm_usage_max_retries, 3, 0, 10,
							PGC_SIGHUP, 0, NULL, NULL, NULL);

	DefineCustomIntVariable("llm_usage.http_max_response_kb",
							"Largest provider response body accepted; a larger one fails the run.",
							NULL,
							&llm_usage_http_max_response_kb, 16384, 16, LLM_USAGE_MAX_RESPONSE_KB,
							PGC_SIGHUP, GUC_UNIT_KB, NULL, NULL, NULL);

	DefineCustomIntVariable("llm_usage.max_pages",
							"Most pages one collection run may fetch (over all its endpoints); more fails the run.",
							"A provider that keeps saying has_more, or repeats a cursor, cannot keep a run going.",
							&llm_usage_max_pages, 1000, 1, 100000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);

	DefineCustomIntVariable("llm_usage.aggregate_interval",
							"How often the worker rolls up usage and checks alerts.",
							NULL,
							&llm_usage_aggregate_interval, 300, 1, 86400,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);

	DefineCustomIntVariable("llm_usage.alert_throttle",
							"An alert of the same kind, tenant and subject is raised at most once per this interval.",
							NULL,
							&llm_usage_alert_throttle, 3600, 0, 30 * 86400,
							PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);

	DefineCustomIntVariable("llm_usage.event_retention",
							"Months of calls kept in usage_events; older monthly partitions are dropped once rolled up.",
							"Roll-ups are kept.  Calls older than this are refused by track_usage().",
							&llm_usage_event_retention, 13, 1, 1200,
							PGC_SIGHUP, 0, NULL, NULL, NULL);

	DefineCustomIntVariable("llm_usage.history_retention",
							"Days finished collector runs and delivered alerts are kept.",
							NULL,
							&llm_usage_history_retention, 90, 1, 36500,
							PGC_SIGHUP, 0, NULL, NULL, NULL);

	/* webhook URLs are often bearer tokens: superusers only may read it */
	DefineCustomStringVariable("llm_usage.alert_webhook_url",
							   "Where the worker POSTs each alert as JSON (empty: no webhook).",
							   "Readable by superusers only: such URLs often carry a token.",
							   &llm_usage_alert_webhook_url, "",
							   PGC_SUSET, GUC_SUPERUSER_ONLY, check_optional_url, NULL, NULL);

	DefineCustomStringVariable("llm_usage.alert_webhook_secret",
							   "Key of the HMAC-SHA256 signature in the X-LLM-Usage-Signature header of alert webhooks.",
							   NULL,
							   &llm_usage_alert_webhook_secret, "",
							   PGC_SUSET, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);

	/* SMTP URLs carry the mail account's password: superusers only */
	DefineCustomStringVariable("llm_usage.alert_smtp_url",
							   "SMTP server alerts are mailed through, e.g. smtp://mail.example.com:587 (empty: no e-mail).",
							   "Readable by superusers only: the URL may carry the account's password.",
							   &llm_usage_alert_smtp_url, "",
							   PGC_SUSET, GUC_SUPERUSER_ONLY, check_smtp_url, NULL, NULL);

	DefineCustomIntVariable("llm_usage.alert_delivery_attempts",
							"Attempts to deliver an alert by webhook or e-mail before it is recorded as failed.",
							"Attempts after the first wait llm_usage.alert_retry_delay, doubling each time, in later worker cycles.",
							&llm_usage_alert_delivery_attempts, 10, 1, 100,
							PGC_SIGHUP, 0, NULL, NULL, NULL);

	DefineCustomIntVariable("llm_usage.alert_retry_delay",
							"Wait before the second attempt to deliver an alert; it doubles with each further attempt, up to an hour.",
							NULL,
							&llm_usage_alert_retry_delay, 30, 1, 86400,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);

	DefineCustomStringVariable("llm_usage.alert_email_from",
							   "Sender address of alert e-mails.",
							   NULL,
							   &llm_usage_alert_email_from, "llm_usage@localhost",
							   PGC_SUSET, 0, NULL, NULL, NULL);

	DefineCustomStringVariable("llm_usage.alert_email_to",
							   "Recipients of alert e-mails, comma-separated.",
							   NULL,
							   &llm_usage_alert_email_to, "",
							   PGC_SUSET, 0, NULL, NULL, NULL);

	DefineCustomIntVariable("llm_usage.quota_max_tenants",
							"Tenants whose quota counters are kept in shared memory (further ones are counted in a table).",
							NULL,
							&llm_usage_quota_max_tenants, 10000, 100, 10000000,
							postmaster, 0, NULL, NULL, NULL);

	DefineCustomIntVariable("llm_usage.quota_save_interval",
							"How often the shared quota counters are saved to disk; a crash loses at most this much consumption.",
							NULL,
							&llm_usage_quota_save_interval, 1000, 10, 60000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);

	DefineCustomIntVariable("llm_usage.max_reservations",
							"Open quota reservations (enforce_quota with a request_id, not yet settled by track_usage) kept in shared memory.",
							NULL,
							&llm_usage_max_reservations, 10000, 100, 10000000,
							postmaster, 0, NULL, NULL, NULL);

	DefineCustomIntVariable("llm_usage.max_reservations_per_tenant",
							"Open quota reservations one tenant may hold in shared memory.",
							"So that one tenant that never settles cannot take every reservation from the others; more fail with 53400.",
							&llm_usage_max_reservations_per_tenant, 2500, 1, 10000000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);

	DefineCustomIntVariable("llm_usage.reservation_ttl",
							"How long a quota reservation waits for track_usage to settle it; after that it stays counted as used.",
							NULL,
							&llm_usage_reservation_ttl, 900, 1, 7 * 86400,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);

	DefineCustomStringVariable("llm_usage.source_url_prefixes",
							   "URL prefixes (comma-separated) that custom usage sources may be registered and fetched under.",
							   "Empty: no custom source may be used.  The worker runs as a superuser, so only a superuser decides which addresses it may be sent to.",
							   &llm_usage_source_url_prefixes, "",
							   PGC_SUSET, 0, NULL, NULL, NULL);

	DefineCustomIntVariable("llm_usage.mapping_timeout",
							"How long a custom source's mapping function may take for one page.",
							"The worker serves every tenant: a mapping function that takes longer is cancelled and its run fails.",
							&llm_usage_mapping_timeout_ms, 60000, 100, 3600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);

	DefineCustomStringVariable("llm_usage.source_window_from",
							   "Start of the window (RFC 3339, UTC) a custom source's mapping function is called for; empty outside.",
							   "Set by the collector around each call; set it yourself to try a mapping function.",
							   &llm_usage_source_window_from, "",
							   PGC_USERSET, GUC_NOT_IN_SAMPLE | GUC_NO_SHOW_ALL, NULL, NULL, NULL);

	DefineCustomStringVariable("llm_usage.source_window_to",
							   "End of the window (RFC 3339, UTC, exclusive) a custom source's mapping function is called for; empty outside.",
							   "Set by the collector around each call; set it yourself to try a mapping function.",
							   &llm_usage_source_window_to, "",
							   PGC_USERSET, GUC_NOT_IN_SAMPLE | GUC_NO_SHOW_ALL, NULL, NULL, NULL);

	MarkGUCPrefixReserved("llm_usage");
}

static void
register_worker(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "llm_usage");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "llm_usage_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "llm_usage collector");
	snprintf(worker.bgw_type, BGW_MAXLEN, "llm_usage collector");
	RegisterBackgroundWorker(&worker);

	/* the quota saver: no database, starts with the postmaster */
	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS;
	worker.bgw_start_time = BgWorkerStart_PostmasterStart;
	worker.bgw_restart_time = 1;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "llm_usage");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "llm_usage_quota_saver_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "llm_usage quota saver");
	snprintf(worker.bgw_type, BGW_MAXLEN, "llm_usage quota saver");
	RegisterBackgroundWorker(&worker);
}

/*
 * _PG_init
 *		Define the settings; when preloaded, also request shared memory,
 *		check the master key file and register the worker.
 */
void
_PG_init(void)
{
	define_settings();

	if (!process_shared_preload_libraries_in_progress)
		return;

	llm_usage_preloaded = true;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = llm_usage_shmem_request_hook;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = llm_usage_shmem_startup_hook;

	quota_shmem_install_hooks();
	llm_usage_check_master_key_file();
	register_worker();
}
