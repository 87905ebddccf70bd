/*-------------------------------------------------------------------------
 *
 * quota.h
 *	  The shared-memory quota counters (quota_shmem.c) and the backend side
 *	  that consumes them (quota.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LLM_USAGE_QUOTA_H
#define LLM_USAGE_QUOTA_H

#include "access/htup.h"
#include "access/tupdesc.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "storage/lwlock.h"
#include "storage/spin.h"

/* quota types (alphabetical, the order results are listed in) and periods */
#define QUOTA_NTYPES		5
#define QUOTA_NPERIODS		4
#define QUOTA_SLOTS			(QUOTA_NTYPES * QUOTA_NPERIODS)
#define QUOTA_TENANT_MAX	255		/* longer tenant ids are counted in the table */
#define QUOTA_UNIT			INT64CONST(1000000) /* counters are in millionths */
#define QUOTA_DENIAL_ROLES	4		/* roles named in one denial record */

typedef struct QuotaKey
{
	Oid			dbid;
	Oid			tenants_relid;	/* llm_usage.tenants: a re-created extension starts afresh */
	char		tenant[QUOTA_TENANT_MAX + 1];	/* zero-padded */
} QuotaKey;

typedef struct QuotaSlot
{
	TimestampTz period_start;	/* period counted; 0: never used */
	TimestampTz updated_at;
	int64		used;			/* millionths of the unit */
} QuotaSlot;

/* what the denials of one quota in the pending window were, the last one's figures */
typedef struct QuotaDenialSlot
{
	int64		denials;		/* denied calls this quota did not fit; 0: none */
	int64		used;			/* counted when last denied, millionths */
	int64		requested;		/* last amount denied, millionths */
	int64		limit_u;		/* limit then, millionths */
	TimestampTz period_start;	/* period it was counting */
} QuotaDenialSlot;

/*
 * The denials of a tenant not yet written to the audit log: one window,
 * started by the first denial, written (one audit event) when a denial
 * comes in a later minute, or by _write_quota_denials().
 */
typedef struct QuotaDenials
{
	TimestampTz first_at;		/* 0: nothing pending */
	TimestampTz last_at;
	int64		calls;			/* denied calls */
	Oid			roles[QUOTA_DENIAL_ROLES];	/* the first roles denied */
	bool		more_roles;		/* and others */
	QuotaDenialSlot slots[QUOTA_SLOTS];
} QuotaDenials;

/*
 * Prepaid credits of a tenant (credits.c): its credit_balances balance
 * mirrored in millionths of a USD (rounded down), and what open credits
 * admissions hold, in a few buckets by expiry: a bucket takes holds for
 * llm_usage.reservation_ttl / CREDIT_BUCKET_SPAN from its opening (a
 * request admitted again moves its hold into the open bucket) and is
 * released whole reservation_ttl after its last hold, unless track_usage
 * released them first (a reservation names its bucket and the bucket's
 * epoch).  Not saved: known is false after a start, and the balance is
 * read from the table on first use, with the open holds of the table path
 * (credit_holds) the first time (imported), held until they expire.
 */
#define CREDIT_BUCKETS		10
#define CREDIT_BUCKET_SPAN	8	/* a bucket takes holds for ttl / 8 */

typedef struct QuotaCreditBucket
{
	uint64		epoch;			/* 0: free */
	TimestampTz opened;
	TimestampTz expires;
	int64		held_u;
} QuotaCreditBucket;

typedef struct QuotaCredits
{
	bool		known;			/* balance_u is the table's balance */
	uint64		gen;			/* bumped by every committed balance change seen */
	int64		balance_u;
	uint64		next_epoch;
	bool		imported;		/* the table path's open holds taken over */
	QuotaCreditBucket buckets[CREDIT_BUCKETS];
} QuotaCredits;

/*
 * One tenant's counters.  Entries live in a fixed array allocated at
 * start-up and are reused: a backend holding a pointer checks, under the
 * mutex, that incarnation is still the one it looked up.
 */
typedef struct QuotaEntry
{
	slock_t		mutex;			/* protects everything below but next_free */
	bool		in_use;
	bool		dirty;			/* changed since the saver last copied it */
	uint64		incarnation;	/* 0 while free */
	QuotaKey	key;
	QuotaSlot	slots[QUOTA_SLOTS]; /* [type * QUOTA_NPERIODS + period] */
	QuotaDenials denials;
	int			reservations;	/* its open reservations in the reservation hash */
	QuotaCredits credits;		/* not saved */
	int			next_free;		/* free list, under the table's LWLock */
} QuotaEntry;

/* a backend's reference to an entry */
typedef struct QuotaRef
{
	QuotaEntry *entry;
	uint64		incarnation;
} QuotaRef;

/*
 * An open reservation: what enforce_quota(..., request_id) counted for one
 * request of one tenant, per slot, in the period it counted it in;
 * track_usage of the same request takes it out again when it settles
 * (quota.c).  Keyed by the tenant entry's incarnation (unique among
 * entries ever taken) and a 128-bit hash of the request id (two 64-bit
 * hashes with different seeds), whatever its length.
 */
typedef struct ReservationKey
{
	uint64		incarnation;	/* of the tenant's QuotaEntry */
	uint64		request[2];		/* hash of the request id */
} ReservationKey;

typedef struct Reservation
{
	ReservationKey key;			/* hash key */
	int			entry_index;	/* the QuotaEntry that counts it, -1: none */
	TimestampTz expires_at;		/* from then on it is no longer settled, but stays counted */
	TimestampTz period_start[QUOTA_SLOTS];	/* period each amount was counted in */
	int64		amount[QUOTA_SLOTS];	/* millionths; 0: none */
	int64		credits_u;		/* credits held (credits.c), millionths of a USD */
	uint64		credits_epoch;	/* of the bucket holding them */
	int			credits_bucket;
} Reservation;

extern int	llm_usage_max_reservations;
extern int	llm_usage_max_reservations_per_tenant;
extern int	llm_usage_reservation_ttl;
extern int	llm_usage_quota_save_interval;
extern bool llm_usage_audit_quota_denials;

/* quota_shmem.c */
extern Size quota_shmem_size(void);
extern void quota_shmem_request(void);
extern void quota_shmem_startup(void);
extern void quota_shmem_install_hooks(void);
extern bool quota_shmem_ready(void);
extern bool quota_lookup(const QuotaKey *key, QuotaRef *ref);
extern bool quota_entry(const QuotaKey *key, QuotaRef *ref, bool *created);
extern bool quota_entry_init(const QuotaKey *key, QuotaRef *ref, bool *created, const QuotaSlot *initial);
extern bool quota_lock(const QuotaRef *ref);
extern void quota_unlock(const QuotaRef *ref);
extern int	quota_entry_count(void);
extern void quota_foreach(Oid dbid, Oid tenants_relid,
						  void (*fn) (void *arg, QuotaEntry *e, uint64 incarnation), void *arg);
extern int	quota_reclaim(bool (*doomed) (void *arg, const QuotaKey *key), void *arg);
extern void quota_reclaim_tenant_at_commit(const QuotaKey *key);
extern bool quota_save_if_changed(void);
extern void quota_warn_full(void);
extern PGDLLEXPORT void llm_usage_quota_saver_main(Datum main_arg);
extern void reservation_key(ReservationKey *key, uint64 incarnation, const char *request_id, int len);
extern LWLock *reservation_lock(const ReservationKey *key, uint32 *hash);
extern Reservation *reservation_find(const ReservationKey *key, uint32 hash, bool create, bool *found);
extern bool reservation_claim(Reservation *r, const QuotaRef *ref);
extern void reservation_remove(const ReservationKey *key, uint32 hash);
extern int	reservation_sweep(TimestampTz now);
extern int	reservation_count(void);

/* quota.c: settlement of tracked calls (track.c) */
typedef struct SettleAmounts
{
	int64		tokens;
	Datum		cost_usd;		/* numeric, (Datum) 0: no cost */
	int			counter;		/* 0 none, 1 chat_messages, 2 embeddings */
} SettleAmounts;

extern bool quota_settle_ready(const char *tenant);
extern bool quota_shared_ref(const char *tenant, QuotaRef *ref);
extern void quota_make_key(QuotaKey *key, const char *tenant);

/* credits.c: prepaid credits in shared memory */
extern void credits_release(const QuotaRef *ref, const Reservation *r);
extern HeapTuple credits_enforce_fast(FunctionCallInfo fcinfo, TupleDesc desc);
extern void quota_settle(const char *tenant, const char *request_id, const SettleAmounts *a, TimestampTz occurred_at);

#endif							/* LLM_USAGE_QUOTA_H */
