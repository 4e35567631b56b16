/* JWT verification for JWT-as-password logins: JWKS loading (jansson + OpenSSL 3, each JWK
 * turned into a PEM public key for libjwt) and token checks around libjwt 1.10's jwt_decode.
 * libjwt 1.10 trusts the token's header to choose the algorithm and would, for instance,
 * HMAC-verify with an RSA PEM used as the secret; so the header is parsed and judged here, the
 * key is chosen here, and libjwt is only asked to check one signature with one key whose type
 * fits. Claims are then read from our own strict parse of the payload. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include "pgward/jwt.h"
#include "pgward/log.h"

#define MAX_KEYS       64
#define MAX_JWKS_BYTES (1024 * 1024)
#define MIN_RSA_BITS   2048
#define MIN_HS_BYTES   32 /* RFC 7518 3.2: an HS256 key must be at least as long as the hash */
#define EC_COORD       32 /* P-256 field element */
#define HS256_LEN      32
#define CLAIM_LIMIT    (1LL << 62) /* |NumericDate| bound: keeps "+ leeway" from overflowing */
#define SHOW           72          /* token text shown in a reason, at most */

/* The only algorithms we let through; each is bound to one key type. */
enum alg { ALG_RS256, ALG_ES256, ALG_HS256 };
static const char *const alg_name[] = {"RS256", "ES256", "HS256"};
static const char *const alg_kty[] = {"RSA", "EC", "oct"};
static const jwt_alg_t alg_libjwt[] = {JWT_ALG_RS256, JWT_ALG_ES256, JWT_ALG_HS256};

struct jwk {
	enum alg alg;
	bool has_kid;
	char kid[128];
	unsigned char *material; /* PEM SubjectPublicKeyInfo text, or the raw HS256 secret */
	size_t len;
	size_t sig_len; /* exact signature size this key produces */
};

struct pw_jwt_keys {
	bool allow_hs256;
	int n;
	struct jwk keys[];
};

/* ---- small helpers ---- */

static int b64url_val(unsigned char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '-')
		return 62;
	if (ch == '_')
		return 63;
	return -1;
}

/* Strict base64url as JWS uses it (RFC 7515 section 2): no padding, no whitespace, and unused
 * trailing bits zero, so each value has one spelling. out must hold n * 3 / 4 bytes. Returns
 * the decoded length or -1. */
static long b64url_decode(const char *in, size_t n, uint8_t *out)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t i, o = 0;

	if (n % 4 == 1)
		return -1;
	for (i = 0; i < n; i++) {
		int v = b64url_val((unsigned char)in[i]);

		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	return acc ? -1 : (long)o;
}

/* Decode into a fresh buffer (freed by the caller); NULL if not strict base64url. */
static uint8_t *b64url_dup(const char *in, size_t n, size_t *outlen)
{
	uint8_t *buf = malloc(n * 3 / 4 + 1);
	long got;

	if (!buf)
		return NULL;
	got = b64url_decode(in, n, buf);
	if (got < 0) {
		free(buf);
		return NULL;
	}
	*outlen = (size_t)got;
	return buf;
}

/* Token text ends up in the server log: keep printable ASCII, cut long values. */
static const char *show(const char *s, char *buf, size_t cap)
{
	size_t i, o = 0;

	for (i = 0; s[i] && o + 4 < cap && i < SHOW; i++)
		buf[o++] = (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"') ? s[i] : '?';
	if (s[i]) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

static const char *iso8601(long long t, char buf[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm) || !strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, 32, "@%lld", t);
	return buf;
}

/* Copy a JSON string into a fixed field; refuse rather than truncate. */
static int copy_str(char *dst, size_t cap, json_t *v)
{
	size_t n = json_string_length(v);

	if (n >= cap || memchr(json_string_value(v), '\0', n))
		return -1;
	memcpy(dst, json_string_value(v), n + 1);
	return 0;
}

/* ---- JWKS ---- */

static unsigned char *pem_of(EVP_PKEY *pk, size_t *len)
{
	BIO *b = BIO_new(BIO_s_mem());
	unsigned char *out = NULL;
	char *data;
	long n;

	if (b && PEM_write_bio_PUBKEY(b, pk) == 1 && (n = BIO_get_mem_data(b, &data)) > 0 &&
	    (out = malloc((size_t)n))) {
		memcpy(out, data, (size_t)n);
		*len = (size_t)n;
	}
	BIO_free(b);
	return out;
}

static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM *params)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY *pk = NULL;

	if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1)
		pk = NULL;
	EVP_PKEY_CTX_free(ctx);
	return pk;
}

/* Fetch a base64url member of a JWK; reason in err on failure. */
static uint8_t *jwk_bytes(json_t *jwk, const char *member, size_t *len, const char *pfx, char *err,
                          size_t errlen)
{
	json_t *v = json_object_get(jwk, member);
	uint8_t *b;

	if (!json_is_string(v)) {
		pw_errf(err, errlen, "%s: \"%s\" missing or not a string", pfx, member);
		return NULL;
	}
	b = b64url_dup(json_string_value(v), json_string_length(v), len);
	if (!b || *len == 0) {
		pw_errf(err, errlen, "%s: \"%s\" is not base64url", pfx, member);
		free(b);
		return NULL;
	}
	return b;
}

static int load_rsa(json_t *jwk, struct jwk *out, const char *pfx, char *err, size_t errlen)
{
	size_t nlen = 0, elen = 0;
	uint8_t *n = jwk_bytes(jwk, "n", &nlen, pfx, err, errlen);
	uint8_t *e = n ? jwk_bytes(jwk, "e", &elen, pfx, err, errlen) : NULL;
	BIGNUM *bn = NULL, *be = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY *pk = NULL;
	int rc = -1, bits;

	if (!e)
		goto out;
	bn = BN_bin2bn(n, (int)nlen, NULL);
	be = BN_bin2bn(e, (int)elen, NULL);
	bld = OSSL_PARAM_BLD_new();
	if (!bn || !be || !bld) {
		pw_errf(err, errlen, "%s: out of memory", pfx);
		goto out;
	}
	bits = BN_num_bits(bn);
	if (bits < MIN_RSA_BITS) {
		pw_errf(err, errlen, "%s: RSA key has %d bits, at least %d are required", pfx, bits,
		        MIN_RSA_BITS);
		goto out;
	}
	/* An even modulus or exponent cannot be a real RSA key; e = 1 would verify anything. */
	if (!BN_is_odd(bn) || !BN_is_odd(be) || BN_is_one(be)) {
		pw_errf(err, errlen, "%s: RSA key is not valid (even modulus or bad exponent)",
		        pfx);
		goto out;
	}
	if (!OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) ||
	    !(params = OSSL_PARAM_BLD_to_param(bld)) || !(pk = pkey_fromdata("RSA", params)) ||
	    !(out->material = pem_of(pk, &out->len))) {
		pw_errf(err, errlen, "%s: OpenSSL cannot build this RSA key", pfx);
		goto out;
	}
	out->alg = ALG_RS256;
	out->sig_len = (size_t)EVP_PKEY_get_size(pk);
	rc = 0;
out:
	EVP_PKEY_free(pk);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn);
	BN_free(be);
	free(n);
	free(e);
	return rc;
}

static int load_ec(json_t *jwk, struct jwk *out, const char *pfx, char *err, size_t errlen)
{
	json_t *crv = json_object_get(jwk, "crv");
	uint8_t point[1 + 2 * EC_COORD], *x = NULL, *y = NULL;
	size_t xlen = 0, ylen = 0;
	char group[] = "prime256v1";
	OSSL_PARAM params[3];
	EVP_PKEY_CTX *chk = NULL;
	EVP_PKEY *pk = NULL;
	int rc = -1;

	if (!json_is_string(crv) || strcmp(json_string_value(crv), "P-256") != 0) {
		pw_errf(err, errlen, "%s: EC key must be on P-256", pfx);
		return -1;
	}
	x = jwk_bytes(jwk, "x", &xlen, pfx, err, errlen);
	y = x ? jwk_bytes(jwk, "y", &ylen, pfx, err, errlen) : NULL;
	if (!y)
		goto out;
	/* RFC 7518 6.2.1.2: coordinates are full-length, exactly 32 bytes for P-256. */
	if (xlen != EC_COORD || ylen != EC_COORD) {
		pw_errf(err, errlen, "%s: EC \"x\" and \"y\" must be %d bytes each", pfx, EC_COORD);
		goto out;
	}
	point[0] = 0x04; /* uncompressed */
	memcpy(point + 1, x, EC_COORD);
	memcpy(point + 1 + EC_COORD, y, EC_COORD);
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point);
	params[2] = OSSL_PARAM_construct_end();
	pk = pkey_fromdata("EC", params);
	if (pk)
		chk = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
	if (!pk || !chk || EVP_PKEY_public_check(chk) != 1) {
		pw_errf(err, errlen, "%s: EC point is not on P-256", pfx);
		goto out;
	}
	if (!(out->material = pem_of(pk, &out->len))) {
		pw_errf(err, errlen, "%s: out of memory", pfx);
		goto out;
	}
	out->alg = ALG_ES256;
	out->sig_len = 2 * EC_COORD; /* JWS form r || s (RFC 7518 3.4), not DER */
	rc = 0;
out:
	EVP_PKEY_CTX_free(chk);
	EVP_PKEY_free(pk);
	free(x);
	free(y);
	return rc;
}

static int load_oct(json_t *jwk, struct jwk *out, const char *pfx, char *err, size_t errlen)
{
	size_t len = 0;
	uint8_t *k = jwk_bytes(jwk, "k", &len, pfx, err, errlen);

	if (!k)
		return -1;
	if (len < MIN_HS_BYTES) {
		pw_errf(err, errlen, "%s: HS256 secret has %zu bytes, at least %d are required",
		        pfx, len, MIN_HS_BYTES);
		OPENSSL_clear_free(k, len);
		return -1;
	}
	out->material = k;
	out->len = len;
	out->alg = ALG_HS256;
	out->sig_len = HS256_LEN;
	return 0;
}

/* Returns 1 when loaded, 0 when deliberately skipped, -1 on error. */
static int load_jwk(json_t *jwk, bool allow_hs256, struct jwk *out, const char *pfx, char *err,
                    size_t errlen)
{
	json_t *kty = json_object_get(jwk, "kty"), *use = json_object_get(jwk, "use");
	json_t *alg = json_object_get(jwk, "alg"), *kid = json_object_get(jwk, "kid");
	const char *t;
	int rc;

	if (!json_is_object(jwk) || !json_is_string(kty)) {
		pw_errf(err, errlen, "%s: not a JWK object with a \"kty\"", pfx);
		return -1;
	}
	/* Encryption keys may share a JWKS with signing keys; they are not ours to use. */
	if (use && (!json_is_string(use) || strcmp(json_string_value(use), "sig") != 0))
		return 0;
	t = json_string_value(kty);
	if (strcmp(t, "RSA") != 0 && strcmp(t, "EC") != 0 && strcmp(t, "oct") != 0) {
		char s[SHOW + 4];

		pw_errf(err, errlen, "%s: unsupported kty \"%s\" (RSA, EC or oct)", pfx,
		        show(t, s, sizeof s));
		return -1;
	}
	if (strcmp(t, "oct") == 0 && !allow_hs256)
		return 0;
	if (kid && (!json_is_string(kid) || copy_str(out->kid, sizeof out->kid, kid) != 0)) {
		pw_errf(err, errlen, "%s: \"kid\" must be a string under %zu bytes", pfx,
		        sizeof out->kid);
		return -1;
	}
	out->has_kid = kid != NULL;
	if (strcmp(t, "RSA") == 0)
		rc = load_rsa(jwk, out, pfx, err, errlen);
	else if (strcmp(t, "EC") == 0)
		rc = load_ec(jwk, out, pfx, err, errlen);
	else
		rc = load_oct(jwk, out, pfx, err, errlen);
	if (rc)
		return -1;
	/* A JWK that names its algorithm may only be used with that one (RFC 7517 4.4). */
	if (alg && (!json_is_string(alg) || strcmp(json_string_value(alg), alg_name[out->alg]))) {
		char s[SHOW + 4];

		pw_errf(err, errlen,
		        "%s: \"alg\" \"%s\" does not fit kty %s (only %s is supported)", pfx,
		        json_is_string(alg) ? show(json_string_value(alg), s, sizeof s) : "?", t,
		        alg_name[out->alg]);
		return -1;
	}
	return 1;
}

static void jwk_clear(struct jwk *k)
{
	if (k->material)
		OPENSSL_clear_free(k->material, k->len);
	k->material = NULL;
}

void pw_jwt_keys_free(struct pw_jwt_keys *k)
{
	int i;

	if (!k)
		return;
	for (i = 0; i < k->n; i++)
		jwk_clear(&k->keys[i]);
	free(k);
}

int pw_jwt_keys_count(const struct pw_jwt_keys *k)
{
	return k ? k->n : 0;
}

int pw_jwt_keys_load_string(const char *json, const char *name_for_errors, bool allow_hs256,
                            struct pw_jwt_keys **out, char *err, size_t errlen)
{
	const char *name = name_for_errors ? name_for_errors : "JWKS";
	struct pw_jwt_keys *k = NULL;
	json_t *root, *arr;
	json_error_t je;
	size_t i, n;
	int j;

	if (!out)
		return -1;
	*out = NULL;
	if (!json) {
		pw_errf(err, errlen, "%s: no JWKS", name);
		return -1;
	}
	root = json_loads(json, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		pw_errf(err, errlen, "%s: not JSON: line %d: %s", name, je.line, je.text);
		return -1;
	}
	arr = json_object_get(root, "keys");
	if (!json_is_array(arr)) {
		pw_errf(err, errlen, "%s: no \"keys\" array", name);
		goto fail;
	}
	n = json_array_size(arr);
	if (n > MAX_KEYS) {
		pw_errf(err, errlen, "%s: %zu keys, at most %d", name, n, MAX_KEYS);
		goto fail;
	}
	k = calloc(1, sizeof *k + n * sizeof k->keys[0]);
	if (!k) {
		pw_errf(err, errlen, "%s: out of memory", name);
		goto fail;
	}
	k->allow_hs256 = allow_hs256;
	for (i = 0; i < n; i++) {
		struct jwk *cur = &k->keys[k->n];
		char pfx[256];
		int rc;

		snprintf(pfx, sizeof pfx, "%s: keys[%zu]", name, i);
		rc = load_jwk(json_array_get(arr, i), allow_hs256, cur, pfx, err, errlen);
		if (rc < 0) {
			jwk_clear(cur);
			goto fail;
		}
		if (rc == 0) {
			memset(cur, 0, sizeof *cur);
			continue;
		}
		/* Two keys a token could name the same way would make the choice ambiguous. */
		for (j = 0; j < k->n; j++) {
			struct jwk *o = &k->keys[j];

			if (o->has_kid && cur->has_kid && o->alg == cur->alg &&
			    strcmp(o->kid, cur->kid) == 0) {
				char s[SHOW + 4];

				pw_errf(err, errlen, "%s: duplicate kid \"%s\"", pfx,
				        show(cur->kid, s, sizeof s));
				jwk_clear(cur);
				goto fail;
			}
		}
		k->n++;
	}
	if (k->n == 0) {
		pw_errf(err, errlen, "%s: no usable key%s", name,
		        allow_hs256 ? "" : " (oct keys are ignored unless HS256 is allowed)");
		goto fail;
	}
	json_decref(root);
	*out = k;
	return 0;
fail:
	pw_jwt_keys_free(k);
	json_decref(root);
	return -1;
}

int pw_jwt_keys_load(const char *jwks_path, bool allow_hs256, struct pw_jwt_keys **out, char *err,
                     size_t errlen)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f;
	int rc;

	if (out)
		*out = NULL;
	if (!jwks_path || !out) {
		pw_errf(err, errlen, "no JWKS path");
		return -1;
	}
	f = fopen(jwks_path, "re");
	if (!f) {
		pw_errf(err, errlen, "%s: cannot open: %s", jwks_path, strerror(errno));
		return -1;
	}
	buf = malloc(MAX_JWKS_BYTES + 1);
	if (buf)
		n = fread(buf, 1, MAX_JWKS_BYTES + 1, f);
	if (!buf || ferror(f)) {
		pw_errf(err, errlen, "%s: cannot read: %s", jwks_path, strerror(errno));
		rc = -1;
	} else if (n > MAX_JWKS_BYTES) {
		pw_errf(err, errlen, "%s: larger than %d bytes", jwks_path, MAX_JWKS_BYTES);
		rc = -1;
	} else if (memchr(buf, '\0', n)) {
		pw_errf(err, errlen, "%s: contains a NUL byte", jwks_path);
		rc = -1;
	} else {
		buf[n] = '\0';
		rc = pw_jwt_keys_load_string(buf, jwks_path, allow_hs256, out, err, errlen);
	}
	fclose(f);
	free(buf);
	return rc;
}

/* ---- verification ---- */

struct parts {
	const char *h, *p, *s; /* header, payload, signature (base64url) */
	size_t hlen, plen, slen;
};

static int split(const char *tok, size_t len, struct parts *pt, char *why, size_t whylen)
{
	const char *d1, *d2;
	size_t i;

	if (len == 0 || len > PW_JWT_MAX_TOKEN) {
		pw_errf(why, whylen, "token length %zu not in 1..%d", len, PW_JWT_MAX_TOKEN);
		return -1;
	}
	for (i = 0; i < len; i++)
		if (tok[i] != '.' && b64url_val((unsigned char)tok[i]) < 0) {
			pw_errf(why, whylen, "token has a byte 0x%02x that is not base64url at %zu",
			        (unsigned char)tok[i], i);
			return -1;
		}
	d1 = memchr(tok, '.', len);
	d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok)) : NULL;
	if (!d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok))) {
		pw_errf(why, whylen, "token is not three dot-separated parts");
		return -1;
	}
	pt->h = tok;
	pt->hlen = (size_t)(d1 - tok);
	pt->p = d1 + 1;
	pt->plen = (size_t)(d2 - pt->p);
	pt->s = d2 + 1;
	pt->slen = len - (size_t)(pt->s - tok);
	if (pt->hlen == 0 || pt->plen == 0) {
		pw_errf(why, whylen, "token has an empty header or payload");
		return -1;
	}
	return 0;
}

/* Strict: base64url, a JSON object, and no duplicate names (so no reader can see another
 * "alg" or "exp" than ours). */
static json_t *part_json(const char *b64, size_t n, const char *what, char *why, size_t whylen)
{
	size_t len = 0;
	uint8_t *raw = b64url_dup(b64, n, &len);
	json_error_t je;
	json_t *j;

	if (!raw) {
		pw_errf(why, whylen, "token %s is not base64url", what);
		return NULL;
	}
	j = json_loadb((const char *)raw, len, JSON_REJECT_DUPLICATES, &je);
	free(raw);
	if (!json_is_object(j)) {
		/* jansson's message quotes the token's bytes: shown as the rest of its text is */
		char s[SHOW + 4];
		pw_errf(why, whylen, "token %s is not a JSON object%s%s", what, j ? "" : ": ",
		        j ? "" : show(je.text, s, sizeof(s)));
		json_decref(j);
		return NULL;
	}
	return j;
}

static int check_header(const struct pw_jwt_keys *k, json_t *hdr, enum alg *alg, bool *has_kid,
                        struct pw_jwt_claims *out, char *why, size_t whylen)
{
	json_t *a = json_object_get(hdr, "alg"), *kid = json_object_get(hdr, "kid");
	json_t *typ = json_object_get(hdr, "typ");
	char s[SHOW + 4];
	const char *name;
	int i;

	if (!json_is_string(a)) {
		pw_errf(why, whylen, "token header has no \"alg\" string");
		return -1;
	}
	name = json_string_value(a);
	if (strcasecmp(name, "none") == 0) {
		pw_errf(why, whylen, "algorithm none refused");
		return -1;
	}
	for (i = 0; i < 3 && strcmp(name, alg_name[i]) != 0; i++)
		;
	if (i == 3) {
		pw_errf(why, whylen, "algorithm \"%s\" not supported", show(name, s, sizeof s));
		return -1;
	}
	*alg = (enum alg)i;
	if (*alg == ALG_HS256 && !k->allow_hs256) {
		pw_errf(why, whylen, "algorithm HS256 not allowed");
		return -1;
	}
	snprintf(out->alg, sizeof out->alg, "%s", alg_name[i]);
	/* We implement no JWS extension, so any critical one must make us refuse (RFC 7515
	 * 4.1.11). Embedded-key headers (jwk, jku, x5c, x5u) are simply never looked at. */
	if (json_object_get(hdr, "crit")) {
		pw_errf(why, whylen, "token has critical header parameters we do not understand");
		return -1;
	}
	/* libjwt 1.10 refuses any other typ; say so instead of "signature does not verify". */
	if (typ && (!json_is_string(typ) || strcasecmp(json_string_value(typ), "JWT") != 0)) {
		pw_errf(why, whylen, "token typ \"%s\" not supported (only JWT)",
		        json_is_string(typ) ? show(json_string_value(typ), s, sizeof s) : "?");
		return -1;
	}
	*has_kid = kid != NULL;
	if (kid && (!json_is_string(kid) || copy_str(out->kid, sizeof out->kid, kid) != 0)) {
		pw_errf(why, whylen, "token kid is not a string under %zu bytes", sizeof out->kid);
		return -1;
	}
	return 0;
}

static const struct jwk *pick_key(const struct pw_jwt_keys *k, enum alg alg, bool has_kid,
                                  const char *kid, char *why, size_t whylen)
{
	const struct jwk *found = NULL, *named = NULL;
	char s[SHOW + 4];
	int i, count = 0;

	for (i = 0; i < k->n; i++) {
		const struct jwk *c = &k->keys[i];

		if (has_kid && (!c->has_kid || strcmp(c->kid, kid) != 0))
			continue;
		named = c;
		if (c->alg == alg) {
			found = c;
			count++;
		}
	}
	if (count == 1)
		return found;
	if (has_kid && named) /* the key exists but is of another type: algorithm confusion */
		pw_errf(why, whylen, "key id \"%s\" is an %s key, it cannot verify %s",
		        show(kid, s, sizeof s), alg_kty[named->alg], alg_name[alg]);
	else if (has_kid)
		pw_errf(why, whylen, "unknown key id \"%s\"", show(kid, s, sizeof s));
	else
		pw_errf(why, whylen, "token has no kid and %d %s keys are configured (need one)",
		        count, alg_kty[alg]);
	return NULL;
}

/* Checks done before libjwt sees the token: the signature has the exact size the key makes
 * (which also refuses DER-encoded ECDSA), and HS256 is compared in constant time here since
 * libjwt releases before the CVE-2024-25189 fix used strcmp. */
static int check_signature(const struct jwk *key, const struct parts *pt, char *why, size_t whylen)
{
	uint8_t mac[EVP_MAX_MD_SIZE], *sig;
	unsigned int maclen = 0;
	size_t siglen = 0;
	int rc = 0;

	sig = b64url_dup(pt->s, pt->slen, &siglen);
	if (!sig) {
		pw_errf(why, whylen, "token signature is not base64url");
		return -1;
	}
	if (siglen != key->sig_len) {
		pw_errf(why, whylen, "signature is %zu bytes, %s with this key makes %zu", siglen,
		        alg_name[key->alg], key->sig_len);
		rc = -1;
	} else if (key->alg == ALG_HS256) {
		size_t signed_len = pt->hlen + 1 + pt->plen;

		if (!HMAC(EVP_sha256(), key->material, (int)key->len, (const uint8_t *)pt->h,
		          signed_len, mac, &maclen) ||
		    maclen != HS256_LEN || CRYPTO_memcmp(mac, sig, HS256_LEN) != 0) {
			pw_errf(why, whylen, "signature does not verify (HMAC)");
			rc = -1;
		}
		OPENSSL_cleanse(mac, sizeof mac);
	}
	free(sig);
	return rc;
}

static int libjwt_check(const struct jwk *key, const char *token, size_t len, char *why,
                        size_t whylen)
{
	char *copy = strndup(token, len);
	jwt_t *jwt = NULL;
	int rc = -1;

	if (!copy) {
		pw_errf(why, whylen, "out of memory");
		return -1;
	}
	if (jwt_decode(&jwt, copy, key->material, (int)key->len) != 0 || !jwt)
		pw_errf(why, whylen, "signature does not verify");
	else if (jwt_get_alg(jwt) != alg_libjwt[key->alg])
		pw_errf(why, whylen, "libjwt verified %s, expected %s",
		        jwt_alg_str(jwt_get_alg(jwt)) ? jwt_alg_str(jwt_get_alg(jwt)) : "?",
		        alg_name[key->alg]);
	else
		rc = 0;
	jwt_free(jwt);
	free(copy);
	return rc;
}

/* A NumericDate claim. Returns 1 present (value in *v), 0 absent, -1 malformed. Fractions
 * round toward the stricter side: exp down, nbf and iat up. */
static int time_claim(json_t *c, const char *name, bool round_up, long long *v, char *why,
                      size_t whylen)
{
	json_t *j = json_object_get(c, name);
	double d;

	if (!j)
		return 0;
	if (json_is_integer(j)) {
		*v = json_integer_value(j);
		if (*v > CLAIM_LIMIT || *v < -CLAIM_LIMIT)
			goto range;
		return 1;
	}
	if (!json_is_real(j)) {
		pw_errf(why, whylen, "claim %s is not a number", name);
		return -1;
	}
	d = round_up ? ceil(json_real_value(j)) : floor(json_real_value(j));
	if (!isfinite(d) || d > (double)CLAIM_LIMIT || d < -(double)CLAIM_LIMIT)
		goto range;
	*v = (long long)d;
	return 1;
range:
	pw_errf(why, whylen, "claim %s is out of range", name);
	return -1;
}

static int check_times(const struct pw_jwt_params *p, json_t *c, long long now,
                       struct pw_jwt_claims *out, char *why, size_t whylen)
{
	int leeway = p->leeway_s > 0 ? p->leeway_s : 0;
	int has_exp = time_claim(c, "exp", false, &out->exp, why, whylen);
	int has_nbf = has_exp < 0 ? -1 : time_claim(c, "nbf", true, &out->nbf, why, whylen);
	int has_iat = has_nbf < 0 ? -1 : time_claim(c, "iat", true, &out->iat, why, whylen);
	char t1[32], t2[32];

	if (has_iat < 0)
		return -1;
	if (!has_exp && p->require_exp) {
		pw_errf(why, whylen, "token has no exp claim");
		return -1;
	}
	/* RFC 7519 4.1.4: valid only while now < exp. */
	if (has_exp && now >= out->exp + leeway) {
		pw_errf(why, whylen, "token expired at %s (now %s, leeway %d s)",
		        iso8601(out->exp, t1), iso8601(now, t2), leeway);
		return -1;
	}
	if (has_nbf && now < out->nbf - leeway) {
		pw_errf(why, whylen, "token not valid before %s (now %s, leeway %d s)",
		        iso8601(out->nbf, t1), iso8601(now, t2), leeway);
		return -1;
	}
	if (has_iat && now < out->iat - leeway) {
		pw_errf(why, whylen, "token issued in the future at %s (now %s, leeway %d s)",
		        iso8601(out->iat, t1), iso8601(now, t2), leeway);
		return -1;
	}
	return 0;
}

static int check_aud(const char *want, json_t *aud, char *why, size_t whylen)
{
	char s1[SHOW + 4], s2[SHOW + 4];
	size_t i;

	if (!aud) {
		pw_errf(why, whylen, "token has no aud claim, expected \"%s\"",
		        show(want, s1, sizeof s1));
		return -1;
	}
	if (json_is_string(aud)) {
		if (strcmp(json_string_value(aud), want) == 0)
			return 0;
		pw_errf(why, whylen, "audience \"%s\" is not \"%s\"",
		        show(json_string_value(aud), s1, sizeof s1), show(want, s2, sizeof s2));
		return -1;
	}
	if (!json_is_array(aud)) {
		pw_errf(why, whylen, "claim aud is neither a string nor an array");
		return -1;
	}
	for (i = 0; i < json_array_size(aud); i++)
		if (!json_is_string(json_array_get(aud, i))) {
			pw_errf(why, whylen, "claim aud holds a non-string");
			return -1;
		}
	for (i = 0; i < json_array_size(aud); i++)
		if (strcmp(json_string_value(json_array_get(aud, i)), want) == 0)
			return 0;
	pw_errf(why, whylen, "audience list (%zu entries) does not include \"%s\"",
	        json_array_size(aud), show(want, s1, sizeof s1));
	return -1;
}

static int check_groups(const struct pw_jwt_params *p, json_t *c, struct pw_jwt_claims *out,
                        char *why, size_t whylen)
{
	const char *name = p->groups_claim && *p->groups_claim ? p->groups_claim : "groups";
	json_t *g = json_object_get(c, name), *one = NULL;
	char s[SHOW + 4];
	size_t i, n;

	if (!g)
		return 0;
	if (json_is_string(g)) {
		one = g;
		n = 1;
	} else if (json_is_array(g)) {
		n = json_array_size(g);
	} else {
		pw_errf(why, whylen, "claim %s is neither a string nor an array of strings",
		        show(name, s, sizeof s));
		return -1;
	}
	if (n > PW_JWT_MAX_GROUPS) {
		pw_errf(why, whylen, "claim %s has %zu groups, at most %d", show(name, s, sizeof s),
		        n, PW_JWT_MAX_GROUPS);
		return -1;
	}
	for (i = 0; i < n; i++) {
		json_t *v = one ? one : json_array_get(g, i);

		if (!json_is_string(v) || json_string_length(v) == 0 ||
		    copy_str(out->groups[i], sizeof out->groups[i], v) != 0) {
			pw_errf(why, whylen,
			        "claim %s[%zu] is not a non-empty string under %zu bytes",
			        show(name, s, sizeof s), i, sizeof out->groups[i]);
			return -1;
		}
	}
	out->n_groups = (int)n;
	return 0;
}

static int check_claims(const struct pw_jwt_params *p, json_t *c, long long now,
                        struct pw_jwt_claims *out, char *why, size_t whylen)
{
	json_t *iss = json_object_get(c, "iss"), *sub = json_object_get(c, "sub");
	char s1[SHOW + 4], s2[SHOW + 4];

	if (check_times(p, c, now, out, why, whylen))
		return -1;
	if (iss && (!json_is_string(iss) || copy_str(out->iss, sizeof out->iss, iss) != 0)) {
		pw_errf(why, whylen, "claim iss is not a string under %zu bytes", sizeof out->iss);
		return -1;
	}
	if (p->issuer && *p->issuer) {
		if (!iss) {
			pw_errf(why, whylen, "token has no iss claim, expected \"%s\"",
			        show(p->issuer, s1, sizeof s1));
			return -1;
		}
		if (strcmp(out->iss, p->issuer) != 0) {
			pw_errf(why, whylen, "issuer \"%s\" is not \"%s\"",
			        show(out->iss, s1, sizeof s1), show(p->issuer, s2, sizeof s2));
			return -1;
		}
	}
	if (p->audience && *p->audience &&
	    check_aud(p->audience, json_object_get(c, "aud"), why, whylen))
		return -1;
	if (sub && (!json_is_string(sub) || copy_str(out->sub, sizeof out->sub, sub) != 0)) {
		pw_errf(why, whylen, "claim sub is not a string under %zu bytes", sizeof out->sub);
		return -1;
	}
	return check_groups(p, c, out, why, whylen);
}

int pw_jwt_verify(const struct pw_jwt_keys *k, const struct pw_jwt_params *p, const char *token,
                  size_t len, long long now, struct pw_jwt_claims *out, char *why, size_t whylen)
{
	json_t *hdr = NULL, *claims = NULL;
	const struct jwk *key;
	struct parts pt;
	bool has_kid = false;
	enum alg alg;
	int rc = -1;

	if (!out)
		return -1;
	memset(out, 0, sizeof *out);
	if (!k || !p || !token) {
		pw_errf(why, whylen, "no keys, parameters or token");
		return -1;
	}
	if (split(token, len, &pt, why, whylen))
		return -1;
	hdr = part_json(pt.h, pt.hlen, "header", why, whylen);
	if (!hdr || check_header(k, hdr, &alg, &has_kid, out, why, whylen))
		goto done;
	key = pick_key(k, alg, has_kid, out->kid, why, whylen);
	if (!key || check_signature(key, &pt, why, whylen) ||
	    libjwt_check(key, token, len, why, whylen))
		goto done;
	/* From here on the payload is authenticated. */
	claims = part_json(pt.p, pt.plen, "payload", why, whylen);
	if (!claims || check_claims(p, claims, now, out, why, whylen))
		goto done;
	rc = 0;
done:
	json_decref(hdr);
	json_decref(claims);
	if (rc)
		memset(out, 0, sizeof *out);
	return rc;
}
