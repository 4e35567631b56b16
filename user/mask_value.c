/* Masking one value. See include/pgward/mask_value.h. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>

#include "pgward/mask_value.h"

static const char *const names[PW_MASK_N] = {
    [PW_MASK_REDACT] = "redact", [PW_MASK_PARTIAL] = "partial", [PW_MASK_HASH] = "hash",
    [PW_MASK_NULL] = "null",     [PW_MASK_EMAIL] = "email",
};

const char *pw_mask_strategy_name(enum pw_mask_strategy s)
{
	return (unsigned)s < PW_MASK_N ? names[s] : "?";
}

int pw_mask_strategy_from_name(const char *name)
{
	for (int i = 0; i < PW_MASK_N; i++)
		if (!strcmp(names[i], name))
			return i;
	return -1;
}

/* PostgreSQL's built-in type OIDs (pg_type.dat), and each one's replacement. */
enum kind { K_STRING, K_INT, K_OTHER };
static const struct {
	uint32_t oid;
	enum kind kind;
	int64_t max; /* K_INT: the largest value (a hash is reduced into [0, max]) */
	const char *redacted;
} types[] = {
    {25, K_STRING, 0, "[redacted]"},                            /* text */
    {1043, K_STRING, 0, "[redacted]"},                          /* varchar */
    {1042, K_STRING, 0, "[redacted]"},                          /* bpchar */
    {19, K_STRING, 0, "[redacted]"},                            /* name */
    {705, K_STRING, 0, "[redacted]"},                           /* unknown */
    {16, K_OTHER, 0, "f"},                                      /* bool */
    {21, K_INT, INT16_MAX, "0"},                                /* int2 */
    {23, K_INT, INT32_MAX, "0"},                                /* int4 */
    {20, K_INT, INT64_MAX, "0"},                                /* int8 */
    {26, K_INT, INT32_MAX, "0"},                                /* oid */
    {700, K_OTHER, 0, "0"},                                     /* float4 */
    {701, K_OTHER, 0, "0"},                                     /* float8 */
    {1700, K_OTHER, 0, "0"},                                    /* numeric */
    {1082, K_OTHER, 0, "1970-01-01"},                           /* date */
    {1083, K_OTHER, 0, "00:00:00"},                             /* time */
    {1114, K_OTHER, 0, "1970-01-01 00:00:00"},                  /* timestamp */
    {1184, K_OTHER, 0, "1970-01-01 00:00:00+00"},               /* timestamptz */
    {1186, K_OTHER, 0, "00:00:00"},                             /* interval */
    {2950, K_OTHER, 0, "00000000-0000-0000-0000-000000000000"}, /* uuid */
    {114, K_OTHER, 0, "null"},                                  /* json */
    {3802, K_OTHER, 0, "null"},                                 /* jsonb */
    {869, K_OTHER, 0, "0.0.0.0"},                               /* inet */
    {650, K_OTHER, 0, "0.0.0.0/32"},                            /* cidr */
    {17, K_OTHER, 0, "\\x"},                                    /* bytea */
};

static int type_index(uint32_t oid)
{
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (types[i].oid == oid)
			return (int)i;
	return -1;
}

static long put(char *out, size_t cap, const char *s, size_t n)
{
	if (n + 1 > cap)
		return -2;
	memcpy(out, s, n);
	out[n] = 0;
	return (long)n;
}

/* A type pgward has no replacement for: NULL, the one value every type has. */
static long redact(int t, char *out, size_t cap)
{
	return t < 0 ? -1 : put(out, cap, types[t].redacted, strlen(types[t].redacted));
}

/* HMAC-SHA-256 of v under key into mac. The MAC context is kept per thread (each worker masks
 * its own sessions' rows; a context is not shareable) with the key it was made for: a row's
 * hash then costs the hashing alone, not a fetch of the algorithm under OpenSSL's locks. */
struct mac_cache {
	EVP_MAC *alg;
	EVP_MAC_CTX *ctx;
	uint8_t kept[PW_MASK_KEY_MAX];
	size_t kept_len;
};
static __thread struct mac_cache mc;
static pthread_key_t mc_key;
static pthread_once_t mc_once = PTHREAD_ONCE_INIT;

static void mc_free(void *p)
{
	struct mac_cache *c = p;
	EVP_MAC_CTX_free(c->ctx);
	EVP_MAC_free(c->alg);
	OPENSSL_cleanse(c->kept, sizeof(c->kept));
	memset(c, 0, sizeof(*c));
}

static void mc_init(void)
{
	pthread_key_create(&mc_key, mc_free);
}

static bool hmac(const struct pw_mask_key *key, const uint8_t *v, size_t n, uint8_t mac[32])
{
	EVP_MAC_CTX *ctx = mc.ctx;
	uint8_t *kept = mc.kept;
	if (!mc.alg) {
		pthread_once(&mc_once, mc_init);
		if (!(mc.alg = EVP_MAC_fetch(NULL, "HMAC", NULL)))
			return false;
		pthread_setspecific(mc_key, &mc); /* freed when the thread ends */
	}
	size_t kept_len = mc.kept_len;
	if (!ctx || kept_len != key->len || memcmp(kept, key->k, key->len) != 0) {
		OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0),
		                       OSSL_PARAM_construct_end()};
		EVP_MAC_CTX_free(ctx);
		mc.ctx = ctx = EVP_MAC_CTX_new(mc.alg);
		mc.kept_len = 0;
		if (!ctx || !EVP_MAC_init(ctx, key->k, key->len, params))
			return false;
		memcpy(kept, key->k, key->len);
		mc.kept_len = key->len;
	} else if (!EVP_MAC_init(ctx, NULL, 0, NULL)) { /* the same key, a new message */
		return false;
	}
	size_t ml = 0;
	return EVP_MAC_update(ctx, v, n) && EVP_MAC_final(ctx, mac, &ml, 32) && ml == 32;
}

static long hash(const struct pw_mask_key *key, int t, const uint8_t *v, size_t n, char *out,
                 size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	uint8_t mac[32];
	if (t < 0 || !key || !key->len || !hmac(key, v, n, mac))
		return t < 0 ? -1 : redact(t, out, cap);
	char buf[80];
	if (types[t].kind == K_STRING) {
		for (int i = 0; i < 32; i++) {
			buf[2 * i] = hex[mac[i] >> 4];
			buf[2 * i + 1] = hex[mac[i] & 15];
		}
		return put(out, cap, buf, 64);
	}
	if (types[t].kind == K_INT) {
		uint64_t x = 0;
		for (int i = 0; i < 8; i++)
			x = x << 8 | mac[i];
		int l = snprintf(buf, sizeof(buf), "%" PRId64,
		                 (int64_t)(x % ((uint64_t)types[t].max + 1)));
		return put(out, cap, buf, (size_t)l);
	}
	if (types[t].oid == 2950) { /* uuid */
		int o = 0;
		for (int i = 0; i < 16; i++) {
			if (i == 4 || i == 6 || i == 8 || i == 10)
				buf[o++] = '-';
			buf[o++] = hex[mac[i] >> 4];
			buf[o++] = hex[mac[i] & 15];
		}
		return put(out, cap, buf, (size_t)o);
	}
	return redact(t, out, cap); /* no deterministic form that still reads as this type */
}

/* The last keep characters (UTF-8 code points) after "****"; none of a value that short. */
static long partial(int keep, const uint8_t *v, size_t n, char *out, size_t cap)
{
	size_t k = n;
	for (int c = 0; c < keep && k > 0; c++) {
		k--;
		while (k > 0 && (v[k] & 0xC0) == 0x80)
			k--;
	}
	if (k == 0) /* no longer than what would be kept: all of it would show */
		k = n;
	if (4 + (n - k) + 1 > cap)
		return -2;
	memcpy(out, "****", 4);
	memcpy(out + 4, v + k, n - k);
	out[4 + n - k] = 0;
	return (long)(4 + n - k);
}

long pw_mask_text(enum pw_mask_strategy s, int keep, const struct pw_mask_key *key,
                  uint32_t type_oid, const uint8_t *v, size_t n, char *out, size_t cap)
{
	int t = type_index(type_oid);
	bool string = t >= 0 && types[t].kind == K_STRING;
	switch (s) {
	case PW_MASK_NULL:
		return -1;
	case PW_MASK_HASH:
		return hash(key, t, v, n, out, cap);
	case PW_MASK_PARTIAL:
		if (string && keep > 0)
			return partial(keep, v, n, out, cap);
		break;
	case PW_MASK_EMAIL: {
		const uint8_t *at = string ? memchr(v, '@', n) : NULL;
		if (at && at + 1 < v + n && !memchr(at + 1, '@', (size_t)(v + n - at - 1))) {
			size_t dl = (size_t)(v + n - at);
			if (4 + dl + 1 > cap)
				return -2;
			memcpy(out, "****", 4);
			memcpy(out + 4, at, dl);
			out[4 + dl] = 0;
			return (long)(4 + dl);
		}
		break;
	}
	default:
		break;
	}
	return redact(t, out, cap);
}
