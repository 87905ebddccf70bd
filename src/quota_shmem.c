/*-------------------------------------------------------------------------
 *
 * quota_shmem.c
 *	  Quota counters of the current periods in shared memory, and their
 *	  durable copy on disk.
 *
 * One QuotaEntry per (database, tenants table, tenant) holds a slot per
 * quota type and period: the start of the period the slot counts and what
 * was consumed in it, in millionths of the quota's unit.
 *
 * Locking:
 *	- quota_state->lock (an LWLock) protects the hash table's structure:
 *	  LW_SHARED to look an entry up, LW_EXCLUSIVE to add one.  Entries are
 *	  never removed while the server runs, so a pointer to an entry stays
 *	  valid without the lock; backends keep such pointers in their caches.
 *	- entry->mutex (a spinlock) protects the entry's slots and dirty flag.
 *	  It is held only to read or change them: no allocation, no error, no
 *	  other lock while it is held.  All slots of a tenant share it, so
 *	  consuming several quotas at once is atomic.
 *
 * Durability: the "llm_usage quota saver" worker writes every entry to
 * pg_stat/llm_usage_quota.stat (write to a temporary file, fsync, rename)
 * every llm_usage.quota_save_interval when anything changed, and once more
 * when it stops; the postmaster writes it a last time at a clean shutdown.
 * The file is read back when shared memory is created, at start-up and
 * after a crash.  A crash therefore loses at most the consumption since
 * the last save; a clean shutdown loses nothing.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"

#include "llm_usage.h"
#include "quota.h"

#define QUOTA_FILE			"pg_stat/llm_usage_quota.stat"
#define QUOTA_FILE_TMP		QUOTA_FILE ".tmp"
#define QUOTA_FILE_MAGIC	0x4c4c4d51	/* "LLMQ" */
#define QUOTA_FILE_VERSION	1

typedef struct QuotaState
{
	LWLock	   *lock;			/* protects the hash table's structure */
	pg_atomic_uint64 changes;	/* bumped by every consumption */
	pg_atomic_uint64 saved_changes; /* value of changes at the last save */
	bool		full_warned;
} QuotaState;

int			llm_usage_quota_max_tenants = 10000;
int			llm_usage_quota_save_interval = 1000;

static QuotaState *quota_state = NULL;
static HTAB *quota_hash = NULL;

static void quota_save_at_exit(int code, Datum arg);
static void quota_load(void);

Size
quota_shmem_size(void)
{
	return add_size(MAXALIGN(sizeof(QuotaState)),
					hash_estimate_size(llm_usage_quota_max_tenants, sizeof(QuotaEntry)));
}

void
quota_shmem_request(void)
{
	RequestAddinShmemSpace(quota_shmem_size());
	RequestNamedLWLockTranche("llm_usage_quota", 1);
}

/*
 * quota_shmem_startup
 *		Create or attach the counters; the process that creates them (the
 *		postmaster) reads the saved file and arranges the last save.
 */
void
quota_shmem_startup(void)
{
	bool		found;
	HASHCTL		info;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	quota_state = ShmemInitStruct("llm_usage quota state", sizeof(QuotaState), &found);
	if (!found)
	{
		quota_state->lock = &(GetNamedLWLockTranche("llm_usage_quota"))->lock;
		pg_atomic_init_u64(&quota_state->changes, 0);
		pg_atomic_init_u64(&quota_state->saved_changes, 0);
		quota_state->full_warned = false;
	}
	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(QuotaKey);
	info.entrysize = sizeof(QuotaEntry);
	quota_hash = ShmemInitHash("llm_usage quota counters",
							   llm_usage_quota_max_tenants, llm_usage_quota_max_tenants,
							   &info, HASH_ELEM | HASH_BLOBS);
	LWLockRelease(AddinShmemInitLock);

	if (!IsUnderPostmaster)
		on_shmem_exit(quota_save_at_exit, (Datum) 0);
	if (!found)
		quota_load();
}

bool
quota_shmem_ready(void)
{
	return quota_hash != NULL;
}

/* the entry of a tenant, NULL if it has none */
QuotaEntry *
quota_lookup(const QuotaKey *key)
{
	QuotaEntry *e;

	LWLockAcquire(quota_state->lock, LW_SHARED);
	e = hash_search(quota_hash, key, HASH_FIND, NULL);
	LWLockRelease(quota_state->lock);
	return e;
}

/*
 * quota_entry
 *		The entry of a tenant, created (all slots empty, *created set) if
 *		missing; NULL when the table is full (llm_usage.quota_max_tenants).
 */
QuotaEntry *
quota_entry(const QuotaKey *key, bool *created)
{
	QuotaEntry *e;
	bool		found;

	*created = false;
	e = quota_lookup(key);
	if (e != NULL)
		return e;

	LWLockAcquire(quota_state->lock, LW_EXCLUSIVE);
	e = hash_search(quota_hash, key, HASH_ENTER_NULL, &found);
	if (e != NULL && !found)
	{
		SpinLockInit(&e->mutex);
		memset(e->slots, 0, sizeof(e->slots));
		*created = true;
	}
	LWLockRelease(quota_state->lock);
	return e;
}

/*
 * quota_foreach
 *		Call fn(arg, entry) for every entry of one database and tenants
 *		table.  The entries are collected under the lock and visited after
 *		it is released, so fn may allocate and raise errors.
 */
void
quota_foreach(Oid dbid, Oid tenants_relid, void (*fn) (void *arg, QuotaEntry *e), void *arg)
{
	HASH_SEQ_STATUS seq;
	QuotaEntry *e;
	QuotaEntry **list;
	long		n = 0;

	LWLockAcquire(quota_state->lock, LW_SHARED);
	list = palloc(sizeof(QuotaEntry *) * Max(hash_get_num_entries(quota_hash), 1));
	hash_seq_init(&seq, quota_hash);
	while ((e = hash_seq_search(&seq)) != NULL)
		if (e->key.dbid == dbid && e->key.tenants_relid == tenants_relid)
			list[n++] = e;
	LWLockRelease(quota_state->lock);
	for (long i = 0; i < n; i++)
		fn(arg, list[i]);
	pfree(list);
}

/* note that counters changed, for the saver */
void
quota_changed(void)
{
	pg_atomic_fetch_add_u64(&quota_state->changes, 1);
}

/*
 * quota_save
 *		Write every entry to the quota file, each copied under its spinlock.
 *		Returns false (after a LOG line) if the file could not be written.
 */
static bool
quota_save(void)
{
	FILE	   *f;
	HASH_SEQ_STATUS seq;
	QuotaEntry *e;
	uint32		header[3];
	long		n;
	uint64		changes = pg_atomic_read_u64(&quota_state->changes);

	f = AllocateFile(QUOTA_FILE_TMP, PG_BINARY_W);
	if (f == NULL)
		goto error;

	LWLockAcquire(quota_state->lock, LW_SHARED);
	n = hash_get_num_entries(quota_hash);
	header[0] = QUOTA_FILE_MAGIC;
	header[1] = QUOTA_FILE_VERSION;
	header[2] = (uint32) n;
	if (fwrite(header, sizeof(header), 1, f) != 1)
	{
		LWLockRelease(quota_state->lock);
		goto error;
	}
	hash_seq_init(&seq, quota_hash);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		QuotaKey	key = e->key;
		QuotaSlot	slots[QUOTA_SLOTS];

		SpinLockAcquire(&e->mutex);
		memcpy(slots, e->slots, sizeof(slots));
		SpinLockRelease(&e->mutex);
		if (fwrite(&key, sizeof(key), 1, f) != 1 || fwrite(slots, sizeof(slots), 1, f) != 1)
		{
			hash_seq_term(&seq);
			LWLockRelease(quota_state->lock);
			goto error;
		}
	}
	LWLockRelease(quota_state->lock);

	if (fflush(f) != 0 || pg_fsync(fileno(f)) != 0)
		goto error;
	if (FreeFile(f) != 0)
	{
		f = NULL;
		goto error;
	}
	f = NULL;
	if (durable_rename(QUOTA_FILE_TMP, QUOTA_FILE, LOG) != 0)
		return false;
	pg_atomic_write_u64(&quota_state->saved_changes, changes);
	return true;

error:
	ereport(LOG,
			(errcode_for_file_access(),
			 errmsg("llm_usage: could not write quota counters to \"%s\": %m", QUOTA_FILE_TMP)));
	if (f != NULL)
		FreeFile(f);
	unlink(QUOTA_FILE_TMP);
	return false;
}

/* save if anything changed since the last save */
bool
quota_save_if_changed(void)
{
	if (quota_state == NULL ||
		pg_atomic_read_u64(&quota_state->changes) == pg_atomic_read_u64(&quota_state->saved_changes))
		return true;
	return quota_save();
}

/* postmaster, clean shutdown: the final save (not after a crash) */
static void
quota_save_at_exit(int code, Datum arg)
{
	if (code != 0 || quota_state == NULL)
		return;
	(void) quota_save_if_changed();
}

/*
 * quota_load
 *		Read the quota file into the (new, empty) hash table.  A missing
 *		file is normal (first start); an unreadable or foreign one is logged
 *		and ignored.
 */
static void
quota_load(void)
{
	FILE	   *f;
	uint32		header[3];
	uint32		i;
	uint32		loaded = 0;

	f = AllocateFile(QUOTA_FILE, PG_BINARY_R);
	if (f == NULL)
	{
		if (errno != ENOENT)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("llm_usage: could not read quota counters from \"%s\": %m", QUOTA_FILE)));
		return;
	}
	if (fread(header, sizeof(header), 1, f) != 1 ||
		header[0] != QUOTA_FILE_MAGIC || header[1] != QUOTA_FILE_VERSION)
	{
		ereport(LOG,
				(errmsg("llm_usage: ignoring quota counters file \"%s\" of an unknown format", QUOTA_FILE)));
		FreeFile(f);
		return;
	}
	for (i = 0; i < header[2]; i++)
	{
		QuotaKey	key;
		QuotaSlot	slots[QUOTA_SLOTS];
		QuotaEntry *e;
		bool		found;

		if (fread(&key, sizeof(key), 1, f) != 1 || fread(slots, sizeof(slots), 1, f) != 1)
		{
			ereport(LOG,
					(errmsg("llm_usage: quota counters file \"%s\" is truncated; read %u of %u tenants",
							QUOTA_FILE, loaded, header[2])));
			break;
		}
		e = hash_search(quota_hash, &key, HASH_ENTER_NULL, &found);
		if (e == NULL)
		{
			ereport(LOG,
					(errmsg("llm_usage: llm_usage.quota_max_tenants (%d) is too small for the %u saved tenants",
							llm_usage_quota_max_tenants, header[2])));
			break;
		}
		SpinLockInit(&e->mutex);
		memcpy(e->slots, slots, sizeof(slots));
		loaded++;
	}
	FreeFile(f);
	ereport(LOG, (errmsg("llm_usage: restored quota counters of %u tenants", loaded)));
}

/* once per process: the table is full, this tenant is counted in the table */
void
quota_warn_full(void)
{
	bool		warn;

	LWLockAcquire(quota_state->lock, LW_EXCLUSIVE);
	warn = !quota_state->full_warned;
	quota_state->full_warned = true;
	LWLockRelease(quota_state->lock);
	if (warn)
		ereport(WARNING,
				(errmsg("llm_usage: shared quota counters are full (llm_usage.quota_max_tenants = %d)",
						llm_usage_quota_max_tenants),
				 errdetail("Further tenants are counted in table llm_usage.quota_counters_table, which is slower."),
				 errhint("Raise llm_usage.quota_max_tenants and restart the server.")));
}

/*
 * llm_usage_quota_saver_main
 *		The quota saver worker: no database connection, it only writes the
 *		counters to disk every llm_usage.quota_save_interval and once more
 *		on SIGTERM.
 */
void
llm_usage_quota_saver_main(Datum main_arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();

	while (!ShutdownRequestPending)
	{
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		(void) quota_save_if_changed();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 llm_usage_quota_save_interval, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	(void) quota_save_if_changed();
	proc_exit(0);
}
