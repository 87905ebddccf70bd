/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The llm_usage collector: a background worker that wakes on
 *	  llm_usage.collect_schedule (read in llm_usage.timezone), whenever
 *	  collect_now() sets its latch, when an alert delivery is due again and
 *	  every llm_usage.aggregate_interval for maintenance.
 *
 * A cycle does, each step isolated from the others (an error is logged and
 * the next step runs):
 *	1. queue the scheduled runs when the schedule has fired;
 *	2. carry out one queued run (collector.c);
 *	3. one pass of alert deliveries, bounded in time (delivery.c);
 *	4. maintenance when due (roll-ups, alerts, partitions, retention).
 * While runs are queued or deliveries are due, the next cycle follows at
 * once, so collection and delivery take turns and neither starves the
 * other or maintenance.
 *
 * Signals: SIGTERM is PostgreSQL's die() (the worker exits at the next
 * CHECK_FOR_INTERRUPTS, also between retries and inside a transfer);
 * SIGHUP reloads the settings and recomputes the schedule.  When the
 * postmaster dies the worker exits within a fraction of a second wherever
 * it is (waits on the network included) and commits nothing further
 * (worker_tx.c, http.c).  A crash makes the postmaster restart the worker
 * after 5 seconds; on start it marks the runs a crash left "running" as
 * failed.
 *
 * The worker's session is a superuser's, in a database whose owner may
 * not be: before any SQL it pins search_path to pg_catalog, pg_temp and
 * the settings that would switch it off (read-only transactions, timeouts,
 * exit_on_error, ...: worker_tx.c) over any ALTER DATABASE ... SET, and
 * all its SQL (here,
 * collector.c, delivery.c) names functions, types and operators with
 * their schema.
 *
 * Memory: one context per cycle, reset every time round; transaction
 * commits return to it (worker_tx.c).  The cumulative statistics are
 * reported after each transaction and before each sleep, so autovacuum
 * sees what the worker writes.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "llm_usage.h"

#define IDLE_WAKE_MS 60000

/*
 * run one statement in its own transaction; *result gets the first column
 * of the first row as a boolean (false when NULL or no row)
 */
static void
run_sql(const char *sql, const char *activity, bool *result)
{
	MemoryContext caller = worker_tx_begin(activity);

	if (SPI_execute(sql, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "llm_usage worker: \"%s\" failed", sql);
	if (result != NULL)
	{
		bool		isnull = true;
		Datum		d = (Datum) 0;

		if (SPI_processed > 0)
			d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		*result = !isnull && DatumGetBool(d);
	}
	worker_tx_commit(caller);
}

static bool
extension_ready(void)
{
	bool		ready = false;

	run_sql("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension"
			" WHERE extname OPERATOR(pg_catalog.=) 'llm_usage')",
			"llm_usage: looking for the extension", &ready);
	return ready;
}

/* does this version of the extension have what this library's collector writes with? */
static bool
collection_ready(void)
{
	bool		ready = false;

	run_sql("SELECT pg_catalog.to_regprocedure('llm_usage._ingest_rows(bigint,text,jsonb)') IS NOT NULL",
			"llm_usage: looking for the collection functions", &ready);
	return ready;
}

static TimestampTz
next_fire(TimestampTz after)
{
	CronSpec	spec;
	char	   *error = NULL;
	pg_tz	   *tz = pg_tzset(llm_usage_timezone);

	if (tz == NULL || !cron_parse(llm_usage_collect_schedule, &spec, &error))
		return DT_NOEND;		/* the GUC check hooks make this unreachable */
	return cron_next(&spec, after, tz);
}

/* log an error caught in a step, and roll back whatever it left open */
static void
step_failed(MemoryContext cycle_ctx)
{
	EmitErrorReport();
	FlushErrorState();
	worker_tx_abort(cycle_ctx);
}

/*
 * collect: queue scheduled runs when due, then carry out one queued run.
 * Returns whether a run was carried out (there may be more).
 */
static bool
collect(TimestampTz *fire_at, bool *announced_update)
{
	MemoryContext cycle_ctx = CurrentMemoryContext;
	volatile bool ran = false;

	PG_TRY();
	{
		TimestampTz now = GetCurrentTimestamp();

		/* after DROP EXTENSION, idle until it is back */
		if (extension_ready())
		{
			if (!collection_ready())
			{
				if (!*announced_update)
					ereport(LOG,
							(errmsg("llm_usage collector: the extension in database \"%s\" is older than this library; runs stay queued",
									llm_usage_database),
							 errhint("Run ALTER EXTENSION llm_usage UPDATE there.")));
				*announced_update = true;
			}
			else
			{
				*announced_update = false;
				if (now >= *fire_at)
				{
					run_sql("SELECT llm_usage._queue_scheduled_runs() IS NOT NULL",
							"llm_usage: queueing scheduled runs", NULL);
					*fire_at = next_fire(now);
				}
				ran = collector_run_next();
			}
		}
	}
	PG_CATCH();
	{
		step_failed(cycle_ctx);
	}
	PG_END_TRY();
	return ran;
}

/*
 * maintenance: roll up and check alerts (llm_usage._maintenance(), from
 * extension version 1.1 on) in one transaction; a failure is logged and
 * raised as a maintenance_failed alert in a transaction of its own.
 */
static void
maintenance(void)
{
	MemoryContext cycle_ctx = CurrentMemoryContext;
	char	   *volatile failure = NULL;

	PG_TRY();
	{
		bool		available = false;

		run_sql("SELECT pg_catalog.to_regproc('llm_usage._maintenance') IS NOT NULL",
				"llm_usage: looking for maintenance", &available);
		if (available)
			run_sql("SELECT llm_usage._maintenance() IS NOT NULL",
					"llm_usage: rolling up usage and checking alerts", NULL);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cycle_ctx);
		edata = CopyErrorData();
		FlushErrorState();
		worker_tx_abort(cycle_ctx);
		failure = edata->message;
	}
	PG_END_TRY();

	if (failure == NULL)
		return;
	ereport(LOG, (errmsg("llm_usage: maintenance failed: %s", failure)));
	PG_TRY();
	{
		MemoryContext caller = worker_tx_begin("llm_usage: recording a maintenance failure");
		Oid			types[2] = {TEXTOID, TEXTOID};
		Datum		args[2];

		args[0] = CStringGetTextDatum(psprintf("roll-up or alert check failed: %s", failure));
		args[1] = CStringGetTextDatum(failure);
		if (SPI_execute_with_args("SELECT llm_usage._raise_alert('*', 'maintenance_failed', 'error', $1,"
								  " pg_catalog.jsonb_build_object('error', $2), 'maintenance') IS NOT NULL",
								  2, types, args, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "recording a maintenance failure failed");
		worker_tx_commit(caller);
	}
	PG_CATCH();
	{
		step_failed(cycle_ctx);
	}
	PG_END_TRY();
}

/*
 * deliver: one bounded pass of alert deliveries (extension 1.3 on: retries
 * across cycles).  Returns when a delivery is next due; *more when due
 * deliveries were left for the next cycle.
 */
static TimestampTz
deliver(bool *more)
{
	MemoryContext cycle_ctx = CurrentMemoryContext;
	volatile TimestampTz next_due = DT_NOEND;

	*more = false;
	PG_TRY();
	{
		bool		available = false;

		run_sql("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute"
				" WHERE attrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass('llm_usage.alerts')"
				" AND attname OPERATOR(pg_catalog.=) 'webhook_next_at')",
				"llm_usage: looking for alert delivery", &available);
		if (available)
			next_due = delivery_run(DT_NOEND, more);
	}
	PG_CATCH();
	{
		step_failed(cycle_ctx);
	}
	PG_END_TRY();
	return next_due;
}

/* milliseconds from now until t, within [0, cap] */
static long
ms_until(TimestampTz now, TimestampTz t, long cap)
{
	if (t == DT_NOEND)
		return cap;
	if (t <= now)
		return 0;
	return (long) Min((TimestampTz) cap, (t - now) / 1000);
}

/*
 * llm_usage_worker_main
 *		Entry point of the collector worker.
 */
void
llm_usage_worker_main(Datum main_arg)
{
	MemoryContext cycle_ctx;
	TimestampTz fire_at;
	TimestampTz maintain_at;
	bool		announced_missing = false;
	bool		announced_update = false;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	llm_usage_capture_server_settings();
	BackgroundWorkerInitializeConnection(llm_usage_database, NULL, 0);

	/*
	 * A superuser session in a database someone else may own: none of its
	 * settings may switch the worker off or change what its SQL means
	 * (search_path, read-only transactions, timeouts, ...: worker_tx.c).
	 */
	llm_usage_pin_worker_settings();

	pgstat_report_appname("llm_usage collector");
	llm_usage_shmem_publish_worker();

	cycle_ctx = AllocSetContextCreate(TopMemoryContext, "llm_usage worker cycle", ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(cycle_ctx);

	/* wait for the extension to exist in llm_usage.database */
	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (extension_ready())
			break;
		if (!announced_missing)
			ereport(LOG,
					(errmsg("llm_usage collector: extension llm_usage is not installed in database \"%s\"; waiting",
							llm_usage_database)));
		announced_missing = true;
		MemoryContextReset(cycle_ctx);
		(void) pgstat_report_stat(true);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10000, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}

	run_sql("SELECT llm_usage._recover_interrupted_runs() IS NOT NULL",
			"llm_usage: failing runs left by a crash", NULL);
	ereport(LOG,
			(errmsg("llm_usage collector started in database \"%s\", schedule \"%s\" in %s",
					llm_usage_database, llm_usage_collect_schedule, llm_usage_timezone)));
	fire_at = next_fire(GetCurrentTimestamp());
	maintain_at = GetCurrentTimestamp();
	MemoryContextReset(cycle_ctx);

	for (;;)
	{
		long		timeout = IDLE_WAKE_MS;
		TimestampTz now;
		TimestampTz next_delivery = DT_NOEND;
		bool		busy = false;

		CHECK_FOR_INTERRUPTS();
		llm_usage_exit_if_orphaned();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			fire_at = next_fire(GetCurrentTimestamp());
			/* a shorter llm_usage.aggregate_interval applies at once */
			maintain_at = Min(maintain_at,
							  TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														  (int64) llm_usage_aggregate_interval * 1000));
		}

		if (llm_usage_enabled)
		{
			bool		more_deliveries = false;

			busy = collect(&fire_at, &announced_update);
			next_delivery = deliver(&more_deliveries);
			busy |= more_deliveries;
			if (GetCurrentTimestamp() >= maintain_at)
			{
				maintenance();
				maintain_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														  (int64) llm_usage_aggregate_interval * 1000);
			}
			MemoryContextSwitchTo(cycle_ctx);
			MemoryContextReset(cycle_ctx);
		}
		(void) pgstat_report_stat(true);

		now = GetCurrentTimestamp();
		if (busy)
			timeout = 0;
		else if (llm_usage_enabled)
		{
			timeout = ms_until(now, fire_at, timeout);
			timeout = ms_until(now, maintain_at, timeout);
			timeout = ms_until(now, next_delivery, timeout);
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
