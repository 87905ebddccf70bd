/*-------------------------------------------------------------------------
 *
 * secret.c
 *	  Plaintext secrets in process memory: a provider key between its
 *	  decryption and the request that needs it, and the request headers that
 *	  carry it (our copies and libcurl's).
 *
 * Whoever holds such a buffer registers it at once and releases it when it
 * is done, on every path (PG_FINALLY on errors); releasing wipes it.  Paths
 * that never unwind (FATAL on SIGTERM, exit on postmaster death) are covered
 * by an exit callback that wipes every buffer still registered.  It is a
 * before_shmem_exit callback, registered after InitPostgres, so it runs
 * before ShutdownPostgres frees the transaction's and portals' memory,
 * where a backend's copies live.  So a registered buffer must be released
 * before its memory is freed.
 *
 * The registry is a small fixed array: registering never allocates.  More
 * than SECRET_SLOTS live secrets at once is a programming error (ERROR).
 * No locks, no transaction state.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "storage/ipc.h"

#include "llm_usage.h"

#define SECRET_SLOTS 32

typedef struct SecretSlot
{
	void	   *ptr;
	size_t		len;
} SecretSlot;

static SecretSlot slots[SECRET_SLOTS];
static bool exit_callback_registered = false;

/*
 * secret_release_all
 *		Wipe and forget every registered secret (their memory must still be
 *		allocated).  Never raises an ERROR.
 */
void
secret_release_all(void)
{
	for (int i = 0; i < SECRET_SLOTS; i++)
	{
		if (slots[i].ptr != NULL)
			explicit_bzero(slots[i].ptr, slots[i].len);
		slots[i].ptr = NULL;
		slots[i].len = 0;
	}
}

/* process exit (any path): wipe what is still registered */
static void
wipe_all_at_exit(int code, Datum arg)
{
	secret_release_all();
}

/*
 * secret_register
 *		Remember len bytes at ptr as a live secret (wiped at release or at
 *		process exit).
 */
void
secret_register(void *ptr, size_t len)
{
	if (ptr == NULL || len == 0)
		return;
	if (!exit_callback_registered)
	{
		before_shmem_exit(wipe_all_at_exit, (Datum) 0);
		exit_callback_registered = true;
	}
	for (int i = 0; i < SECRET_SLOTS; i++)
	{
		if (slots[i].ptr == NULL)
		{
			slots[i].ptr = ptr;
			slots[i].len = len;
			return;
		}
	}
	explicit_bzero(ptr, len);
	elog(ERROR, "llm_usage: too many live secrets");
}

/* secret_register for a NUL-terminated string (its bytes and the NUL) */
void
secret_register_string(char *s)
{
	if (s != NULL)
		secret_register(s, strlen(s) + 1);
}

/*
 * secret_release
 *		Wipe the secret at ptr (the length it was registered with) and forget
 *		it.  Unregistered pointers are ignored.  Never raises an ERROR.
 */
void
secret_release(void *ptr)
{
	if (ptr == NULL)
		return;
	for (int i = 0; i < SECRET_SLOTS; i++)
	{
		if (slots[i].ptr == ptr)
		{
			explicit_bzero(ptr, slots[i].len);
			slots[i].ptr = NULL;
			slots[i].len = 0;
			return;
		}
	}
}

/* how many secrets are registered (for tests of the release paths) */
int
secret_live_count(void)
{
	int			n = 0;

	for (int i = 0; i < SECRET_SLOTS; i++)
		if (slots[i].ptr != NULL)
			n++;
	return n;
}
