/*-------------------------------------------------------------------------
 *
 * crypto.c
 *	  Envelope encryption of provider keys with AES-256-GCM (OpenSSL), and
 *	  the master keys that wrap them.
 *
 * Each provider key is encrypted with its own random 256-bit data key
 * (DEK); the DEK is encrypted ("wrapped") with the current master key.
 * Both use a fresh 96-bit random nonce and bind the key's row as
 * associated data ("llm_usage/provider_key/<id>/<tenant>/<provider>"), so a
 * ciphertext copied to another row does not decrypt.  Stored form of each:
 * format byte (1) || nonce (12) || ciphertext || tag (16).
 *
 * Master keys come from llm_usage.master_key_file: one key (64 hex digits
 * or base64 of 32 bytes) is version 1; lines "version:key" give several
 * versions, the highest being current.  The file must be a regular file
 * owned by the server's OS user with no group or other permissions.
 *
 * Key memory.  The file is read by the process that needs a master key,
 * when it needs one (a backend sealing, re-wrapping or reporting; the
 * collector decrypting), never by the postmaster (which only checks the
 * file's type, owner and mode at start and logs a problem), so no backend
 * inherits key bytes.  Each operation maps a private "key ring" (the file's
 * bytes, the parsed master keys, the data key) with madvise(MADV_DONTDUMP)
 * and MADV_DONTFORK, reads the file into it, does its work and wipes and
 * unmaps it on every way out, errors included (PG_FINALLY); a process that
 * exits in the middle wipes it from an exit callback.  Reading the file for
 * every operation is what makes rotation safe across sessions: a backend
 * that was open before rotate_master_key() seals new keys under the newest
 * version in the file, never under one it remembered.  Key bytes are never
 * in a GUC, a table, a log line or an error message.
 *
 * No SQL-callable function here ever returns a plaintext key or DEK.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/base64.h"
#include "fmgr.h"
#include "funcapi.h"
#include "storage/ipc.h"
#include "access/htup_details.h"
#include "utils/builtins.h"

#include "llm_usage.h"

#define MAX_MASTER_KEYS 32
#define NONCE_BYTES 12
#define TAG_BYTES 16
#define SEALED_FORMAT 1

typedef struct MasterKey
{
	int			version;
	unsigned char key[LLM_USAGE_KEY_BYTES];
} MasterKey;

#define KEY_FILE_MAX 8192

/* everything secret an operation needs, in memory of its own (see header) */
typedef struct KeyRing
{
	char		file[KEY_FILE_MAX];	/* the master key file's bytes */
	unsigned char decoded[128];	/* base64 decoding scratch */
	int			nkeys;
	MasterKey	keys[MAX_MASTER_KEYS];
	unsigned char dek[LLM_USAGE_KEY_BYTES];	/* a provider key's data key */
	unsigned char unwrapped[LLM_USAGE_KEY_BYTES + 64];	/* gcm_open output */
} KeyRing;

static KeyRing *ring = NULL;	/* mapped only while an operation runs */
static size_t ring_size = 0;
static bool ring_exit_registered = false;
static char master_problem[256] = "llm_usage.master_key_file is not set";

PG_FUNCTION_INFO_V1(llm_usage_seal_key);
PG_FUNCTION_INFO_V1(llm_usage_rewrap_key);
PG_FUNCTION_INFO_V1(llm_usage_master_key_status);

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* decode 64 hex digits or base64 of 32 bytes (scratch: the ring's); false if neither */
static bool
decode_key(const char *s, int len, unsigned char *out)
{
	unsigned char *buf = ring->decoded;

	if (len == 2 * LLM_USAGE_KEY_BYTES)
	{
		for (int i = 0; i < LLM_USAGE_KEY_BYTES; i++)
		{
			int			hi = hexval(s[2 * i]);
			int			lo = hexval(s[2 * i + 1]);

			if (hi < 0 || lo < 0)
				return false;
			out[i] = (unsigned char) (hi * 16 + lo);
		}
		return true;
	}
	else
	{
		int			n;

		if (len > 64 || pg_b64_dec_len(len) > (int) sizeof(ring->decoded))
			return false;
		n = pg_b64_decode(s, len, (char *) buf, sizeof(ring->decoded));
		if (n != LLM_USAGE_KEY_BYTES)
		{
			explicit_bzero(buf, sizeof(ring->decoded));
			return false;
		}
		memcpy(out, buf, LLM_USAGE_KEY_BYTES);
		explicit_bzero(buf, sizeof(ring->decoded));
		return true;
	}
}

/*
 * open_key_file
 *		Open the master key file and check that it is a regular file owned by
 *		the server's OS user with no group or other permissions.  Returns the
 *		descriptor, or -1 with the reason in problem.  Reads nothing and never
 *		ereports, so the postmaster uses it too.
 */
static int
open_key_file(char *problem, size_t problem_size, off_t *size)
{
	const char *path = llm_usage_master_key_file;
	struct stat st;
	int			fd;

	if (path == NULL || path[0] == '\0')
	{
		snprintf(problem, problem_size, "llm_usage.master_key_file is not set");
		return -1;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
	{
		snprintf(problem, problem_size, "could not open master key file \"%s\": %m", path);
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
	{
		close(fd);
		snprintf(problem, problem_size, "master key file \"%s\" is not a regular file", path);
		return -1;
	}
	if (st.st_uid != geteuid())
	{
		close(fd);
		snprintf(problem, problem_size, "master key file \"%s\" is not owned by the server's OS user", path);
		return -1;
	}
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
	{
		close(fd);
		snprintf(problem, problem_size, "master key file \"%s\" has group or other permissions (mode %04o; it must be 0600)",
				 path, (unsigned) (st.st_mode & 07777));
		return -1;
	}
	if (st.st_size >= KEY_FILE_MAX)
	{
		close(fd);
		snprintf(problem, problem_size, "master key file \"%s\" is larger than 8 kB", path);
		return -1;
	}
	*size = st.st_size;
	return fd;
}

/*
 * read_master_key_file
 *		Read and parse the file into the ring (which must be open); on failure
 *		fill problem, leave no key in the ring and return -1.  Never ereports.
 */
static int
read_master_key_file(char *problem, size_t problem_size)
{
	const char *path = llm_usage_master_key_file;
	MasterKey  *keys = ring->keys;
	char	   *buf = ring->file;
	off_t		size;
	int			fd;
	ssize_t		n;
	int			count = 0;
	char	   *line;
	char	   *save = NULL;

	ring->nkeys = 0;
	fd = open_key_file(problem, problem_size, &size);
	if (fd < 0)
		return -1;
	n = read(fd, buf, KEY_FILE_MAX - 1);
	close(fd);
	if (n < 0 || n == KEY_FILE_MAX - 1)
	{
		explicit_bzero(buf, KEY_FILE_MAX);
		snprintf(problem, problem_size, "could not read master key file \"%s\" (or it is larger than 8 kB)", path);
		return -1;
	}
	buf[n] = '\0';

	for (line = strtok_r(buf, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save))
	{
		char	   *p = line;
		char	   *end;
		char	   *colon;
		int			version = 1;

		while (*p == ' ' || *p == '\t' || *p == '\r')
			p++;
		end = p + strlen(p);
		while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
			end--;
		if (end == p || *p == '#')
			continue;
		colon = memchr(p, ':', end - p);
		if (colon != NULL)
		{
			char	   *vend;
			long		v = strtol(p, &vend, 10);

			if (vend != colon || v < 1 || v > 1000000)
			{
				count = -1;
				snprintf(problem, problem_size, "master key file \"%s\": a line does not start with a version number and ':'", path);
				break;
			}
			version = (int) v;
			p = colon + 1;
		}
		else if (count > 0)
		{
			count = -1;
			snprintf(problem, problem_size, "master key file \"%s\": with several keys, each line must be \"version:key\"", path);
			break;
		}
		if (count >= MAX_MASTER_KEYS)
		{
			count = -1;
			snprintf(problem, problem_size, "master key file \"%s\" has more than %d keys", path, MAX_MASTER_KEYS);
			break;
		}
		for (int i = 0; i < count; i++)
			if (keys[i].version == version)
			{
				count = -1;
				snprintf(problem, problem_size, "master key file \"%s\" has version %d twice", path, version);
				break;
			}
		if (count < 0)
			break;
		if (!decode_key(p, (int) (end - p), keys[count].key))
		{
			count = -1;
			snprintf(problem, problem_size, "master key file \"%s\": a key is not 256 bits as 64 hex digits or base64", path);
			break;
		}
		keys[count].version = version;
		count++;
	}
	explicit_bzero(buf, KEY_FILE_MAX);
	if (count == 0)
	{
		snprintf(problem, problem_size, "master key file \"%s\" holds no key", path);
		return -1;
	}
	if (count < 0)
	{
		explicit_bzero(keys, sizeof(MasterKey) * MAX_MASTER_KEYS);
		return -1;
	}
	ring->nkeys = count;
	return count;
}

/* wipe and unmap the ring; safe to call when it is not mapped */
static void
ring_close(void)
{
	if (ring == NULL)
		return;
	explicit_bzero(ring, sizeof(KeyRing));
	munmap(ring, ring_size);
	ring = NULL;
}

/* exit callback: a process that exits during an operation wipes its ring */
static void
ring_wipe_at_exit(int code, Datum arg)
{
	ring_close();
}

/*
 * ring_open
 *		Map a fresh key ring, excluded from core dumps and from child
 *		processes, and read the master key file into it.  Returns false
 *		(ring unmapped, reason in master_problem) when the file is not
 *		usable.  The caller closes the ring in PG_FINALLY.
 */
static bool
ring_open(void)
{
	char		problem[256];

	ring_close();
	ring_size = TYPEALIGN(sysconf(_SC_PAGESIZE), sizeof(KeyRing));
	ring = mmap(NULL, ring_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ring == MAP_FAILED)
	{
		ring = NULL;
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not map memory for the llm_usage master keys: %m")));
	}
#ifdef MADV_DONTDUMP
	(void) madvise(ring, ring_size, MADV_DONTDUMP);
#endif
#ifdef MADV_DONTFORK
	(void) madvise(ring, ring_size, MADV_DONTFORK);
#endif
	if (!ring_exit_registered)
	{
		on_proc_exit(ring_wipe_at_exit, (Datum) 0);
		ring_exit_registered = true;
	}
	if (read_master_key_file(problem, sizeof(problem)) < 0)
	{
		strlcpy(master_problem, problem, sizeof(master_problem));
		ring_close();
		return false;
	}
	master_problem[0] = '\0';
	return true;
}

/*
 * llm_usage_check_master_key_file
 *		At server start, in the postmaster: log a WARNING when the master key
 *		file is not usable (missing, not a regular file, wrong owner, too
 *		open).  Reads no key: the server starts anyway, and the key
 *		functions fail with the reason.
 */
void
llm_usage_check_master_key_file(void)
{
	char		problem[256];
	off_t		size;
	int			fd;

	if (llm_usage_master_key_file == NULL || llm_usage_master_key_file[0] == '\0')
		return;
	fd = open_key_file(problem, sizeof(problem), &size);
	if (fd >= 0)
	{
		close(fd);
		return;
	}
	ereport(WARNING,
			(errcode(ERRCODE_CONFIG_FILE_ERROR),
			 errmsg("llm_usage master key not loaded: %s", problem),
			 errhint("Provider keys cannot be stored or used until this is fixed.")));
}

static void
master_key_error(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("llm_usage master key is not loaded"),
			 errdetail("%c%s.", pg_toupper((unsigned char) master_problem[0]), master_problem + 1),
			 errhint("Set llm_usage.master_key_file to a file holding a 256-bit key (64 hex digits or base64), owned by the server's OS user with mode 0600.")));
}

/* open the ring or raise 55000 with the reason */
static void
ring_require(void)
{
	if (!ring_open())
		master_key_error();
}

/* the newest master key in the (open) ring */
static const MasterKey *
current_master(void)
{
	const MasterKey *best = NULL;

	for (int i = 0; i < ring->nkeys; i++)
		if (best == NULL || ring->keys[i].version > best->version)
			best = &ring->keys[i];
	return best;
}

/* master key "version" from the (open) ring, or 22000 */
static const MasterKey *
find_master(int version)
{
	for (int i = 0; i < ring->nkeys; i++)
		if (ring->keys[i].version == version)
			return &ring->keys[i];
	ereport(ERROR,
			(errcode(ERRCODE_DATA_EXCEPTION),
			 errmsg("master key version %d is not in llm_usage.master_key_file", version),
			 errhint("Keep every version that stored keys still use in the file until rotate_master_key() has re-wrapped them.")));
	return NULL;				/* keep compiler quiet */
}

/* AES-256-GCM encrypt; result is a bytea in the stored form */
static bytea *
gcm_seal(const unsigned char *key, const unsigned char *pt, int ptlen, const char *aad)
{
	bytea	   *out = palloc(VARHDRSZ + 1 + NONCE_BYTES + ptlen + TAG_BYTES);
	unsigned char *p = (unsigned char *) VARDATA(out);
	EVP_CIPHER_CTX *ctx;
	int			len = 0;
	int			len2 = 0;
	bool		ok;

	p[0] = SEALED_FORMAT;
	if (!pg_strong_random(p + 1, NONCE_BYTES))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random nonce")));
	ctx = EVP_CIPHER_CTX_new();
	ok = ctx != NULL &&
		EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_BYTES, NULL) == 1 &&
		EVP_EncryptInit_ex(ctx, NULL, NULL, key, p + 1) == 1 &&
		EVP_EncryptUpdate(ctx, NULL, &len, (const unsigned char *) aad, (int) strlen(aad)) == 1 &&
		EVP_EncryptUpdate(ctx, p + 1 + NONCE_BYTES, &len, pt, ptlen) == 1 &&
		EVP_EncryptFinal_ex(ctx, p + 1 + NONCE_BYTES + len, &len2) == 1 &&
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_BYTES, p + 1 + NONCE_BYTES + ptlen) == 1;
	EVP_CIPHER_CTX_free(ctx);
	if (!ok || len + len2 != ptlen)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("AES-256-GCM encryption failed")));
	SET_VARSIZE(out, VARHDRSZ + 1 + NONCE_BYTES + ptlen + TAG_BYTES);
	return out;
}

/* AES-256-GCM decrypt into out (at least the ciphertext length); -1 if it does not verify */
static int
gcm_open(const unsigned char *key, bytea *sealed, const char *aad, unsigned char *out)
{
	const unsigned char *p = (const unsigned char *) VARDATA_ANY(sealed);
	int			total = VARSIZE_ANY_EXHDR(sealed);
	int			ctlen = total - 1 - NONCE_BYTES - TAG_BYTES;
	EVP_CIPHER_CTX *ctx;
	int			len = 0;
	int			len2 = 0;
	bool		ok;

	if (ctlen < 0 || p[0] != SEALED_FORMAT)
		return -1;
	ctx = EVP_CIPHER_CTX_new();
	ok = ctx != NULL &&
		EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_BYTES, NULL) == 1 &&
		EVP_DecryptInit_ex(ctx, NULL, NULL, key, p + 1) == 1 &&
		EVP_DecryptUpdate(ctx, NULL, &len, (const unsigned char *) aad, (int) strlen(aad)) == 1 &&
		EVP_DecryptUpdate(ctx, out, &len, p + 1 + NONCE_BYTES, ctlen) == 1 &&
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_BYTES,
							(void *) (p + 1 + NONCE_BYTES + ctlen)) == 1 &&
		EVP_DecryptFinal_ex(ctx, out + len, &len2) == 1;
	EVP_CIPHER_CTX_free(ctx);
	if (!ok)
	{
		explicit_bzero(out, ctlen);
		return -1;
	}
	return len + len2;
}

static char *
dek_aad(const char *aad, int version)
{
	return psprintf("%s/dek/master/%d", aad, version);
}

/* unwrap a DEK into ring->dek (the ring is open); 22000 if it does not verify */
static void
unwrap_dek(bytea *wrapped, int version, const char *aad)
{
	const MasterKey *mk = find_master(version);
	unsigned char *buf = ring->unwrapped;
	int			n = -1;

	if (VARSIZE_ANY_EXHDR(wrapped) <= (int) sizeof(ring->unwrapped))
		n = gcm_open(mk->key, wrapped, dek_aad(aad, version), buf);
	if (n != LLM_USAGE_KEY_BYTES)
	{
		explicit_bzero(buf, sizeof(ring->unwrapped));
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("could not decrypt a stored provider key"),
				 errdetail("The data key does not verify under master key version %d for this key row.", version)));
	}
	memcpy(ring->dek, buf, LLM_USAGE_KEY_BYTES);
	explicit_bzero(buf, sizeof(ring->unwrapped));
}

/*
 * llm_usage_decrypt_provider_key
 *		The plaintext key of one stored row, NUL-terminated, in the current
 *		memory context; the caller zeroes it as soon as it is done.  Reads
 *		the master key file (see the header); the ring is wiped on every
 *		way out.
 */
char *
llm_usage_decrypt_provider_key(bytea *ciphertext, bytea *wrapped_dek, int master_version, const char *aad)
{
	int			len = VARSIZE_ANY_EXHDR(ciphertext);
	unsigned char *out = palloc0(len + 1);
	volatile int n;

	ring_require();
	PG_TRY();
	{
		unwrap_dek(wrapped_dek, master_version, aad);
		n = gcm_open(ring->dek, ciphertext, aad, out);
	}
	PG_FINALLY();
	{
		ring_close();
	}
	PG_END_TRY();
	if (n < 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("could not decrypt a stored provider key"),
				 errdetail("The ciphertext does not verify for this key row.")));
	out[n] = '\0';
	return (char *) out;
}

/* the function's composite result from values and nulls */
static Datum
form_result(FunctionCallInfo fcinfo, Datum *values, bool *nulls)
{
	TupleDesc	tupdesc;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls));
}

/*
 * llm_usage._seal_key(api_key text, aad text,
 *                     OUT key_ciphertext bytea, OUT wrapped_dek bytea, OUT master_key_version int)
 *		Encrypt a provider key under a new DEK wrapped by the newest master
 *		key in the file, read now.
 */
Datum
llm_usage_seal_key(PG_FUNCTION_ARGS)
{
	text	   *api_key = PG_GETARG_TEXT_PP(0);
	char	   *aad = text_to_cstring(PG_GETARG_TEXT_PP(1));
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	ring_require();
	PG_TRY();
	{
		const MasterKey *mk = current_master();

		if (!pg_strong_random(ring->dek, LLM_USAGE_KEY_BYTES))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate a random data key")));
		values[0] = PointerGetDatum(gcm_seal(ring->dek, (unsigned char *) VARDATA_ANY(api_key),
											 VARSIZE_ANY_EXHDR(api_key), aad));
		values[1] = PointerGetDatum(gcm_seal(mk->key, ring->dek, LLM_USAGE_KEY_BYTES, dek_aad(aad, mk->version)));
		values[2] = Int32GetDatum(mk->version);
	}
	PG_FINALLY();
	{
		ring_close();
	}
	PG_END_TRY();
	PG_RETURN_DATUM(form_result(fcinfo, values, nulls));
}

/*
 * llm_usage._rewrap_key(wrapped_dek bytea, master_key_version int, aad text,
 *                       OUT wrapped_dek bytea, OUT master_key_version int)
 *		Re-wrap a DEK under the newest master key in the file; the provider
 *		key's own ciphertext does not change.
 */
Datum
llm_usage_rewrap_key(PG_FUNCTION_ARGS)
{
	bytea	   *wrapped = PG_GETARG_BYTEA_PP(0);
	int			version = PG_GETARG_INT32(1);
	char	   *aad = text_to_cstring(PG_GETARG_TEXT_PP(2));
	Datum		values[2];
	bool		nulls[2] = {false, false};

	ring_require();
	PG_TRY();
	{
		const MasterKey *mk = current_master();

		unwrap_dek(wrapped, version, aad);
		values[0] = PointerGetDatum(gcm_seal(mk->key, ring->dek, LLM_USAGE_KEY_BYTES, dek_aad(aad, mk->version)));
		values[1] = Int32GetDatum(mk->version);
	}
	PG_FINALLY();
	{
		ring_close();
	}
	PG_END_TRY();
	PG_RETURN_DATUM(form_result(fcinfo, values, nulls));
}

/*
 * llm_usage._master_key_status(reload boolean,
 *                              OUT loaded boolean, OUT current_version int, OUT problem text)
 *		Whether the master key file is usable now (it is read on every call;
 *		"reload" is kept for compatibility), its newest version, or what is
 *		wrong.  Never any key material.
 */
Datum
llm_usage_master_key_status(PG_FUNCTION_ARGS)
{
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	int			best = 0;
	bool		loaded;

	loaded = ring_open();
	if (loaded)
	{
		best = current_master()->version;
		ring_close();
	}
	values[0] = BoolGetDatum(loaded);
	values[1] = Int32GetDatum(best);
	nulls[1] = !loaded;
	values[2] = CStringGetTextDatum(master_problem);
	nulls[2] = (master_problem[0] == '\0');
	PG_RETURN_DATUM(form_result(fcinfo, values, nulls));
}

/*
 * llm_usage_hmac_sha256_hex
 *		Lower-case hex HMAC-SHA256 of data under key (palloc'd), for signing
 *		alert webhooks.
 */
char *
llm_usage_hmac_sha256_hex(const char *key, const char *data, size_t len)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	char	   *hex;

	if (HMAC(EVP_sha256(), key, (int) strlen(key), (const unsigned char *) data, len, mac, &maclen) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("HMAC-SHA256 failed")));
	hex = palloc(maclen * 2 + 1);
	for (unsigned int i = 0; i < maclen; i++)
		snprintf(hex + 2 * i, 3, "%02x", mac[i]);
	return hex;
}
