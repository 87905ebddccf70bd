/*-------------------------------------------------------------------------
 *
 * quota_shmem.c
 *	  Quota counters of the current periods in shared memory, their durable
 *	  copy on disk, and the reclaiming of entries nobody can use any more.
 *
 * One QuotaEntry per (database, tenants table, tenant) holds a slot per
 * quota type and period (the start of the period the slot counts and what
 * was consumed in it, in millionths of the quota's unit) and the tenant's
 * denials not yet written to the audit log.
 *
 * Memory: llm_usage.quota_max_tenants entries, allocated once at start-up
 * in a fixed array, and a hash table from key to array index preallocated
 * for as many keys.  At most that many entries are ever in use (counted
 * here: dynahash does not enforce a shared table's maximum, it would take
 * memory from the rest of shared memory); a tenant beyond it is counted in
 * the table by the SQL path.  Entries are reclaimed when their tenant is
 * deleted, their extension dropped or their database dropped (at commit of
 * the transaction that did it), and by _shm_reclaim() (the worker's
 * maintenance) for whatever that missed.
 *
 * Locking:
 *	- quota_state->lock (an LWLock) protects the hash table, the free list
 *	  and which entries are in use: LW_SHARED to look a key up, LW_EXCLUSIVE
 *	  to take or give back an entry.
 *	- entry->mutex (a spinlock, initialised once at start-up and never
 *	  again) protects the entry's contents.  It is held only to read or
 *	  change them: no allocation, no error, no other lock while it is held.
 *	  All slots of a tenant share it, so consuming several quotas at once is
 *	  atomic.
 *	- Backends keep pointers to entries without the LWLock (QuotaRef).  An
 *	  entry may meanwhile be reclaimed and reused for another tenant, so
 *	  every use takes the mutex and checks that the entry's incarnation is
 *	  still the one looked up (quota_lock()); a new incarnation is given
 *	  each time an entry is taken.
 *
 * Reservations: enforce_quota(..., request_id) notes what it counted for
 * that request in a shared hash of llm_usage.max_reservations entries,
 * keyed by the tenant entry's incarnation and the request id, partitioned
 * over RESERVATION_PARTITIONS LWLocks; track_usage of the request takes it
 * out (quota.c).  Each tenant entry counts its open reservations (under
 * its mutex): a tenant may hold at most llm_usage.max_reservations_per_tenant
 * of them, so one tenant (or one application bound to it) that never
 * settles cannot take the whole hash from the others.  A partition lock
 * may be held while an entry's mutex is taken, never the other way round.  Reservations are not saved: after a
 * restart the amounts they counted stay counted, as when they expire.
 *
 * Durability: the "llm_usage quota saver" worker writes every entry in use
 * to pg_stat/llm_usage_quota.stat (write to a temporary file, fsync, rename)
 * every llm_usage.quota_save_interval, when an entry changed (each entry's
 * dirty flag, set under its mutex) or entries were taken or reclaimed, and
 * once more when it stops; the postmaster writes it a last time at a clean
 * shutdown.  It copies each entry under its mutex and holds no lock while
 * writing or syncing.  The file is read back when shared memory is created,
 * at start-up and after a crash.  A crash therefore loses at most the
 * consumption since the last save; a clean shutdown loses nothing.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/stat.h>
#include <unistd.h>

#include "access/xact.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_class.h"
#include "catalog/pg_database.h"
#include "common/hashfn.h"
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
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "llm_usage.h"
#include "quota.h"

#define QUOTA_FILE			"pg_stat/llm_usage_quota.stat"
#define QUOTA_FILE_TMP		QUOTA_FILE ".tmp"
#define QUOTA_FILE_MAGIC	0x4c4c4d51	/* "LLMQ" */
#define QUOTA_FILE_VERSION	2		/* 1: key and slots; 2: and pending denials */

typedef struct QuotaState
{
	LWLock	   *lock;			/* hash table, free list, in_use */
	int			nentries;		/* in use */
	int			free_head;		/* first free entry, -1: none */
	uint64		next_incarnation;
	pg_atomic_uint64 structure_changes; /* entries taken or given back */
	pg_atomic_uint64 saved_structure;	/* structure_changes when last saved */
	pg_atomic_uint32 save_failed;	/* the last save failed: write again */
	bool		full_warned;
} QuotaState;

/* the hash table's entries: where a key's entry is */
typedef struct QuotaHashEntry
{
	QuotaKey	key;
	int			index;
} QuotaHashEntry;

int			llm_usage_quota_save_interval = 1000;
int			llm_usage_max_reservations = 10000;
int			llm_usage_max_reservations_per_tenant = 2500;
int			llm_usage_reservation_ttl = 900;

#define RESERVATION_PARTITIONS	16

static HTAB *reservation_hash = NULL;
static LWLockPadded *reservation_locks = NULL;
static pg_atomic_uint32 *reservation_used = NULL;	/* entries in the hash */

static QuotaState *quota_state = NULL;
static QuotaEntry *quota_entries = NULL;
static HTAB *quota_hash = NULL;

static object_access_hook_type prev_object_access_hook = NULL;

static void quota_save_at_exit(int code, Datum arg);
static void quota_load(void);

Size
quota_shmem_size(void)
{
	Size		size = MAXALIGN(sizeof(QuotaState));

	size = add_size(size, MAXALIGN(mul_size(llm_usage_quota_max_tenants, sizeof(QuotaEntry))));
	size = add_size(size, hash_estimate_size(llm_usage_quota_max_tenants, sizeof(QuotaHashEntry)));
	size = add_size(size, MAXALIGN(sizeof(pg_atomic_uint32)));
	return add_size(size, hash_estimate_size(llm_usage_max_reservations, sizeof(Reservation)));
}

void
quota_shmem_request(void)
{
	RequestAddinShmemSpace(quota_shmem_size());
	RequestNamedLWLockTranche("llm_usage_quota", 1);
	RequestNamedLWLockTranche("llm_usage_reservations", RESERVATION_PARTITIONS);
}

/*
 * quota_shmem_startup
 *		Create or attach the counters; the process that creates them (the
 *		postmaster) initialises every entry's mutex, reads the saved file
 *		and arranges the last save.
 */
void
quota_shmem_startup(void)
{
	bool		found,
				found_entries;
	HASHCTL		info;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	quota_state = ShmemInitStruct("llm_usage quota state", sizeof(QuotaState), &found);
	quota_entries = ShmemInitStruct("llm_usage quota entries",
									mul_size(llm_usage_quota_max_tenants, sizeof(QuotaEntry)), &found_entries);
	if (!found)
	{
		quota_state->lock = &(GetNamedLWLockTranche("llm_usage_quota"))->lock;
		quota_state->nentries = 0;
		quota_state->next_incarnation = 1;
		pg_atomic_init_u64(&quota_state->structure_changes, 0);
		pg_atomic_init_u64(&quota_state->saved_structure, 0);
		pg_atomic_init_u32(&quota_state->save_failed, 0);
		quota_state->full_warned = false;
		for (int i = 0; i < llm_usage_quota_max_tenants; i++)
		{
			QuotaEntry *e = &quota_entries[i];

			SpinLockInit(&e->mutex);
			e->in_use = false;
			e->dirty = false;
			e->incarnation = 0;
			e->reservations = 0;
			e->next_free = (i + 1 < llm_usage_quota_max_tenants) ? i + 1 : -1;
		}
		quota_state->free_head = llm_usage_quota_max_tenants > 0 ? 0 : -1;
	}
	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(QuotaKey);
	info.entrysize = sizeof(QuotaHashEntry);
	quota_hash = ShmemInitHash("llm_usage quota counters",
							   llm_usage_quota_max_tenants, llm_usage_quota_max_tenants,
							   &info, HASH_ELEM | HASH_BLOBS);
	reservation_used = ShmemInitStruct("llm_usage reservations in use", sizeof(pg_atomic_uint32), &found_entries);
	if (!found_entries)
		pg_atomic_init_u32(reservation_used, 0);
	reservation_locks = GetNamedLWLockTranche("llm_usage_reservations");
	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(ReservationKey);
	info.entrysize = sizeof(Reservation);
	info.num_partitions = RESERVATION_PARTITIONS;
	reservation_hash = ShmemInitHash("llm_usage quota reservations",
									 llm_usage_max_reservations, llm_usage_max_reservations,
									 &info, HASH_ELEM | HASH_BLOBS | HASH_PARTITION);
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

/*
 * an entry taken for key (caller holds the lock exclusively), its slots
 * copied from initial (NULL: all empty) before it is published; NULL when
 * full
 */
static QuotaEntry *
take_entry(const QuotaKey *key, const QuotaSlot *initial)
{
	QuotaHashEntry *h;
	QuotaEntry *e;
	bool		found;
	int			index;

	if (quota_state->nentries >= llm_usage_quota_max_tenants || quota_state->free_head < 0)
		return NULL;
	h = hash_search(quota_hash, key, HASH_ENTER_NULL, &found);
	if (h == NULL)
		return NULL;
	Assert(!found);
	index = quota_state->free_head;
	e = &quota_entries[index];
	quota_state->free_head = e->next_free;
	quota_state->nentries++;
	h->index = index;

	SpinLockAcquire(&e->mutex);
	e->key = *key;
	e->in_use = true;
	e->dirty = true;
	e->incarnation = quota_state->next_incarnation++;
	if (initial != NULL)
		memcpy(e->slots, initial, sizeof(e->slots));
	else
		memset(e->slots, 0, sizeof(e->slots));
	memset(&e->denials, 0, sizeof(e->denials));
	e->reservations = 0;
	memset(&e->credits, 0, sizeof(e->credits));
	SpinLockRelease(&e->mutex);
	pg_atomic_fetch_add_u64(&quota_state->structure_changes, 1);
	return e;
}

/* give entry index back (caller holds the lock exclusively) */
static void
give_back(int index)
{
	QuotaEntry *e = &quota_entries[index];
	QuotaKey	key;

	SpinLockAcquire(&e->mutex);
	key = e->key;
	e->in_use = false;
	e->dirty = false;
	e->incarnation = 0;
	SpinLockRelease(&e->mutex);
	(void) hash_search(quota_hash, &key, HASH_REMOVE, NULL);
	e->next_free = quota_state->free_head;
	quota_state->free_head = index;
	quota_state->nentries--;
	pg_atomic_fetch_add_u64(&quota_state->structure_changes, 1);
}

/*
 * quota_lookup
 *		The entry of a tenant, if it has one: *ref is set and true returned.
 *		Takes the lock shared.
 */
bool
quota_lookup(const QuotaKey *key, QuotaRef *ref)
{
	QuotaHashEntry *h;

	LWLockAcquire(quota_state->lock, LW_SHARED);
	h = hash_search(quota_hash, key, HASH_FIND, NULL);
	if (h != NULL)
	{
		ref->entry = &quota_entries[h->index];
		ref->incarnation = ref->entry->incarnation;	/* stable under the lock */
	}
	LWLockRelease(quota_state->lock);
	return h != NULL;
}

/*
 * quota_entry
 *		The entry of a tenant, taken (all slots empty, *created set) if it
 *		had none; false when llm_usage.quota_max_tenants entries are in use.
 */
bool
quota_entry(const QuotaKey *key, QuotaRef *ref, bool *created)
{
	return quota_entry_init(key, ref, created, NULL);
}

/*
 * quota_entry_init
 *		quota_entry(), an entry taken having its slots set from initial
 *		(QUOTA_SLOTS of them; NULL: empty) before any other backend can
 *		find it: an entry is never seen half filled.  Takes the lock
 *		exclusively when it takes an entry; raises no error.
 */
bool
quota_entry_init(const QuotaKey *key, QuotaRef *ref, bool *created, const QuotaSlot *initial)
{
	QuotaHashEntry *h;
	QuotaEntry *e;

	*created = false;
	if (quota_lookup(key, ref))
		return true;

	LWLockAcquire(quota_state->lock, LW_EXCLUSIVE);
	h = hash_search(quota_hash, key, HASH_FIND, NULL);
	if (h != NULL)
		e = &quota_entries[h->index];
	else
	{
		e = take_entry(key, initial);
		*created = (e != NULL);
	}
	if (e != NULL)
	{
		ref->entry = e;
		ref->incarnation = e->incarnation;
	}
	LWLockRelease(quota_state->lock);
	return e != NULL;
}

/*
 * quota_lock
 *		Take the entry's mutex if ref still names it; false (mutex not held)
 *		when the entry was reclaimed since it was looked up.
 */
bool
quota_lock(const QuotaRef *ref)
{
	SpinLockAcquire(&ref->entry->mutex);
	if (ref->entry->incarnation == ref->incarnation && ref->incarnation != 0)
		return true;
	SpinLockRelease(&ref->entry->mutex);
	return false;
}

void
quota_unlock(const QuotaRef *ref)
{
	SpinLockRelease(&ref->entry->mutex);
}

/* entries in use */
int
quota_entry_count(void)
{
	int			n;

	LWLockAcquire(quota_state->lock, LW_SHARED);
	n = quota_state->nentries;
	LWLockRelease(quota_state->lock);
	return n;
}

/*
 * quota_foreach
 *		Call fn(arg, entry, incarnation) for every entry of one database and
 *		tenants table (InvalidOid: any).  The entries are collected under the
 *		lock and visited after it is released, so fn may allocate and raise
 *		errors; fn locks an entry with quota_lock() (it may be gone).
 */
void
quota_foreach(Oid dbid, Oid tenants_relid, void (*fn) (void *arg, QuotaEntry *e, uint64 incarnation), void *arg)
{
	QuotaRef   *list;
	int			n = 0;

	list = palloc(sizeof(QuotaRef) * Max(llm_usage_quota_max_tenants, 1));
	LWLockAcquire(quota_state->lock, LW_SHARED);
	for (int i = 0; i < llm_usage_quota_max_tenants; i++)
	{
		QuotaEntry *e = &quota_entries[i];

		/* in_use, key and incarnation change only under the exclusive lock */
		if (e->in_use && (!OidIsValid(dbid) || e->key.dbid == dbid) &&
			(!OidIsValid(tenants_relid) || e->key.tenants_relid == tenants_relid))
		{
			list[n].entry = e;
			list[n].incarnation = e->incarnation;
			n++;
		}
	}
	LWLockRelease(quota_state->lock);
	for (int i = 0; i < n; i++)
		fn(arg, list[i].entry, list[i].incarnation);
	pfree(list);
}

/*
 * quota_reclaim
 *		Give back every entry for whose key doomed(arg, key) is true;
 *		returns how many.  doomed runs under the exclusive lock: it must
 *		only compare (no allocation, no error, no lock).
 */
int
quota_reclaim(bool (*doomed) (void *arg, const QuotaKey *key), void *arg)
{
	int			n = 0;

	LWLockAcquire(quota_state->lock, LW_EXCLUSIVE);
	for (int i = 0; i < llm_usage_quota_max_tenants; i++)
	{
		QuotaEntry *e = &quota_entries[i];

		if (e->in_use && doomed(arg, &e->key))
		{
			give_back(i);
			n++;
		}
	}
	LWLockRelease(quota_state->lock);
	return n;
}

/*
 * Reclaiming at commit.  A deleted tenant (the row trigger of
 * llm_usage.tenants), a dropped llm_usage.tenants table (DROP EXTENSION) or
 * a dropped database (the object access hook) is noted with the
 * subtransaction that did it; the entries go when the transaction commits,
 * and the note is forgotten if that subtransaction or the transaction
 * aborts (or is prepared: the maintenance sweep then finds them).
 */
typedef enum PendingKind
{
	PENDING_TENANT,				/* dbid, relid, tenant */
	PENDING_TABLE,				/* dbid, relid */
	PENDING_DATABASE			/* dbid */
} PendingKind;

typedef struct PendingReclaim
{
	PendingKind kind;
	SubTransactionId subid;
	QuotaKey	key;
} PendingReclaim;

static List *pending_reclaims = NIL;	/* of PendingReclaim, in TopMemoryContext */
static bool callbacks_registered = false;

static bool
pending_doomed(void *arg, const QuotaKey *key)
{
	ListCell   *lc;

	foreach(lc, pending_reclaims)
	{
		PendingReclaim *p = lfirst(lc);

		if (p->key.dbid != key->dbid)
			continue;
		if (p->kind == PENDING_DATABASE)
			return true;
		if (p->key.tenants_relid != key->tenants_relid)
			continue;
		if (p->kind == PENDING_TABLE || p->key.tenant[0] == '\0' || strcmp(p->key.tenant, key->tenant) == 0)
			return true;
	}
	return false;
}

static void
forget_pending(void)
{
	list_free_deep(pending_reclaims);
	pending_reclaims = NIL;
}

static void
reclaim_xact_callback(XactEvent event, void *arg)
{
	if (pending_reclaims == NIL)
		return;
	if (event == XACT_EVENT_COMMIT && quota_hash != NULL)
		(void) quota_reclaim(pending_doomed, NULL);
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT || event == XACT_EVENT_PREPARE ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT)
		forget_pending();
}

static void
reclaim_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						 SubTransactionId parentSubid, void *arg)
{
	ListCell   *lc;

	if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		foreach(lc, pending_reclaims)
		{
			PendingReclaim *p = lfirst(lc);

			if (p->subid == mySubid)
				p->subid = parentSubid;
		}
	}
	else if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		foreach(lc, pending_reclaims)
		{
			PendingReclaim *p = lfirst(lc);

			if (p->subid == mySubid)
			{
				pending_reclaims = foreach_delete_current(pending_reclaims, lc);
				pfree(p);
			}
		}
	}
}

static void
note_pending(PendingKind kind, const QuotaKey *key)
{
	MemoryContext old;
	PendingReclaim *p;

	if (!callbacks_registered)
	{
		RegisterXactCallback(reclaim_xact_callback, NULL);
		RegisterSubXactCallback(reclaim_subxact_callback, NULL);
		callbacks_registered = true;
	}
	old = MemoryContextSwitchTo(TopMemoryContext);
	p = palloc0(sizeof(PendingReclaim));
	p->kind = kind;
	p->subid = GetCurrentSubTransactionId();
	p->key = *key;
	pending_reclaims = lappend(pending_reclaims, p);
	MemoryContextSwitchTo(old);
}

/* the entry of key goes when this transaction commits (a deleted tenant; an empty tenant: all of its table) */
void
quota_reclaim_tenant_at_commit(const QuotaKey *key)
{
	if (quota_hash != NULL)
		note_pending(PENDING_TENANT, key);
}

/*
 * quota_object_access
 *		object_access_hook: a dropped database, or a dropped table named
 *		llm_usage.tenants (DROP EXTENSION), has its entries reclaimed at
 *		commit.  Expects a transaction (looks names up).
 */
static void
quota_object_access(ObjectAccessType access, Oid classId, Oid objectId, int subId, void *arg)
{
	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);
	if (access != OAT_DROP || quota_hash == NULL || subId != 0)
		return;
	if (classId == DatabaseRelationId)
	{
		QuotaKey	key;

		memset(&key, 0, sizeof(key));
		key.dbid = objectId;
		note_pending(PENDING_DATABASE, &key);
	}
	else if (classId == RelationRelationId)
	{
		char	   *name = get_rel_name(objectId);
		char	   *nspname;

		if (name == NULL || strcmp(name, "tenants") != 0)
			return;
		nspname = get_namespace_name(get_rel_namespace(objectId));
		if (nspname != NULL && strcmp(nspname, "llm_usage") == 0)
		{
			QuotaKey	key;

			memset(&key, 0, sizeof(key));
			key.dbid = MyDatabaseId;
			key.tenants_relid = objectId;
			note_pending(PENDING_TABLE, &key);
		}
	}
}

/* _PG_init (preloaded only): the hook that notices dropped databases and extensions */
void
quota_shmem_install_hooks(void)
{
	prev_object_access_hook = object_access_hook;
	object_access_hook = quota_object_access;
}

/* an entry changed or is in use, to be saved: scan the dirty flags */
static bool
anything_to_save(void)
{
	if (pg_atomic_read_u32(&quota_state->save_failed) != 0 ||
		pg_atomic_read_u64(&quota_state->structure_changes) != pg_atomic_read_u64(&quota_state->saved_structure))
		return true;
	for (int i = 0; i < llm_usage_quota_max_tenants; i++)
	{
		QuotaEntry *e = &quota_entries[i];
		bool		dirty;

		SpinLockAcquire(&e->mutex);
		dirty = e->in_use && e->dirty;
		SpinLockRelease(&e->mutex);
		if (dirty)
			return true;
	}
	return false;
}

/*
 * quota_save
 *		Write every entry in use to the quota file, each copied (and its
 *		dirty flag cleared) under its mutex; no lock is held while writing
 *		or syncing.  Returns false (after a LOG line) if the file could not
 *		be written; the next save then writes again.
 */
static bool
quota_save(void)
{
	FILE	   *f;
	uint32		header[3];
	uint32		n = 0;
	uint64		structure = pg_atomic_read_u64(&quota_state->structure_changes);

	f = AllocateFile(QUOTA_FILE_TMP, PG_BINARY_W);
	if (f == NULL)
		goto error;
	header[0] = QUOTA_FILE_MAGIC;
	header[1] = QUOTA_FILE_VERSION;
	header[2] = 0;				/* the count, written at the end */
	if (fwrite(header, sizeof(header), 1, f) != 1)
		goto error;
	for (int i = 0; i < llm_usage_quota_max_tenants; i++)
	{
		QuotaEntry *e = &quota_entries[i];
		QuotaKey	key;
		QuotaSlot	slots[QUOTA_SLOTS];
		QuotaDenials denials;
		bool		in_use;

		SpinLockAcquire(&e->mutex);
		in_use = e->in_use;
		if (in_use)
		{
			key = e->key;
			memcpy(slots, e->slots, sizeof(slots));
			denials = e->denials;
			e->dirty = false;
		}
		SpinLockRelease(&e->mutex);
		if (!in_use)
			continue;
		if (fwrite(&key, sizeof(key), 1, f) != 1 || fwrite(slots, sizeof(slots), 1, f) != 1 ||
			fwrite(&denials, sizeof(denials), 1, f) != 1)
			goto error;
		n++;
	}
	header[2] = n;
	if (fseek(f, 0, SEEK_SET) != 0 || fwrite(header, sizeof(header), 1, f) != 1)
		goto error;
	if (fflush(f) != 0 || pg_fsync(fileno(f)) != 0)
		goto error;
	if (FreeFile(f) != 0)
	{
		f = NULL;
		goto error;
	}
	f = NULL;
	if (durable_rename(QUOTA_FILE_TMP, QUOTA_FILE, LOG) != 0)
	{
		pg_atomic_write_u32(&quota_state->save_failed, 1);
		return false;
	}
	pg_atomic_write_u64(&quota_state->saved_structure, structure);
	pg_atomic_write_u32(&quota_state->save_failed, 0);
	return true;

error:
	ereport(LOG,
			(errcode_for_file_access(),
			 errmsg("llm_usage: could not write quota counters to \"%s\": %m", QUOTA_FILE_TMP)));
	if (f != NULL)
		FreeFile(f);
	unlink(QUOTA_FILE_TMP);
	pg_atomic_write_u32(&quota_state->save_failed, 1);
	return false;
}

/* save if anything changed since the last save (no lock held meanwhile) */
bool
quota_save_if_changed(void)
{
	if (quota_state == NULL || !anything_to_save())
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
 *		Read the quota file into the (new, empty) table; the postmaster,
 *		before any backend runs.  A missing file is normal (first start).
 *		An unreadable, foreign or corrupt file (a size that does not match
 *		its count of entries, a key that is not a NUL-terminated tenant id
 *		of a database, a negative counter) is logged and ignored: the
 *		counters start empty (what the table copy holds is carried in again
 *		as tenants are used).
 */
static void
quota_load(void)
{
	FILE	   *f;
	uint32		header[3];
	uint32		loaded = 0;
	struct stat st;
	uint64		record;
	const char *problem = NULL;

	f = AllocateFile(QUOTA_FILE, PG_BINARY_R);
	if (f == NULL)
	{
		if (errno != ENOENT)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("llm_usage: could not read quota counters from \"%s\": %m", QUOTA_FILE)));
		return;
	}
	if (fread(header, sizeof(header), 1, f) != 1 || header[0] != QUOTA_FILE_MAGIC ||
		(header[1] != 1 && header[1] != QUOTA_FILE_VERSION))
	{
		ereport(LOG,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("llm_usage: ignoring quota counters file \"%s\" of an unknown format", QUOTA_FILE)));
		FreeFile(f);
		return;
	}
	/* the size must be that of its count of entries: a truncated file or a garbage count is refused */
	record = sizeof(QuotaKey) + sizeof(QuotaSlot) * QUOTA_SLOTS + (header[1] >= 2 ? sizeof(QuotaDenials) : 0);
	if (fstat(fileno(f), &st) != 0)
		problem = "its size cannot be read";
	else if ((uint64) st.st_size != sizeof(header) + (uint64) header[2] * record)
		problem = "its size does not match its count of entries";
	for (uint32 i = 0; problem == NULL && i < header[2]; i++)
	{
		QuotaKey	key;
		QuotaSlot	slots[QUOTA_SLOTS];
		QuotaDenials denials;
		QuotaEntry *e;
		size_t		len;

		memset(&denials, 0, sizeof(denials));
		if (fread(&key, sizeof(key), 1, f) != 1 || fread(slots, sizeof(slots), 1, f) != 1 ||
			(header[1] >= 2 && fread(&denials, sizeof(denials), 1, f) != 1))
		{
			problem = "it is truncated";
			break;
		}
		/* a key as quota_make_key() builds it: a tenant id of 1 to QUOTA_TENANT_MAX bytes, zero-padded */
		len = strnlen(key.tenant, sizeof(key.tenant));
		if (len == 0 || len > QUOTA_TENANT_MAX || !OidIsValid(key.dbid) || !OidIsValid(key.tenants_relid))
		{
			problem = "it holds an invalid key";
			break;
		}
		memset(key.tenant + len, 0, sizeof(key.tenant) - len);
		for (int s = 0; s < QUOTA_SLOTS && problem == NULL; s++)
			if (slots[s].used < 0)
				problem = "it holds a negative counter";
		if (problem != NULL)
			break;
		if (hash_search(quota_hash, &key, HASH_FIND, NULL) != NULL)
			continue;
		e = take_entry(&key, slots);
		if (e == NULL)
		{
			ereport(LOG,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("llm_usage: llm_usage.quota_max_tenants (%d) is too small for the %u saved tenants",
							llm_usage_quota_max_tenants, header[2])));
			break;
		}
		e->denials = denials;
		e->dirty = false;
		loaded++;
	}
	FreeFile(f);
	if (problem != NULL)
	{
		/* start empty: give back what was taken before the problem was found */
		for (int i = 0; i < llm_usage_quota_max_tenants; i++)
			if (quota_entries[i].in_use)
				give_back(i);
		ereport(WARNING,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("llm_usage: ignoring corrupt quota counters file \"%s\": %s", QUOTA_FILE, problem),
				 errdetail("The shared quota counters start empty; the counters saved in llm_usage.quota_counters_table are carried in as tenants are used.")));
		return;
	}
	/* the file holds what was just loaded */
	pg_atomic_write_u64(&quota_state->saved_structure, pg_atomic_read_u64(&quota_state->structure_changes));
	ereport(LOG, (errmsg("llm_usage: restored quota counters of %u tenants", loaded)));
}

/* once per server start: the table is full, this tenant is counted in the table */
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
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("llm_usage: shared quota counters are full (llm_usage.quota_max_tenants = %d)",
						llm_usage_quota_max_tenants),
				 errdetail("Further tenants are counted in table llm_usage.quota_counters_table, which is slower."),
				 errhint("Raise llm_usage.quota_max_tenants and restart the server.")));
}

/*
 * llm_usage_quota_saver_main
 *		The quota saver worker: no database connection, it only writes the
 *		counters to disk every llm_usage.quota_save_interval when something
 *		changed, and once more on SIGTERM.
 */
void
llm_usage_quota_saver_main(Datum main_arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();

	/* the file holds what was loaded at start: the first save is an interval away */
	ResetLatch(MyLatch);
	while (!ShutdownRequestPending)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 llm_usage_quota_save_interval, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		if (ShutdownRequestPending)
			break;
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		(void) quota_save_if_changed();
	}
	(void) quota_save_if_changed();
	proc_exit(0);
}

/*
 * Reservations (see the file header).  reservation_key() builds a key,
 * reservation_lock() names the partition lock of a key (and its hash);
 * reservation_find() and reservation_remove() expect that lock held
 * exclusively (find without create: shared is enough).
 */
void
reservation_key(ReservationKey *key, uint64 incarnation, const char *request_id, int len)
{
	memset(key, 0, sizeof(*key));
	key->incarnation = incarnation;
	key->request[0] = DatumGetUInt64(hash_bytes_extended((const unsigned char *) request_id, len, 0));
	key->request[1] = DatumGetUInt64(hash_bytes_extended((const unsigned char *) request_id, len, UINT64CONST(0x6c6c6d5f75736167)));
}

LWLock *
reservation_lock(const ReservationKey *key, uint32 *hash)
{
	*hash = get_hash_value(reservation_hash, key);
	return &reservation_locks[*hash % RESERVATION_PARTITIONS].lock;
}

/*
 * reservation_find
 *		The reservation of key (*found set), or with create a new one, all
 *		amounts 0; NULL when it does not exist (not create) or when
 *		llm_usage.max_reservations are in use (create).
 */
Reservation *
reservation_find(const ReservationKey *key, uint32 hash, bool create, bool *found)
{
	Reservation *r;

	r = hash_search_with_hash_value(reservation_hash, key, hash, HASH_FIND, NULL);
	*found = (r != NULL);
	if (r != NULL || !create)
		return r;
	/* dynahash would take a shared table's entries beyond its size from the rest of shared memory */
	if (pg_atomic_fetch_add_u32(reservation_used, 1) >= (uint32) llm_usage_max_reservations)
	{
		pg_atomic_fetch_sub_u32(reservation_used, 1);
		return NULL;
	}
	r = hash_search_with_hash_value(reservation_hash, key, hash, HASH_ENTER_NULL, NULL);
	if (r == NULL)
	{
		pg_atomic_fetch_sub_u32(reservation_used, 1);
		return NULL;
	}
	r->entry_index = -1;
	r->expires_at = 0;
	memset(r->period_start, 0, sizeof(r->period_start));
	memset(r->amount, 0, sizeof(r->amount));
	r->credits_u = 0;
	r->credits_epoch = 0;
	r->credits_bucket = 0;
	return r;
}

/*
 * reservation_claim
 *		Count a new reservation against its tenant's entry (ref): false when
 *		the tenant already holds llm_usage.max_reservations_per_tenant open
 *		ones (nothing counted).  An entry reclaimed meanwhile counts nothing
 *		(consuming then finds it stale).  Expects the reservation's
 *		partition lock held exclusively; takes the entry's mutex.
 */
bool
reservation_claim(Reservation *r, const QuotaRef *ref)
{
	bool		ok = true;

	if (!quota_lock(ref))
		return true;
	if (ref->entry->reservations >= llm_usage_max_reservations_per_tenant)
		ok = false;
	else
	{
		ref->entry->reservations++;
		r->entry_index = (int) (ref->entry - quota_entries);
	}
	quota_unlock(ref);
	return ok;
}

/* the tenant entry of a reservation being removed counts it no more (its mutex taken) */
static void
reservation_unclaim(const Reservation *r)
{
	QuotaEntry *e;

	if (r->entry_index < 0 || r->entry_index >= llm_usage_quota_max_tenants)
		return;
	e = &quota_entries[r->entry_index];
	SpinLockAcquire(&e->mutex);
	if (e->incarnation == r->key.incarnation && e->reservations > 0)
		e->reservations--;
	SpinLockRelease(&e->mutex);
}

void
reservation_remove(const ReservationKey *key, uint32 hash)
{
	Reservation *r = hash_search_with_hash_value(reservation_hash, key, hash, HASH_REMOVE, NULL);

	/* the entry removed stays readable until the next insertion, under the lock we hold */
	if (r != NULL)
	{
		reservation_unclaim(r);
		pg_atomic_fetch_sub_u32(reservation_used, 1);
	}
}

/*
 * reservation_sweep
 *		Remove the reservations expired at now (they stay counted; those of
 *		entries given back since expire too, their incarnation never comes
 *		again); returns how many.  Takes every partition lock exclusively,
 *		in order, for one scan: rare (a full hash, the worker's maintenance).
 */
int
reservation_sweep(TimestampTz now)
{
	HASH_SEQ_STATUS seq;
	Reservation *r;
	int			n = 0;

	if (reservation_hash == NULL)
		return 0;
	for (int p = 0; p < RESERVATION_PARTITIONS; p++)
		LWLockAcquire(&reservation_locks[p].lock, LW_EXCLUSIVE);
	hash_seq_init(&seq, reservation_hash);
	while ((r = hash_seq_search(&seq)) != NULL)
	{
		if (r->expires_at <= now)
		{
			/* removing the entry just returned is allowed during a scan */
			reservation_unclaim(r);
			if (hash_search(reservation_hash, &r->key, HASH_REMOVE, NULL) != NULL)
				pg_atomic_fetch_sub_u32(reservation_used, 1);
			n++;
		}
	}
	for (int p = RESERVATION_PARTITIONS - 1; p >= 0; p--)
		LWLockRelease(&reservation_locks[p].lock);
	return n;
}

/* reservations in the hash (open or expired and not yet swept) */
int
reservation_count(void)
{
	return reservation_hash != NULL ? (int) pg_atomic_read_u32(reservation_used) : 0;
}
