/* JWKS loading (see jwks.h): jansson reads the set, jsonpath.h says where a bad value is, and
 * OpenSSL 3 turns each public JWK into the PEM that libjwt takes as a key. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

#include "pgward/b64url.h"
#include "pgward/jsonpath.h"
#include "pgward/jwks.h"
#include "pgward/log.h"

#define MAX_KEYS       64
#define MAX_JWKS_BYTES (1024 * 1024)
#define MIN_RSA_BITS   2048
#define MIN_HS_BYTES   32 /* RFC 7518 3.2: an HS256 key must be at least as long as the hash */
#define EC_COORD       32 /* P-256 field element */

/* Indexed by enum pw_jwk_alg. */
static const char *const alg_name[] = {"RS256", "ES256", "HS256"};
static const char *const alg_kty[] = {"RSA", "EC", "oct"};

struct pw_jwt_keys {
	bool allow_hs256;
	int n;
	struct pw_jwk keys[];
};

const char *pw_jwk_alg_name(enum pw_jwk_alg a)
{
	return alg_name[a];
}

const char *pw_jwk_kty(enum pw_jwk_alg a)
{
	return alg_kty[a];
}

/* ---- one JWK ---- */

/* Member key of obj is missing, null, of another type or another string than what it should
 * be: "expected WHAT, got ..." at its path. Returns -1. */
static int expected(struct pw_jp *x, const json_t *obj, const char *base, const char *key,
                    const char *what)
{
	json_t *v = json_object_get(obj, key);
	char jp[PW_JP_PATH_MAX], q[PW_JP_QUOTE_MAX];

	pw_jp_key(jp, base, key);
	if (!v || json_is_null(v))
		return pw_jp_missing(x, obj, jp, key, what);
	return pw_jp_fail(x, jp, "expected %s, got %s", what,
	                  json_is_string(v) ? pw_jp_quote(q, json_string_value(v))
	                                    : pw_jp_type_name(v));
}

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

/* A base64url member of the JWK at jp, decoded into a new buffer; NULL once the error is
 * reported. */
static uint8_t *jwk_bytes(struct pw_jp *x, json_t *jwk, const char *jp, const char *member,
                          size_t *len)
{
	json_t *v = json_object_get(jwk, member);
	char mjp[PW_JP_PATH_MAX];
	uint8_t *b;

	if (!json_is_string(v)) {
		expected(x, jwk, jp, member, "a base64url string");
		return NULL;
	}
	b = pw_b64url_dup(json_string_value(v), json_string_length(v), len);
	if (!b || *len == 0) {
		pw_jp_key(mjp, jp, member);
		pw_jp_fail(x, mjp,
		           "expected non-empty base64url (RFC 7515: no padding, no whitespace)");
		free(b);
		return NULL;
	}
	return b;
}

static int load_rsa(struct pw_jp *x, json_t *jwk, const char *jp, struct pw_jwk *out)
{
	size_t nlen = 0, elen = 0;
	uint8_t *n = jwk_bytes(x, jwk, jp, "n", &nlen);
	uint8_t *e = n ? jwk_bytes(x, jwk, jp, "e", &elen) : NULL;
	char njp[PW_JP_PATH_MAX], ejp[PW_JP_PATH_MAX];
	BIGNUM *bn = NULL, *be = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY *pk = NULL;
	int rc = -1, bits;

	if (!e)
		goto out;
	pw_jp_key(njp, jp, "n");
	pw_jp_key(ejp, jp, "e");
	bn = BN_bin2bn(n, (int)nlen, NULL);
	be = BN_bin2bn(e, (int)elen, NULL);
	bld = OSSL_PARAM_BLD_new();
	if (!bn || !be || !bld) {
		pw_jp_fail(x, jp, "out of memory");
		goto out;
	}
	bits = BN_num_bits(bn);
	if (bits < MIN_RSA_BITS) {
		pw_jp_fail(x, njp, "RSA key has %d bits, at least %d are required", bits,
		           MIN_RSA_BITS);
		goto out;
	}
	/* An even modulus or exponent cannot be a real RSA key; e = 1 would verify anything. */
	if (!BN_is_odd(bn)) {
		pw_jp_fail(x, njp, "RSA modulus is even: not a valid key");
		goto out;
	}
	if (!BN_is_odd(be) || BN_is_one(be)) {
		pw_jp_fail(x, ejp, "RSA exponent must be odd and greater than 1");
		goto out;
	}
	if (!OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) ||
	    !(params = OSSL_PARAM_BLD_to_param(bld)) || !(pk = pkey_fromdata("RSA", params)) ||
	    !(out->material = pem_of(pk, &out->len))) {
		pw_jp_fail(x, jp, "OpenSSL cannot build this RSA key");
		goto out;
	}
	out->alg = PW_JWK_RS256;
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

static int load_ec(struct pw_jp *x, json_t *jwk, const char *jp, struct pw_jwk *out)
{
	json_t *crv = json_object_get(jwk, "crv");
	uint8_t point[1 + 2 * EC_COORD], *px = NULL, *py = NULL;
	size_t xlen = 0, ylen = 0;
	char group[] = "prime256v1", cjp[PW_JP_PATH_MAX];
	OSSL_PARAM params[3];
	EVP_PKEY_CTX *chk = NULL;
	EVP_PKEY *pk = NULL;
	int rc = -1;

	if (!json_is_string(crv) || strcmp(json_string_value(crv), "P-256") != 0)
		return expected(x, jwk, jp, "crv", "\"P-256\" (the only EC curve supported)");
	px = jwk_bytes(x, jwk, jp, "x", &xlen);
	py = px ? jwk_bytes(x, jwk, jp, "y", &ylen) : NULL;
	if (!py)
		goto out;
	/* RFC 7518 6.2.1.2: coordinates are full-length, exactly 32 bytes for P-256. */
	if (xlen != EC_COORD || ylen != EC_COORD) {
		pw_jp_key(cjp, jp, xlen != EC_COORD ? "x" : "y");
		pw_jp_fail(x, cjp, "expected %d bytes (a P-256 coordinate), got %zu", EC_COORD,
		           xlen != EC_COORD ? xlen : ylen);
		goto out;
	}
	point[0] = 0x04; /* uncompressed */
	memcpy(point + 1, px, EC_COORD);
	memcpy(point + 1 + EC_COORD, py, EC_COORD);
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point);
	params[2] = OSSL_PARAM_construct_end();
	pk = pkey_fromdata("EC", params);
	if (pk)
		chk = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
	if (!pk || !chk || EVP_PKEY_public_check(chk) != 1) {
		pw_jp_fail(x, jp, "EC point is not on P-256");
		goto out;
	}
	if (!(out->material = pem_of(pk, &out->len))) {
		pw_jp_fail(x, jp, "out of memory");
		goto out;
	}
	out->alg = PW_JWK_ES256;
	out->sig_len = 2 * EC_COORD; /* JWS form r || s (RFC 7518 3.4), not DER */
	rc = 0;
out:
	EVP_PKEY_CTX_free(chk);
	EVP_PKEY_free(pk);
	free(px);
	free(py);
	return rc;
}

static int load_oct(struct pw_jp *x, json_t *jwk, const char *jp, struct pw_jwk *out)
{
	size_t len = 0;
	uint8_t *k = jwk_bytes(x, jwk, jp, "k", &len);
	char kjp[PW_JP_PATH_MAX];

	if (!k)
		return -1;
	if (len < MIN_HS_BYTES) {
		pw_jp_key(kjp, jp, "k");
		pw_jp_fail(x, kjp, "HS256 secret has %zu bytes, at least %d are required", len,
		           MIN_HS_BYTES);
		OPENSSL_clear_free(k, len);
		return -1;
	}
	out->material = k;
	out->len = len;
	out->alg = PW_JWK_HS256;
	out->sig_len = SHA256_DIGEST_LENGTH;
	return 0;
}

/* The JWK at jp into out. Returns 1 when loaded, 0 when deliberately skipped, -1 on error. */
static int load_jwk(struct pw_jp *x, json_t *jwk, const char *jp, bool allow_hs256,
                    struct pw_jwk *out)
{
	json_t *use = json_object_get(jwk, "use"), *alg = json_object_get(jwk, "alg");
	char kjp[PW_JP_PATH_MAX], what[64];
	int t, rc;

	if (!json_is_object(jwk))
		return pw_jp_fail(x, jp, "expected a JWK object, got %s", pw_jp_type_name(jwk));
	/* Encryption keys may share a JWKS with signing keys, of types we do not know: they are
	 * not ours to use. A kty that is not a string is an error on them too. */
	if (use && (!json_is_string(use) || strcmp(json_string_value(use), "sig") != 0) &&
	    json_is_string(json_object_get(jwk, "kty")))
		return 0;
	if (pw_jp_enum(x, jwk, jp, "kty", alg_kty, PW_JWK_N_ALGS, PW_JP_REQUIRED, &t) < 0)
		return -1;
	if (t == PW_JWK_HS256 && !allow_hs256)
		return 0;
	/* null is refused like any other non-string (pw_jp_str would take it for "not given") */
	if (json_is_null(json_object_get(jwk, "kid"))) {
		pw_jp_key(kjp, jp, "kid");
		return pw_jp_fail(x, kjp, "expected a string, got null");
	}
	rc = pw_jp_str(x, jwk, jp, "kid", out->kid, sizeof out->kid, 0);
	if (rc < 0)
		return -1;
	out->has_kid = rc == 1;
	if (t == PW_JWK_RS256)
		rc = load_rsa(x, jwk, jp, out);
	else if (t == PW_JWK_ES256)
		rc = load_ec(x, jwk, jp, out);
	else
		rc = load_oct(x, jwk, jp, out);
	if (rc)
		return -1;
	/* A JWK that names its algorithm may only be used with that one (RFC 7517 4.4). */
	if (alg && (!json_is_string(alg) || strcmp(json_string_value(alg), alg_name[out->alg]))) {
		snprintf(what, sizeof what, "\"%s\" (the only algorithm for kty %s)",
		         alg_name[out->alg], alg_kty[t]);
		return expected(x, jwk, jp, "alg", what);
	}
	return 1;
}

static void jwk_clear(struct pw_jwk *k)
{
	if (k->material)
		OPENSSL_clear_free(k->material, k->len);
	k->material = NULL;
}

/* ---- the set ---- */

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

const struct pw_jwk *pw_jwt_keys_get(const struct pw_jwt_keys *k, int i)
{
	return &k->keys[i];
}

bool pw_jwt_keys_allow_hs256(const struct pw_jwt_keys *k)
{
	return k->allow_hs256;
}

/* Two keys a token could name the same way would make the choice ambiguous. from[j] is where
 * loaded key j was in the set. */
static int check_unique(struct pw_jp *x, const struct pw_jwt_keys *k, const size_t *from,
                        const char *jp)
{
	const struct pw_jwk *cur = &k->keys[k->n];
	char kjp[PW_JP_PATH_MAX], q[PW_JP_QUOTE_MAX];
	int j;

	for (j = 0; j < k->n; j++) {
		const struct pw_jwk *o = &k->keys[j];

		if (o->has_kid && cur->has_kid && o->alg == cur->alg &&
		    strcmp(o->kid, cur->kid) == 0) {
			pw_jp_key(kjp, jp, "kid");
			return pw_jp_fail(x, kjp,
			                  "duplicate kid %s: the %s key at $.keys[%zu] has it too",
			                  pw_jp_quote(q, cur->kid), alg_name[cur->alg], from[j]);
		}
	}
	return 0;
}

int pw_jwt_keys_load_string(const char *json, const char *name_for_errors, bool allow_hs256,
                            struct pw_jwt_keys **out, char *err, size_t errlen)
{
	struct pw_jwt_keys *k = NULL;
	size_t i, n, from[MAX_KEYS];
	json_t *root, *arr;
	struct pw_jp x;
	json_error_t je;
	int rc;

	if (!out)
		return -1;
	*out = NULL;
	pw_jp_init(&x, name_for_errors ? name_for_errors : "JWKS", err, errlen, NULL, 0);
	if (!json)
		return pw_jp_fail(&x, NULL, "no JWKS");
	root = json_loads(json, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return pw_jp_fail(&x, NULL, "not JSON: line %d: %s", je.line, je.text);
	if (!json_is_object(root)) {
		pw_jp_fail(&x, "$", "expected an object with a \"keys\" array, got %s",
		           pw_jp_type_name(root));
		goto fail;
	}
	arr = pw_jp_container(&x, root, "$", "keys", true, true, &rc);
	if (!arr)
		goto fail;
	n = json_array_size(arr);
	if (n > MAX_KEYS) {
		pw_jp_fail(&x, "$.keys", "%zu keys, at most %d", n, MAX_KEYS);
		goto fail;
	}
	k = calloc(1, sizeof *k + n * sizeof k->keys[0]);
	if (!k) {
		pw_jp_fail(&x, NULL, "out of memory");
		goto fail;
	}
	k->allow_hs256 = allow_hs256;
	for (i = 0; i < n; i++) {
		struct pw_jwk *cur = &k->keys[k->n];
		char jp[PW_JP_PATH_MAX];

		pw_jp_index(jp, "$.keys", i);
		rc = load_jwk(&x, json_array_get(arr, i), jp, allow_hs256, cur);
		if (rc > 0 && check_unique(&x, k, from, jp) < 0)
			rc = -1;
		if (rc < 0) {
			jwk_clear(cur);
			goto fail;
		}
		if (rc == 0) {
			memset(cur, 0, sizeof *cur);
			continue;
		}
		from[k->n++] = i;
	}
	if (k->n == 0) {
		pw_jp_fail(&x, "$.keys", "no usable key%s",
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
