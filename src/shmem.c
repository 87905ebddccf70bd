/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  Where the collector worker's latch is, so that collect_now() can
 *	  wake it.  (The quota counters and the session caches' generations
 *	  have shared state of their own: quota_shmem.c, session_cache.c.)
 *
 * Locking: LlmUsageShared.mutex (a spinlock) protects worker_latch and
 * worker_pid; it is held only to copy a pointer.  The worker publishes its
 * latch at start and clears it on exit.  A backend that called
 * collect_now() sets the latch when its transaction commits, so the worker
 * sees the queued runs on its first look.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "fmgr.h"

#include "llm_usage.h"

typedef struct LlmUsageShared
{
	slock_t		mutex;
	Latch	   *worker_latch;
	pid_t		worker_pid;
} LlmUsageShared;

static LlmUsageShared *shared = NULL;

/* backend-local: wake the worker when this transaction commits */
static bool wake_at_commit = false;
static bool xact_callback_registered = false;

PG_FUNCTION_INFO_V1(llm_usage_wake_worker);
PG_FUNCTION_INFO_V1(llm_usage_worker_pid);

void
llm_usage_shmem_request(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(LlmUsageShared)));
}

void
llm_usage_shmem_startup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("llm_usage", sizeof(LlmUsageShared), &found);
	if (!found)
	{
		SpinLockInit(&shared->mutex);
		shared->worker_latch = NULL;
		shared->worker_pid = 0;
	}
	LWLockRelease(AddinShmemInitLock);
}

static void
worker_exit(int code, Datum arg)
{
	SpinLockAcquire(&shared->mutex);
	shared->worker_latch = NULL;
	shared->worker_pid = 0;
	SpinLockRelease(&shared->mutex);
}

/*
 * llm_usage_shmem_publish_worker
 *		Called by the worker at start: make its latch findable.
 */
void
llm_usage_shmem_publish_worker(void)
{
	SpinLockAcquire(&shared->mutex);
	shared->worker_latch = &MyProc->procLatch;
	shared->worker_pid = MyProcPid;
	SpinLockRelease(&shared->mutex);
	on_shmem_exit(worker_exit, (Datum) 0);
}

/*
 * llm_usage_wake_worker_now
 *		Set the worker's latch; false when no worker is running.
 */
bool
llm_usage_wake_worker_now(void)
{
	Latch	   *latch;

	if (shared == NULL)
		return false;
	SpinLockAcquire(&shared->mutex);
	latch = shared->worker_latch;
	SpinLockRelease(&shared->mutex);
	if (latch == NULL)
		return false;
	SetLatch(latch);
	return true;
}

static void
wake_xact_callback(XactEvent event, void *arg)
{
	if (!wake_at_commit)
		return;
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT)
		llm_usage_wake_worker_now();
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT ||
		event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		wake_at_commit = false;
}

static void
require_preloaded(void)
{
	if (shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("llm_usage is not loaded through shared_preload_libraries"),
				 errhint("Add llm_usage to shared_preload_libraries in postgresql.conf and restart the server; the collector worker needs it.")));
}

/*
 * llm_usage._wake_worker() RETURNS boolean
 *		Ask for the worker to be woken when the calling transaction commits;
 *		returns whether a worker is running now.
 */
Datum
llm_usage_wake_worker(PG_FUNCTION_ARGS)
{
	pid_t		pid;

	require_preloaded();
	if (!xact_callback_registered)
	{
		RegisterXactCallback(wake_xact_callback, NULL);
		xact_callback_registered = true;
	}
	wake_at_commit = true;
	SpinLockAcquire(&shared->mutex);
	pid = shared->worker_pid;
	SpinLockRelease(&shared->mutex);
	PG_RETURN_BOOL(pid != 0);
}

/*
 * llm_usage._worker_pid() RETURNS integer
 *		The collector worker's process id, NULL when none is running.
 */
Datum
llm_usage_worker_pid(PG_FUNCTION_ARGS)
{
	pid_t		pid;

	if (shared == NULL)
		PG_RETURN_NULL();
	SpinLockAcquire(&shared->mutex);
	pid = shared->worker_pid;
	SpinLockRelease(&shared->mutex);
	if (pid == 0)
		PG_RETURN_NULL();
	PG_RETURN_INT32((int32) pid);
}
