/*-------------------------------------------------------------------------
 *
 * worker_tx.c
 *	  The worker's session settings, its short transactions, and its exit
 *	  when the postmaster has died.  Used by worker.c, collector.c and
 *	  delivery.c (and the exit check by http.c, whose waits run in the worker
 *	  and in backends).
 *
 * Session settings: the worker is a superuser session in a database whose
 * owner need not be a superuser, and who may ALTER DATABASE ... SET any
 * user-settable parameter, which the worker's session takes on when it
 * connects.  Some would switch the worker off (every write refused, every
 * lock wait or statement cut short, an error made FATAL, the session made
 * another role) or change what its SQL means (search_path, string
 * literals, NULL comparisons, where tables go); llm_usage_pin_worker_settings()
 * sets them back with the highest priority (PGC_S_OVERRIDE, which
 * SET, ALTER DATABASE/ROLE and a reload cannot beat): fixed values where
 * the worker needs one, else the server's own value (postgresql.conf,
 * ALTER SYSTEM), as it was before the database's settings were applied.
 *
 * A worker transaction is: start, SPI, a snapshot, the statements, commit;
 * worker_tx_commit() returns to the memory context that was current at
 * worker_tx_begin(), so nothing the caller allocates afterwards lands in
 * TopMemoryContext (where CommitTransactionCommand leaves it) and survives
 * the worker's per-cycle reset.
 *
 * Postmaster death: an orphaned worker must not commit anything further,
 * and must not hold shared memory, which keeps a restarted postmaster from
 * starting.  Every transaction start and every commit checks first and
 * exits at once (as WL_EXIT_ON_PM_DEATH does); waits on the network check
 * through llm_usage_exit_if_orphaned() too.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/pmsignal.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "llm_usage.h"

typedef struct PinnedSetting
{
	const char *name;
	const char *value;
} PinnedSetting;

/* values the worker needs whatever anyone set, and why */
static const PinnedSetting fixed_settings[] = {
	/* no name of the database owner's found before the system's */
	{"search_path", "pg_catalog, pg_temp"},
	/* on: every write, so every run, alert and maintenance step, fails */
	{"default_transaction_read_only", "off"},
	/* serializable or repeatable read: claims and upserts fail or see stale rows */
	{"default_transaction_isolation", "read committed"},
	{"default_transaction_deferrable", "off"},
	/* a short timeout ends statements, lock waits, or the session itself */
	{"statement_timeout", "0"},
	{"lock_timeout", "0"},
	{"idle_in_transaction_session_timeout", "0"},
	{"idle_session_timeout", "0"},
	/* on: every error the worker catches and records would end the process */
	{"exit_on_error", "off"},
	/* the worker's SQL runs as the bootstrap superuser, not as the owner */
	{"role", "none"},
	/* replica: triggers (partitions, audit protection) would not fire */
	{"session_replication_role", "origin"},
	/* what the SQL text of the extension means */
	{"standard_conforming_strings", "on"},
	{"transform_null_equals", "off"},
	{"array_nulls", "on"},
	{"check_function_bodies", "on"},
	{"row_security", "on"},
	/* partitions made by maintenance: an absent tablespace or access method fails them */
	{"default_tablespace", ""},
	{"temp_tablespaces", ""},
	{"default_table_access_method", "heap"},
	/* stricter PL/pgSQL checks would fail the extension's functions */
	{"plpgsql.extra_errors", "none"},
	{"plpgsql.extra_warnings", "none"},
};

/* values the server chose that the database may not change for the worker */
static const char *const server_settings[] = {
	"TimeZone", "DateStyle", "IntervalStyle", "extra_float_digits", "bytea_output",
	"lc_monetary", "lc_numeric", "lc_time", "synchronous_commit", "default_toast_compression",
	"work_mem", "maintenance_work_mem", "temp_buffers", "jit",
};

static char *server_values[lengthof(server_settings)];

/*
 * llm_usage_capture_server_settings
 *		Remember the server's values of server_settings; call before
 *		connecting to a database (whose settings are applied then).
 */
void
llm_usage_capture_server_settings(void)
{
	for (int i = 0; i < lengthof(server_settings); i++)
	{
		const char *v = GetConfigOption(server_settings[i], true, false);

		server_values[i] = v ? MemoryContextStrdup(TopMemoryContext, v) : NULL;
	}
}

/*
 * llm_usage_pin_worker_settings
 *		Right after connecting (no transaction open, or one just started by
 *		the caller): set fixed_settings and the captured server_settings with
 *		PGC_S_OVERRIDE, above any database, role or session setting.
 */
void
llm_usage_pin_worker_settings(void)
{
	for (int i = 0; i < lengthof(fixed_settings); i++)
		SetConfigOption(fixed_settings[i].name, fixed_settings[i].value, PGC_SUSET, PGC_S_OVERRIDE);
	for (int i = 0; i < lengthof(server_settings); i++)
	{
		if (server_values[i] != NULL)
			SetConfigOption(server_settings[i], server_values[i], PGC_SUSET, PGC_S_OVERRIDE);
	}
}

/*
 * llm_usage_exit_if_orphaned
 *		End the process at once when the postmaster is gone.  Cheap (a flag
 *		set by a signal on Linux).  Secrets are wiped by secret.c's exit
 *		callback; an open transaction is never committed.
 */
void
llm_usage_exit_if_orphaned(void)
{
	if (!PostmasterIsAlive())
		proc_exit(1);
}

/*
 * worker_tx_begin
 *		Start a transaction with SPI connected and a snapshot pushed, report
 *		activity; returns the caller's memory context for worker_tx_commit.
 *		Expects no transaction to be open.
 */
MemoryContext
worker_tx_begin(const char *activity)
{
	MemoryContext caller = CurrentMemoryContext;

	llm_usage_exit_if_orphaned();
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
	return caller;
}

/*
 * worker_tx_commit
 *		Commit what worker_tx_begin started (unless the postmaster died in
 *		between: then exit without committing), and switch back to caller.
 */
void
worker_tx_commit(MemoryContext caller)
{
	SPI_finish();
	PopActiveSnapshot();
	llm_usage_exit_if_orphaned();
	CommitTransactionCommand();
	MemoryContextSwitchTo(caller);
	pgstat_report_activity(STATE_IDLE, NULL);
	/* let the cumulative statistics (and so autovacuum) see the writes */
	(void) pgstat_report_stat(false);
}

/*
 * worker_tx_abort
 *		After a caught error: roll back whatever is open and switch back to
 *		caller.  The error state must have been flushed (or copied) first.
 */
void
worker_tx_abort(MemoryContext caller)
{
	AbortOutOfAnyTransaction();
	MemoryContextSwitchTo(caller);
	pgstat_report_activity(STATE_IDLE, NULL);
}
