/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The llm_usage collector: a background worker that wakes on
 *	  llm_usage.collect_schedule (read in llm_usage.timezone) and whenever
 *	  collect_now() sets its latch, and carries out the queued runs one by
 *	  one, each isolated from the others.
 *
 * Signals: SIGTERM is PostgreSQL's die() (the worker exits at the next
 * CHECK_FOR_INTERRUPTS, also between retries and inside a transfer);
 * SIGHUP reloads the settings and recomputes the schedule.  A crash makes
 * the postmaster restart the worker after 5 seconds; on start it marks the
 * runs a crash left "running" as failed.  Memory is one context per cycle,
 * reset every time round.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
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
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "llm_usage.h"

#define MAX_RUNS_PER_CYCLE 1000
#define IDLE_WAKE_MS 60000

/* run one SQL statement in its own transaction; returns the first column of the first row */
static bool
run_sql(const char *sql, const char *activity, bool *result)
{
	bool		found = false;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
	if (SPI_execute(sql, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "llm_usage worker: \"%s\" failed", sql);
	if (SPI_processed > 0 && result != NULL)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		*result = !isnull && DatumGetBool(d);
		found = true;
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	return found;
}

static bool
extension_ready(void)
{
	bool		ready = false;

	run_sql("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'llm_usage')",
			"llm_usage: looking for the extension", &ready);
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

/*
 * one_cycle: queue scheduled runs when due, then carry out queued runs.
 * Errors that escape (claiming or recording a run) are logged and end the
 * cycle; the next cycle tries again.
 */
static void
one_cycle(TimestampTz *fire_at)
{
	PG_TRY();
	{
		TimestampTz now = GetCurrentTimestamp();

		/* after DROP EXTENSION, idle until it is back */
		if (extension_ready())
		{
			if (now >= *fire_at)
			{
				run_sql("SELECT llm_usage._queue_scheduled_runs() IS NOT NULL",
						"llm_usage: queueing scheduled runs", NULL);
				*fire_at = next_fire(now);
			}
			for (int i = 0; i < MAX_RUNS_PER_CYCLE; i++)
			{
				CHECK_FOR_INTERRUPTS();
				if (ConfigReloadPending)
					break;
				if (!collector_run_next())
					break;
			}
		}
	}
	PG_CATCH();
	{
		EmitErrorReport();
		FlushErrorState();
		AbortOutOfAnyTransaction();
	}
	PG_END_TRY();
}

/*
 * maintenance: roll up and check alerts (llm_usage._maintenance(), from
 * extension version 1.1 on) in one transaction; a failure is logged and
 * raised as a maintenance_failed alert in a transaction of its own.
 */
static void
maintenance(void)
{
	bool		available = false;
	char	   *failure = NULL;
	MemoryContext ctx = CurrentMemoryContext;

	PG_TRY();
	{
		run_sql("SELECT to_regproc('llm_usage._maintenance') IS NOT NULL",
				"llm_usage: looking for maintenance", &available);
		if (available)
			run_sql("SELECT llm_usage._maintenance() IS NOT NULL",
					"llm_usage: rolling up usage and checking alerts", NULL);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(ctx);
		edata = CopyErrorData();
		FlushErrorState();
		AbortOutOfAnyTransaction();
		failure = edata->message;
	}
	PG_END_TRY();

	if (failure == NULL)
		return;
	ereport(LOG, (errmsg("llm_usage: maintenance failed: %s", failure)));
	PG_TRY();
	{
		StringInfoData sql;

		initStringInfo(&sql);
		appendStringInfo(&sql,
						 "SELECT llm_usage._raise_alert('*', 'maintenance_failed', 'error', "
						 "'roll-up or alert check failed: ' || %s, jsonb_build_object('error', %s::text), 'maintenance') IS NOT NULL",
						 quote_literal_cstr(failure), quote_literal_cstr(failure));
		run_sql(sql.data, "llm_usage: recording a maintenance failure", NULL);
	}
	PG_CATCH();
	{
		EmitErrorReport();
		FlushErrorState();
		AbortOutOfAnyTransaction();
	}
	PG_END_TRY();
}

/* deliver pending alerts (extension 1.1 on); errors are logged, delivery retried next cycle */
static void
deliver(void)
{
	bool		available = false;

	PG_TRY();
	{
		run_sql("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute"
				" WHERE attrelid = to_regclass('llm_usage.alerts') AND attname = 'webhook_status')",
				"llm_usage: looking for alert delivery", &available);
		if (available)
			(void) delivery_run();
	}
	PG_CATCH();
	{
		EmitErrorReport();
		FlushErrorState();
		AbortOutOfAnyTransaction();
	}
	PG_END_TRY();
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

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(llm_usage_database, NULL, 0);
	pgstat_report_appname("llm_usage collector");
	llm_usage_shmem_publish_worker();

	cycle_ctx = AllocSetContextCreate(TopMemoryContext, "llm_usage worker cycle", ALLOCSET_DEFAULT_SIZES);

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

	for (;;)
	{
		long		timeout;
		TimestampTz now;

		CHECK_FOR_INTERRUPTS();
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
			MemoryContext old = MemoryContextSwitchTo(cycle_ctx);

			one_cycle(&fire_at);
			deliver();
			if (GetCurrentTimestamp() >= maintain_at)
			{
				maintenance();
				maintain_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														  (int64) llm_usage_aggregate_interval * 1000);
			}
			MemoryContextSwitchTo(old);
			MemoryContextReset(cycle_ctx);
		}

		now = GetCurrentTimestamp();
		timeout = IDLE_WAKE_MS;
		if (llm_usage_enabled && fire_at != DT_NOEND)
			timeout = Max(0, Min(timeout, (long) ((fire_at - now) / 1000)));
		if (llm_usage_enabled)
			timeout = Max(0, Min(timeout, (long) ((maintain_at - now) / 1000)));
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
