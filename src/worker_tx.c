/*-------------------------------------------------------------------------
 *
 * worker_tx.c
 *	  The worker's short transactions, and its exit when the postmaster has
 *	  died.  Used by worker.c, collector.c and delivery.c (and the exit check
 *	  by http.c, whose waits run in the worker and in backends).
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
#include "utils/snapmgr.h"

#include "llm_usage.h"

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
