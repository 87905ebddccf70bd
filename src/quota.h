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

#include "datatype/timestamp.h"
#include "storage/spin.h"

/* quota types (alphabetical, the order results are listed in) and periods */
#define QUOTA_NTYPES		5
#define QUOTA_NPERIODS		4
#define QUOTA_SLOTS			(QUOTA_NTYPES * QUOTA_NPERIODS)
#define QUOTA_TENANT_MAX	255		/* longer tenant ids are counted in the table */
#define QUOTA_UNIT			INT64CONST(1000000) /* counters are in millionths */

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

typedef struct QuotaEntry
{
	QuotaKey	key;
	slock_t		mutex;			/* protects slots */
	QuotaSlot	slots[QUOTA_SLOTS]; /* [type * QUOTA_NPERIODS + period] */
} QuotaEntry;

extern int	llm_usage_quota_max_tenants;
extern int	llm_usage_quota_save_interval;

extern Size quota_shmem_size(void);
extern void quota_shmem_request(void);
extern void quota_shmem_startup(void);
extern bool quota_shmem_ready(void);
extern QuotaEntry *quota_lookup(const QuotaKey *key);
extern QuotaEntry *quota_entry(const QuotaKey *key, bool *created);
extern void quota_foreach(Oid dbid, Oid tenants_relid, void (*fn) (void *arg, QuotaEntry *e), void *arg);
extern void quota_changed(void);
extern bool quota_save_if_changed(void);
extern void quota_warn_full(void);
extern PGDLLEXPORT void llm_usage_quota_saver_main(Datum main_arg);

#endif							/* LLM_USAGE_QUOTA_H */
