/*-------------------------------------------------------------------------
 *
 * credits.c
 *	  Prepaid credits in shared memory: enforce_quota(tenant, 'credits',
 *	  estimate[, request_id]) decided under the tenant's spinlock, against
 *	  its credit balance mirrored from llm_usage.credit_balances.
 *
 * The table is the truth; the mirror (QuotaCredits in the tenant's
 * QuotaEntry, quota.h) follows it:
 *
 *	- Every change of a credit_balances row is noted by the row trigger
 *	  _credit_balance_changed() (grants, deductions, tracked calls and
 *	  custom-source rows of prepaid tenants, an admin's direct write) as
 *	  the change of floor(balance * 10^6), and applied to the mirror at
 *	  XACT_EVENT_PRE_COMMIT, while the transaction still holds the row
 *	  lock (dropped when it or its subtransaction aborts before that, taken
 *	  back out when it aborts after it); a prepared transaction instead
 *	  makes the mirror unknown when it is prepared (it commits elsewhere).
 *	  Every application bumps the entry's gen, known or not.  Not at
 *	  XACT_EVENT_COMMIT: that runs after the transaction left the proc
 *	  array and before it releases its locks, so a reader of the table
 *	  (below) can see the new balance without waiting, and a change
 *	  applied after that read would be counted twice.
 *	- A mirror not known is read from the table (load_mirror) with the
 *	  balance row locked FOR SHARE: that waits for a transaction changing
 *	  it, which applies its change before it releases the row.  It is
 *	  taken only if gen did not move since before the read, so a change
 *	  committed meanwhile is neither lost nor counted twice.
 *
 * Holds: an admission holds its estimate in one of CREDIT_BUCKETS
 * buckets of the entry (by expiry, see quota.h); with a request_id the
 * reservation of the request (quota_shmem.c) names the bucket, and
 * track_usage of the request releases the hold at commit (quota.c's
 * apply_settlements calls credits_release), whatever the call cost; the
 * SQL track_usage deducts the cost from the table in its transaction,
 * which the mirror then follows.  A hold not released is released with
 * its bucket, at least llm_usage.reservation_ttl after it was made.
 *
 * A tenant not counted in shared memory (no entry, or a server without the
 * library preloaded) is admitted by the table path of src/sql/credits.sql
 * (credit_holds); each tenant uses one path at a time, as for the quota
 * counters.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "llm_usage.h"
#include "quota.h"
#include "session_cache.h"

#define CREDIT_MAX_U	(PG_INT64_MAX / 2)	/* a larger balance is counted as this */
#define LOAD_ATTEMPTS	100

PG_FUNCTION_INFO_V1(llm_usage_credit_balance_changed);
PG_FUNCTION_INFO_V1(llm_usage_shm_enforce_credits);
PG_FUNCTION_INFO_V1(llm_usage_shm_credits);

/* a committed change of a balance, noted by the trigger */
typedef struct PendingCredit
{
	SubTransactionId subid;		/* first member, as subxact_forget expects */
	QuotaKey	key;
	int64		delta_u;
	bool		done;			/* handled at pre-commit */
	bool		applied;		/* and added to a known mirror then */
} PendingCredit;

static List *pending_credits = NIL;	/* in TopMemoryContext */
static bool callbacks_registered = false;
static SPIPlanPtr load_plan = NULL;

/* floor(n * 10^6), within [0, CREDIT_MAX_U] (a balance is never negative) */
static int64
balance_to_micro(Datum n)
{
	Datum		m;
	Datum		cap = NumericGetDatum(int64_to_numeric(CREDIT_MAX_U));

	m = DirectFunctionCall2(numeric_mul, n, NumericGetDatum(int64_to_numeric(QUOTA_UNIT)));
	m = DirectFunctionCall1(numeric_floor, m);
	if (numeric_is_nan(DatumGetNumeric(m)) || DatumGetInt32(DirectFunctionCall2(numeric_cmp, m, cap)) >= 0)
		return CREDIT_MAX_U;
	if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, m, NumericGetDatum(int64_to_numeric(0)))) <= 0)
		return 0;
	return DatumGetInt64(DirectFunctionCall1(numeric_int8, m));
}

/* ceil(n * 10^6) of a sum of holds, within [0, CREDIT_MAX_U] */
static int64
held_to_micro(Datum n)
{
	Datum		m;
	Datum		cap = NumericGetDatum(int64_to_numeric(CREDIT_MAX_U));

	m = DirectFunctionCall2(numeric_mul, n, NumericGetDatum(int64_to_numeric(QUOTA_UNIT)));
	m = DirectFunctionCall1(numeric_ceil, m);
	if (numeric_is_nan(DatumGetNumeric(m)) || DatumGetInt32(DirectFunctionCall2(numeric_cmp, m, cap)) >= 0)
		return CREDIT_MAX_U;
	if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, m, NumericGetDatum(int64_to_numeric(0)))) <= 0)
		return 0;
	return DatumGetInt64(DirectFunctionCall1(numeric_int8, m));
}

/*
 * ceil(n * 10^6) of an estimate in [0, 10^12] (what _check_amount allows);
 * false for anything else (NULL, NaN, negative, too large): the SQL path
 * raises the error.
 */
static bool
estimate_to_micro(Datum n, int64 *out)
{
	/* the last estimate converted (applications repeat theirs) */
	static char last[32];
	static Size last_len = 0;
	static int64 last_u = 0;
	struct varlena *raw = PG_DETOAST_DATUM_PACKED(n);
	Size		len = VARSIZE_ANY(raw);
	Numeric		num = DatumGetNumeric(n);
	Datum		m;

	if (len == last_len && memcmp(raw, last, len) == 0)
	{
		*out = last_u;
		return true;
	}
	if (numeric_is_nan(num) || numeric_is_inf(num))
		return false;
	if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, n, NumericGetDatum(int64_to_numeric(0)))) < 0 ||
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, n, NumericGetDatum(int64_to_numeric(INT64CONST(1000000000000))))) > 0)
		return false;
	m = DirectFunctionCall2(numeric_mul, n, NumericGetDatum(int64_to_numeric(QUOTA_UNIT)));
	m = DirectFunctionCall1(numeric_ceil, m);
	*out = DatumGetInt64(DirectFunctionCall1(numeric_int8, m));
	if (len <= sizeof(last))
	{
		memcpy(last, raw, len);
		last_len = len;
		last_u = *out;
	}
	return true;
}

static Datum
micro_numeric(int64 v)
{
	if (v % QUOTA_UNIT == 0)
		return NumericGetDatum(int64_to_numeric(v / QUOTA_UNIT));
	return DirectFunctionCall1(numeric_trim_scale, NumericGetDatum(int64_div_fast_to_numeric(v, 6)));
}

/* ------------------------------------------------------------------------
 * Following the table: the trigger and the transaction callbacks
 * ------------------------------------------------------------------------
 */

/*
 * apply_pending
 *		Every noted change not handled yet into the mirrors: at pre-commit
 *		(the row locks still held) and at commit (a change noted after
 *		pre-commit); prepared: the mirrors become unknown instead.  Takes
 *		each entry's mutex in turn; must not fail.
 */
static void
apply_pending(bool prepared)
{
	ListCell   *lc;

	foreach(lc, pending_credits)
	{
		PendingCredit *p = lfirst(lc);
		QuotaRef	ref;

		if (p->done)
			continue;
		p->done = true;
		if (!quota_lookup(&p->key, &ref) || !quota_lock(&ref))
			continue;			/* not counted in shared memory */
		if (prepared)
			ref.entry->credits.known = false;	/* committed elsewhere: read again */
		else if (ref.entry->credits.known)
		{
			int64		b = ref.entry->credits.balance_u + p->delta_u;

			ref.entry->credits.balance_u = Min(Max(b, 0), CREDIT_MAX_U);
			p->applied = true;
		}
		ref.entry->credits.gen++;
		quota_unlock(&ref);
	}
}

/*
 * revert_pending
 *		The transaction aborted after pre-commit: the changes applied then
 *		taken back out of the mirrors.  Takes each entry's mutex in turn;
 *		must not fail.
 */
static void
revert_pending(void)
{
	ListCell   *lc;

	foreach(lc, pending_credits)
	{
		PendingCredit *p = lfirst(lc);
		QuotaRef	ref;

		if (!p->done || !quota_lookup(&p->key, &ref) || !quota_lock(&ref))
			continue;
		if (p->applied && ref.entry->credits.known)
		{
			int64		b = ref.entry->credits.balance_u - p->delta_u;

			ref.entry->credits.balance_u = Min(Max(b, 0), CREDIT_MAX_U);
		}
		ref.entry->credits.gen++;
		quota_unlock(&ref);
	}
}

static void
forget_pending(void)
{
	list_free_deep(pending_credits);
	pending_credits = NIL;
}

static void
credits_xact_callback(XactEvent event, void *arg)
{
	if (pending_credits == NIL)
		return;
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
			if (quota_shmem_ready())
				apply_pending(false);
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (quota_shmem_ready())
				apply_pending(false);	/* what was noted after pre-commit */
			forget_pending();
			break;
		case XACT_EVENT_PREPARE:
			if (quota_shmem_ready())
				apply_pending(true);
			forget_pending();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			if (quota_shmem_ready())
				revert_pending();	/* aborted after pre-commit */
			forget_pending();
			break;
		default:
			break;
	}
}

static void
credits_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						 SubTransactionId parentSubid, void *arg)
{
	ListCell   *lc;

	foreach(lc, pending_credits)
	{
		PendingCredit *p = lfirst(lc);

		if (p->subid != mySubid)
			continue;
		if (event == SUBXACT_EVENT_COMMIT_SUB)
			p->subid = parentSubid;
		else if (event == SUBXACT_EVENT_ABORT_SUB)
		{
			pending_credits = foreach_delete_current(pending_credits, lc);
			pfree(p);
		}
	}
}

/* a row's balance as floor(balance * 10^6); 0 for no row */
static int64
row_balance(Relation rel, HeapTuple tup)
{
	int			att;
	bool		isnull;
	Datum		d;

	if (tup == NULL)
		return 0;
	att = SPI_fnumber(RelationGetDescr(rel), "balance");
	if (att <= 0)
		elog(ERROR, "llm_usage.credit_balances has no column balance");
	d = heap_getattr(tup, att, RelationGetDescr(rel), &isnull);
	return isnull ? 0 : balance_to_micro(d);
}

/*
 * llm_usage._credit_balance_changed() RETURNS trigger
 *		AFTER INSERT OR UPDATE OR DELETE ON credit_balances FOR EACH ROW:
 *		notes the change of the tenant's balance, applied to its mirror in
 *		shared memory when the transaction commits.  Takes no lock.
 */
Datum
llm_usage_credit_balance_changed(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	HeapTuple	oldtup = NULL;
	HeapTuple	newtup = NULL;
	HeapTuple	keytup;
	char	   *tenant;
	int			att;
	bool		isnull;
	int64		delta;
	PendingCredit *p;
	MemoryContext old;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_ROW(td->tg_event) || !TRIGGER_FIRED_AFTER(td->tg_event))
		elog(ERROR, "_credit_balance_changed must be an AFTER ... FOR EACH ROW trigger");
	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
		newtup = td->tg_trigtuple;
	else if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		oldtup = td->tg_trigtuple;
		newtup = td->tg_newtuple;
	}
	else
		oldtup = td->tg_trigtuple;
	if (!quota_shmem_ready())
		return PointerGetDatum(NULL);
	delta = row_balance(td->tg_relation, newtup) - row_balance(td->tg_relation, oldtup);
	keytup = newtup ? newtup : oldtup;
	att = SPI_fnumber(RelationGetDescr(td->tg_relation), "tenant_id");
	tenant = TextDatumGetCString(heap_getattr(keytup, att, RelationGetDescr(td->tg_relation), &isnull));
	if (strlen(tenant) > QUOTA_TENANT_MAX)
		return PointerGetDatum(NULL);	/* counted in the table only */
	if (!callbacks_registered)
	{
		RegisterXactCallback(credits_xact_callback, NULL);
		RegisterSubXactCallback(credits_subxact_callback, NULL);
		callbacks_registered = true;
	}
	/* an update that moves a balance to another tenant is two changes */
	if (oldtup != NULL && newtup != NULL)
	{
		char	   *was = TextDatumGetCString(heap_getattr(oldtup, att, RelationGetDescr(td->tg_relation), &isnull));

		if (strcmp(was, tenant) != 0)
		{
			old = MemoryContextSwitchTo(TopMemoryContext);
			p = palloc(sizeof(PendingCredit));
			p->subid = GetCurrentSubTransactionId();
			quota_make_key(&p->key, was);
			p->delta_u = -row_balance(td->tg_relation, oldtup);
			p->done = false;
			p->applied = false;
			pending_credits = lappend(pending_credits, p);
			MemoryContextSwitchTo(old);
			delta = row_balance(td->tg_relation, newtup);
		}
	}
	old = MemoryContextSwitchTo(TopMemoryContext);
	p = palloc(sizeof(PendingCredit));
	p->subid = GetCurrentSubTransactionId();
	quota_make_key(&p->key, tenant);
	p->delta_u = delta;
	p->done = false;
	p->applied = false;
	pending_credits = lappend(pending_credits, p);
	MemoryContextSwitchTo(old);
	return PointerGetDatum(NULL);
}

/* ------------------------------------------------------------------------
 * Admission
 * ------------------------------------------------------------------------
 */

/*
 * own_pending
 *		What this transaction changed of the tenant's balance and has not
 *		put into the mirror yet (its reads of the table see it already).
 */
static int64
own_pending(const char *tenant)
{
	QuotaKey	key;
	ListCell   *lc;
	int64		sum = 0;

	quota_make_key(&key, tenant);
	foreach(lc, pending_credits)
	{
		PendingCredit *p = lfirst(lc);

		if (!p->done && memcmp(&p->key, &key, sizeof(key)) == 0)
			sum += p->delta_u;
	}
	return sum;
}

/*
 * load_mirror
 *		Read the tenant's balance from the table into its mirror, if no
 *		committed change moved the entry's gen meanwhile (see the file
 *		header); false when one did (the caller tries again) or the entry
 *		was reclaimed.  Locks the balance row FOR SHARE until the end of
 *		the calling transaction, as the extension's owner (fn's owner).
 *		The calling transaction's own changes of the balance, which the
 *		read sees, are left out (they are applied at its pre-commit).  The
 *		first read of an entry also takes over the open holds of the table
 *		path (credit_holds), held until the last of them expires.
 */
static bool
load_mirror(const QuotaRef *ref, const char *tenant, Oid fn)
{
	uint64		gen;
	int64		balance_u = 0;
	int64		held_u = 0;
	TimestampTz until = 0;
	TimestampTz now = GetCurrentTimestamp();
	Oid			save_userid;
	int			save_sec;
	int			level;
	Datum		arg = CStringGetTextDatum(tenant);
	bool		ok;

	if (!quota_lock(ref))
		return false;
	gen = ref->entry->credits.gen;
	ok = ref->entry->credits.known;
	quota_unlock(ref);
	if (ok)
		return true;

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(llm_usage_function_owner(fn), save_sec | SECURITY_LOCAL_USERID_CHANGE);
	level = session_cache_pin_search_path();
	SPI_connect();
	if (load_plan == NULL)
		load_plan = session_cache_keep_plan("SELECT b.balance, h.held, h.until FROM llm_usage.credit_balances b "
											"LEFT JOIN LATERAL (SELECT pg_catalog.sum(x.amount) AS held, "
											"pg_catalog.max(x.expires_at) AS until FROM llm_usage.credit_holds x "
											"WHERE x.tenant_id OPERATOR(pg_catalog.=) b.tenant_id "
											"AND x.expires_at OPERATOR(pg_catalog.>) pg_catalog.now()) h ON true "
											"WHERE b.tenant_id OPERATOR(pg_catalog.=) $1 FOR SHARE OF b",
											1, (Oid[]) {TEXTOID});
	if (SPI_execute_plan(load_plan, &arg, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "reading llm_usage.credit_balances failed");
	if (SPI_processed == 1)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		balance_u = isnull ? 0 : balance_to_micro(d);
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
		held_u = isnull ? 0 : held_to_micro(d);
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
		until = isnull ? 0 : DatumGetTimestampTz(d);
	}
	SPI_finish();
	session_cache_unpin_search_path(level);
	SetUserIdAndSecContext(save_userid, save_sec);
	/*
	 * The read saw this transaction's own changes, which go into the mirror
	 * at its pre-commit (or never, if it aborts): the committed balance is
	 * what the read saw less them.
	 */
	balance_u = Min(Max(balance_u - own_pending(tenant), 0), CREDIT_MAX_U);

	if (!quota_lock(ref))
		return false;
	ok = ref->entry->credits.gen == gen;
	if (ok && !ref->entry->credits.known)
	{
		QuotaCredits *c = &ref->entry->credits;

		c->balance_u = balance_u;
		c->known = true;
		if (!c->imported && held_u > 0 && until > now)
		{
			/*
			 * The tenant was admitted on the table path before it had an
			 * entry (shared memory full, or before a restart): what those
			 * admissions hold stays held here until it expires.
			 */
			int			b = 0;

			for (int i = 0; i < CREDIT_BUCKETS; i++)
				if (c->buckets[i].epoch == 0)
				{
					b = i;
					break;
				}
				else if (c->buckets[i].expires > c->buckets[b].expires)
					b = i;
			if (c->buckets[b].epoch == 0)
			{
				c->buckets[b].epoch = ++c->next_epoch;
				c->buckets[b].opened = now;
				c->buckets[b].held_u = 0;
				c->buckets[b].expires = 0;
			}
			c->buckets[b].held_u = Min(c->buckets[b].held_u + held_u, CREDIT_MAX_U);
			c->buckets[b].expires = Max(c->buckets[b].expires, until);
		}
		c->imported = true;
	}
	quota_unlock(ref);
	return ok;
}

/* the result of one admission */
typedef struct CreditDecision
{
	bool		allowed;
	int64		balance_u;
	int64		held_u;			/* after the admission */
} CreditDecision;

#define ADMIT_UNKNOWN	(-1)	/* the mirror must be read first */
#define ADMIT_STALE		(-2)	/* the entry was reclaimed */

/*
 * admit
 *		Under the entry's mutex: release expired buckets, decide, and when
 *		admitted hold amount_u in a bucket (r's, if it names a live one).
 *		r (may be NULL) is the request's reservation, its partition lock
 *		held by the caller.  Returns 1 admitted, 0 denied, or ADMIT_*.
 */
static int
admit(const QuotaRef *ref, int64 amount_u, Reservation *r, TimestampTz now, CreditDecision *d)
{
	QuotaCredits *c;
	int64		held = 0;
	int64		ttl = (int64) llm_usage_reservation_ttl * USECS_PER_SEC;
	int			b = -1;

	if (!quota_lock(ref))
		return ADMIT_STALE;
	c = &ref->entry->credits;
	if (!c->known)
	{
		quota_unlock(ref);
		return ADMIT_UNKNOWN;
	}
	for (int i = 0; i < CREDIT_BUCKETS; i++)
	{
		if (c->buckets[i].epoch != 0 && c->buckets[i].expires <= now)
			memset(&c->buckets[i], 0, sizeof(QuotaCreditBucket));
		held += c->buckets[i].held_u;
	}
	d->balance_u = c->balance_u;
	d->allowed = c->balance_u - held > 0 && amount_u <= c->balance_u - held;
	if (d->allowed)
	{
		int			own = -1;
		int64		carried = 0;

		if (r != NULL && r->credits_u > 0 && r->credits_bucket >= 0 && r->credits_bucket < CREDIT_BUCKETS &&
			c->buckets[r->credits_bucket].epoch == r->credits_epoch)
			own = r->credits_bucket;	/* the request's earlier hold, still held */
		/* the open bucket, else a free one (opened now), else the newest */
		for (int i = 0; b < 0 && i < CREDIT_BUCKETS; i++)
			if (c->buckets[i].epoch != 0 && c->buckets[i].opened > now - ttl / CREDIT_BUCKET_SPAN)
				b = i;
		for (int i = 0; b < 0 && i < CREDIT_BUCKETS; i++)
			if (c->buckets[i].epoch == 0)
			{
				b = i;
				c->buckets[i].epoch = ++c->next_epoch;
				c->buckets[i].opened = now;
				c->buckets[i].expires = 0;
				c->buckets[i].held_u = 0;
			}
		if (b < 0)
		{
			b = 0;
			for (int i = 1; i < CREDIT_BUCKETS; i++)
				if (c->buckets[i].opened > c->buckets[b].opened)
					b = i;
		}
		/*
		 * The request's earlier hold moves along into b, so that a bucket
		 * takes holds only while it is open and is released at most
		 * reservation_ttl after it closed.
		 */
		if (own >= 0 && own != b)
		{
			carried = Min(c->buckets[own].held_u, r->credits_u);
			c->buckets[own].held_u -= carried;
		}
		else if (own == b)
			carried = r->credits_u;
		c->buckets[b].held_u += (own == b) ? amount_u : carried + amount_u;
		c->buckets[b].expires = Max(c->buckets[b].expires, now + ttl);
		held += amount_u;
		if (r != NULL)
		{
			r->credits_u = carried + amount_u;
			r->credits_bucket = b;
			r->credits_epoch = c->buckets[b].epoch;
			r->expires_at = Max(r->expires_at, now + ttl);
		}
	}
	d->held_u = held;
	quota_unlock(ref);
	return d->allowed ? 1 : 0;
}

/*
 * decide
 *		One credits admission of a tenant counted in shared memory (ref),
 *		reading its mirror first if needed; the request's reservation is
 *		made or added to when admitted.  Errors with 53400 when no
 *		reservation can be made.  False when the entry was reclaimed (the
 *		caller takes the table path).
 */
static bool
decide(const QuotaRef *ref, const char *tenant, int64 amount_u, const char *rid, Oid fn, CreditDecision *d)
{
	TimestampTz now = GetCurrentTimestamp();

	for (int attempt = 0;; attempt++)
	{
		int			rc;

		if (rid == NULL)
			rc = admit(ref, amount_u, NULL, now, d);
		else
		{
			ReservationKey key;
			uint32		hash;
			LWLock	   *lock;
			Reservation *r;
			bool		found;

			reservation_key(&key, ref->incarnation, rid, strlen(rid));
			lock = reservation_lock(&key, &hash);
			LWLockAcquire(lock, LW_EXCLUSIVE);
			r = reservation_find(&key, hash, true, &found);
			if (r == NULL)
			{
				LWLockRelease(lock);
				(void) reservation_sweep(now);
				LWLockAcquire(lock, LW_EXCLUSIVE);
				r = reservation_find(&key, hash, true, &found);
			}
			if (r == NULL)
			{
				LWLockRelease(lock);
				ereport(ERROR,
						(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
						 errmsg("too many open quota reservations"),
						 errdetail("llm_usage.max_reservations (%d) reservations are open: enforce_quota() was called with a request_id that track_usage() has not settled yet.",
								   llm_usage_max_reservations),
						 errhint("Raise llm_usage.max_reservations and restart the server, or lower llm_usage.reservation_ttl.")));
			}
			if (found && r->expires_at <= now)
			{
				/* expired: what it counted stays counted (quota.c); a new one starts */
				memset(r->amount, 0, sizeof(r->amount));
				memset(r->period_start, 0, sizeof(r->period_start));
			}
			rc = admit(ref, amount_u, r, now, d);
			if (rc != 1 && !found)
				reservation_remove(&key, hash);
			LWLockRelease(lock);
		}
		if (rc == ADMIT_STALE)
			return false;
		if (rc != ADMIT_UNKNOWN)
			return true;
		if (attempt >= LOAD_ATTEMPTS)
			ereport(ERROR,
					(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
					 errmsg("could not read the credit balance of tenant \"%s\"", tenant),
					 errdetail("Its balance kept changing while it was read %d times.", LOAD_ATTEMPTS),
					 errhint("Try again.")));
		if (!load_mirror(ref, tenant, fn))
			CHECK_FOR_INTERRUPTS();
	}
}

static HeapTuple
decision_tuple(TupleDesc desc, const CreditDecision *d)
{
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, true};
	int64		rem = Max(d->balance_u - d->held_u, 0);

	values[0] = BoolGetDatum(d->allowed);
	values[1] = micro_numeric(d->balance_u);
	values[2] = micro_numeric(d->held_u);
	values[3] = micro_numeric(rem);
	values[4] = (Datum) 0;
	return heap_form_tuple(desc, values, nulls);
}

/*
 * credits_enforce_fast
 *		enforce_quota(tenant, 'credits', estimate[, request_id]) in shared
 *		memory; NULL when the call is not a credits check or must take the
 *		SQL path (bad arguments, a tenant the role may not use, not prepaid
 *		or not counted in shared memory).
 */
HeapTuple
credits_enforce_fast(FunctionCallInfo fcinfo, TupleDesc desc)
{
	text	   *type;
	char	   *tenant;
	char	   *rid = NULL;
	const SessionTenant *st;
	QuotaRef	ref;
	int64		amount_u;
	CreditDecision d;

	if (PG_ARGISNULL(1))
		return NULL;
	type = PG_GETARG_TEXT_PP(1);
	if (VARSIZE_ANY_EXHDR(type) != 7 || memcmp(VARDATA_ANY(type), "credits", 7) != 0)
		return NULL;
	if (!quota_shmem_ready() || PG_ARGISNULL(0) || PG_ARGISNULL(2))
		return NULL;
	if (PG_NARGS() > 3 && !PG_ARGISNULL(3))
	{
		rid = text_to_cstring(PG_GETARG_TEXT_PP(3));
		if (strlen(rid) == 0 || strlen(rid) > 255 || strspn(rid, " ") == strlen(rid))
			return NULL;
	}
	if (!estimate_to_micro(PG_GETARG_DATUM(2), &amount_u))
		return NULL;
	tenant = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (tenant[0] == '\0' || strlen(tenant) > QUOTA_TENANT_MAX)
		return NULL;
	st = session_cache_tenant(tenant);
	if (st == NULL || !st->prepaid)
		return NULL;
	if (!quota_shared_ref(tenant, &ref))
		return NULL;
	if (!decide(&ref, tenant, amount_u, rid, fcinfo->flinfo->fn_oid, &d))
		return NULL;
	return decision_tuple(desc, &d);
}

/*
 * llm_usage._shm_enforce_credits(tenant_id text, amount numeric, request_id text)
 *		RETURNS TABLE (allowed, quota_limit, used, remaining, resets_at)
 *		The credits admission of the SQL enforce_quota for a tenant counted
 *		in shared memory (arguments checked by the caller); no row when it
 *		is not counted there (the caller uses the table).
 */
Datum
llm_usage_shm_enforce_credits(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TupleDesc	desc;
	char	   *tenant;
	QuotaRef	ref;
	int64		amount_u;
	CreditDecision d;
	Tuplestorestate *ts;
	MemoryContext old;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tenant_id and amount must not be NULL")));
	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) || (rsinfo->allowedModes & SFRM_Materialize) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-valued function called in context that cannot accept a set")));
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	desc = CreateTupleDescCopy(desc);
	ts = tuplestore_begin_heap(true, false, work_mem);
	MemoryContextSwitchTo(old);
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = ts;
	rsinfo->setDesc = desc;

	tenant = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (!quota_shmem_ready() || !estimate_to_micro(PG_GETARG_DATUM(1), &amount_u) ||
		!quota_shared_ref(tenant, &ref))
		return (Datum) 0;
	if (decide(&ref, tenant, amount_u, PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2)),
			   fcinfo->flinfo->fn_oid, &d))
	{
		old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
		tuplestore_puttuple(ts, decision_tuple(desc, &d));
		MemoryContextSwitchTo(old);
	}
	return (Datum) 0;
}

/*
 * credits_release
 *		The credits a settled reservation held (r, a copy) given back, if
 *		its bucket was not released since.  Takes the entry's mutex; must
 *		not fail (called at commit).
 */
void
credits_release(const QuotaRef *ref, const Reservation *r)
{
	QuotaCreditBucket *b;

	if (r->credits_u <= 0 || r->credits_bucket < 0 || r->credits_bucket >= CREDIT_BUCKETS || !quota_lock(ref))
		return;
	b = &ref->entry->credits.buckets[r->credits_bucket];
	if (b->epoch == r->credits_epoch)
		b->held_u -= Min(b->held_u, r->credits_u);
	quota_unlock(ref);
}

/*
 * llm_usage._shm_credits(tenant_id text, OUT known boolean, OUT balance
 *						  numeric, OUT held numeric)
 *		The mirror of a tenant the caller may use, for tests and admins;
 *		NULL when it is not counted in shared memory.
 */
Datum
llm_usage_shm_credits(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	QuotaRef	ref;
	char	   *tenant;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	int64		held = 0;
	TimestampTz now = GetCurrentTimestamp();

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tenant = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (!quota_shmem_ready() || !quota_shared_ref(tenant, &ref) || !quota_lock(&ref))
		PG_RETURN_NULL();
	values[0] = BoolGetDatum(ref.entry->credits.known);
	for (int i = 0; i < CREDIT_BUCKETS; i++)
		if (ref.entry->credits.buckets[i].epoch != 0 && ref.entry->credits.buckets[i].expires > now)
			held += ref.entry->credits.buckets[i].held_u;
	values[1] = Int64GetDatum(ref.entry->credits.balance_u);
	quota_unlock(&ref);
	values[1] = micro_numeric(DatumGetInt64(values[1]));
	values[2] = micro_numeric(held);
	nulls[1] = !DatumGetBool(values[0]);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
