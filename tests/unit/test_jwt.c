/* Unit tests for user/jwt.c, and user/jwks.c's loading. Keys are generated here with OpenSSL,
 * the JWKS is built from their public parts, and tokens are signed here with EVP_DigestSign /
 * HMAC in the standard JWS encodings (ES256 as fixed-width r || s), so nothing relies on libjwt
 * producing standard tokens; two tokens come from libjwt's encoder to show the two
 * interoperate. */
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jwt.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "pgward/jwks.h"
#include "pgward/jwt.h"
#include "check.h"

#define NOW    1800000000LL /* 2027-01-15T08:00:00Z */
#define ISS    "https://idp.example"
#define AUD    "pgward"
#define TOK    (PW_JWT_MAX_TOKEN * 2)
#define JWK    2048
#define JWKS   (8 * JWK)
#define ERRLEN 256
#define B64URL "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

enum signer { S_RS256, S_ES256, S_ES256_DER, S_HS256, S_NONE };

static EVP_PKEY *rsa, *rsa2, *rsa_short, *ec, *ec384, *evil;
static uint8_t secret[32];

/* ---- encoding ---- */

static void b64url(const uint8_t *in, size_t n, char *out)
{
	int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n), i;

	for (i = 0; i < len; i++) {
		if (out[i] == '+')
			out[i] = '-';
		else if (out[i] == '/')
			out[i] = '_';
		else if (out[i] == '=')
			break;
	}
	out[i] = '\0';
}

static void b64url_str(const char *s, char *out)
{
	b64url((const uint8_t *)s, strlen(s), out);
}

/* An RSA or EC public parameter as fixed-width (width > 0) or minimal big-endian base64url. */
static void bn_param(EVP_PKEY *pk, const char *name, int width, char *out)
{
	uint8_t buf[1024];
	BIGNUM *bn = NULL;
	int n;

	EVP_PKEY_get_bn_param(pk, name, &bn);
	n = width ? BN_bn2binpad(bn, buf, width) : BN_bn2bin(bn, buf);
	b64url(buf, (size_t)n, out);
	BN_free(bn);
}

static char *rsa_jwk(char *out, EVP_PKEY *pk, const char *kid, const char *extra)
{
	char n[1024], e[16];

	bn_param(pk, OSSL_PKEY_PARAM_RSA_N, 0, n);
	bn_param(pk, OSSL_PKEY_PARAM_RSA_E, 0, e);
	snprintf(out, JWK, "{\"kty\":\"RSA\",\"kid\":\"%s\",\"n\":\"%s\",\"e\":\"%s\"%s}", kid, n,
	         e, extra);
	return out;
}

static char *ec_jwk(char *out, EVP_PKEY *pk, const char *kid, const char *crv, int width,
                    const char *extra)
{
	char x[128], y[128];

	bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_X, width, x);
	bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_Y, width, y);
	snprintf(out, JWK,
	         "{\"kty\":\"EC\",\"crv\":\"%s\",\"kid\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"%s}", crv,
	         kid, x, y, extra);
	return out;
}

static char *oct_jwk(char *out, const uint8_t *k, size_t n, const char *kid)
{
	char b[128];

	b64url(k, n, b);
	snprintf(out, JWK, "{\"kty\":\"oct\",\"kid\":\"%s\",\"k\":\"%s\"}", kid, b);
	return out;
}

/* {"keys":[a,b,...]} from n JWK texts. */
static char *jwks(char *out, int n, ...)
{
	va_list ap;
	int i;

	va_start(ap, n);
	strcpy(out, "{\"keys\":[");
	for (i = 0; i < n; i++) {
		if (i)
			strcat(out, ",");
		strcat(out, va_arg(ap, const char *));
	}
	strcat(out, "]}");
	va_end(ap);
	return out;
}

static char *pem_pub(EVP_PKEY *pk, size_t *len)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	PEM_write_bio_PUBKEY(b, pk);
	n = BIO_get_mem_data(b, &data);
	out = malloc((size_t)n + 1);
	memcpy(out, data, (size_t)n);
	out[n] = '\0';
	*len = (size_t)n;
	BIO_free(b);
	return out;
}

/* ---- signing ---- */

/* Signs input the JWS way; *short_rs tells whether r or s had a leading zero byte. */
static size_t sign(enum signer how, EVP_PKEY *pk, const uint8_t *key, size_t keylen,
                   const char *input, uint8_t *sig, int *short_rs)
{
	uint8_t der[600];
	size_t dl = sizeof der;
	unsigned int hl = 0;
	EVP_MD_CTX *m;

	if (how == S_NONE)
		return 0;
	if (how == S_HS256) {
		HMAC(EVP_sha256(), key, (int)keylen, (const uint8_t *)input, strlen(input), sig,
		     &hl);
		return hl;
	}
	m = EVP_MD_CTX_new();
	EVP_DigestSignInit(m, NULL, EVP_sha256(), NULL, pk);
	EVP_DigestSign(m, der, &dl, (const uint8_t *)input, strlen(input));
	EVP_MD_CTX_free(m);
	if (how == S_ES256) { /* DER ECDSA-Sig-Value -> r || s, 32 bytes each (RFC 7518 3.4) */
		const uint8_t *p = der;
		ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)dl);
		const BIGNUM *r, *s;

		ECDSA_SIG_get0(es, &r, &s);
		if (short_rs)
			*short_rs = BN_num_bytes(r) < 32 || BN_num_bytes(s) < 32;
		BN_bn2binpad(r, sig, 32);
		BN_bn2binpad(s, sig + 32, 32);
		ECDSA_SIG_free(es);
		return 64;
	}
	memcpy(sig, der, dl); /* RS256 signature, or the non-JWS DER form for ES256 */
	return dl;
}

static char *mint_k(char *out, const char *hdr, const char *payload, enum signer how, EVP_PKEY *pk,
                    const uint8_t *key, size_t keylen, int *short_rs)
{
	uint8_t sig[600];
	size_t n;

	b64url_str(hdr, out);
	strcat(out, ".");
	b64url_str(payload, out + strlen(out));
	n = sign(how, pk, key, keylen, out, sig, short_rs);
	strcat(out, ".");
	b64url(sig, n, out + strlen(out));
	return out;
}

static char *mint(char *out, const char *hdr, const char *payload, enum signer how, EVP_PKEY *pk)
{
	return mint_k(out, hdr, payload, how, pk, secret, sizeof secret, NULL);
}

/* The usual claims plus extra members (text starting with ','), or exactly body if given. */
static char *claims(char *out, const char *extra)
{
	snprintf(out, TOK,
	         "{\"sub\":\"alice\",\"iss\":\"" ISS "\",\"aud\":\"" AUD
	         "\",\"exp\":%lld,\"iat\":%lld%s}",
	         NOW + 600, NOW - 10, extra);
	return out;
}

static char *claimsf(char *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *claimsf(char *out, const char *fmt, ...)
{
	char extra[TOK / 2];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(extra, sizeof extra, fmt, ap);
	va_end(ap);
	return claims(out, extra);
}

/* ---- verifying ---- */

static const struct pw_jwt_params params = {
    .issuer = ISS, .audience = AUD, .leeway_s = 30, .groups_claim = NULL, .require_exp = true};

static struct pw_jwt_claims cl;
static char why[ERRLEN];

static int verify_p(const struct pw_jwt_keys *k, const struct pw_jwt_params *p, const char *tok)
{
	why[0] = '\0';
	return pw_jwt_verify(k, p, tok, strlen(tok), NOW, &cl, why, sizeof why);
}

static int verify(const struct pw_jwt_keys *k, const char *tok)
{
	return verify_p(k, &params, tok);
}

/* Refused, and the reason mentions what it should. */
static int refused(const struct pw_jwt_keys *k, const char *tok, const char *reason)
{
	int rc = verify(k, tok);

	if (rc == 0 || !strstr(why, reason))
		printf("# rc %d, why: %s\n", rc, why);
	return rc == -1 && strstr(why, reason) != NULL && cl.sub[0] == '\0';
}

static int load(const char *json, bool hs, struct pw_jwt_keys **k, char *err)
{
	err[0] = '\0';
	return pw_jwt_keys_load_string(json, "jwks.json", hs, k, err, ERRLEN);
}

/* Load must fail with a reason containing each of the (up to two) fragments. */
static int load_fails(const char *json, bool hs, const char *frag1, const char *frag2)
{
	struct pw_jwt_keys *k = (struct pw_jwt_keys *)1;
	char err[ERRLEN];
	int rc = load(json, hs, &k, err);

	if (rc == 0 || !strstr(err, frag1) || (frag2 && !strstr(err, frag2)))
		printf("# rc %d, err: %s\n", rc, err);
	if (rc == 0)
		pw_jwt_keys_free(k);
	return rc == -1 && k == NULL && strstr(err, frag1) && (!frag2 || strstr(err, frag2));
}

/* ---- threads ---- */

struct thread_arg {
	const struct pw_jwt_keys *k;
	const char *toks[3];
	int failures;
};

static void *hammer(void *v)
{
	struct thread_arg *a = v;
	int i;

	for (i = 0; i < 300; i++) {
		struct pw_jwt_claims c;
		char w[ERRLEN];
		const char *t = a->toks[i % 3];

		if (pw_jwt_verify(a->k, &params, t, strlen(t), NOW, &c, w, sizeof w) != 0 ||
		    strcmp(c.sub, "alice") != 0)
			a->failures++;
	}
	return NULL;
}

/* ---- the tests ---- */

static void test_load(const char *j_rsa, const char *j_ec, const char *j_oct)
{
	char a[JWK], b[JWK], set[JWKS], err[ERRLEN], path[] = "/tmp/pgward-jwks-XXXXXX";
	char n[1024]; /* an RSA modulus in base64url */
	struct pw_jwt_keys *k = NULL;
	uint8_t short_secret[16] = {1};
	int fd;

	CHECK(load_fails("{\"keys\": [", false, "jwks.json: not JSON", NULL), "load: not JSON");
	CHECK(load_fails("[]", false,
	                 "jwks.json: $: expected an object with a \"keys\" array, got array", NULL),
	      "load: not an object");
	CHECK(load_fails("{\"kees\": []}", false,
	                 "jwks.json: $.keys: required key is missing (expected an array)", NULL),
	      "load: keys missing");
	CHECK(load_fails("{\"keys\": {}}", false, "$.keys: expected an array, got object", NULL),
	      "load: keys not an array");
	CHECK(load_fails("{\"keys\": []}", false, "jwks.json: $.keys: no usable key", NULL),
	      "load: empty keys");
	CHECK(load_fails(jwks(set, 1, rsa_jwk(a, rsa_short, "old", "")), false,
	                 "$.keys[0].n: RSA key has 1024 bits, at least 2048", NULL),
	      "load: 1024-bit RSA key refused");
	CHECK(load_fails(
	          jwks(set, 2, j_rsa, "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AA\"}"), false,
	          "jwks.json: $.keys[1].kty: expected one of RSA, EC, oct, got \"OKP\"", NULL),
	      "load: unsupported kty");
	load(jwks(set, 3, j_rsa, j_ec, ec_jwk(a, ec384, "p384", "P-384", 48, "")), false, &k, err);
	CHECK(k == NULL && strcmp(err, "jwks.json: $.keys[2].crv: expected \"P-256\" (the only EC "
	                               "curve supported), got \"P-384\"") == 0,
	      "load: EC on P-384 refused with its path (%s)", err);
	/* Move y off the curve: flip one character in the middle of it. */
	ec_jwk(a, ec, "bad", "P-256", 32, "");
	a[strlen(a) - 10] = a[strlen(a) - 10] == 'A' ? 'B' : 'A';
	CHECK(load_fails(jwks(set, 1, a), false, "$.keys[0]: EC point is not on P-256", NULL),
	      "load: EC point off the curve");
	CHECK(load_fails(
	          "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"AAAA\"}]}",
	          false, "$.keys[0].x: expected 32 bytes (a P-256 coordinate), got 3", NULL),
	      "load: short EC coordinate");
	CHECK(load_fails(jwks(set, 1, rsa_jwk(a, rsa, "r", ",\"alg\":\"HS256\"")), true,
	                 "$.keys[0].alg: expected \"RS256\" (the only algorithm for kty RSA), got "
	                 "\"HS256\"",
	                 NULL),
	      "load: RSA JWK with alg HS256 refused");
	CHECK(load_fails(jwks(set, 1, rsa_jwk(a, rsa, "r", ",\"alg\":null")), true,
	                 "$.keys[0].alg: expected \"RS256\"", "got null"),
	      "load: alg null refused");
	CHECK(load_fails(jwks(set, 1, j_oct), false, "no usable key", "HS256"),
	      "load: only oct keys without HS256");
	CHECK(load_fails(jwks(set, 1, oct_jwk(a, short_secret, sizeof short_secret, "s")), true,
	                 "$.keys[0].k: HS256 secret has 16 bytes", NULL),
	      "load: short HS256 secret");
	CHECK(load_fails("{\"keys\":[{\"kty\":\"RSA\",\"n\":\"@@@@\",\"e\":\"AQAB\"}]}", false,
	                 "$.keys[0].n: expected non-empty base64url", NULL),
	      "load: bad base64url in n");
	CHECK(load_fails("{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\"}]}", false,
	                 "$.keys[0].e: required key is missing (expected a base64url string)",
	                 NULL),
	      "load: RSA without e");
	bn_param(rsa, OSSL_PKEY_PARAM_RSA_N, 0, n);
	snprintf(a, sizeof a, "{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQ\"}", n);
	CHECK(load_fails(jwks(set, 1, a), false,
	                 "$.keys[0].e: RSA exponent must be odd and greater than 1", NULL),
	      "load: RSA exponent 1 refused");
	CHECK(load_fails(
	          jwks(set, 2, j_rsa, rsa_jwk(a, rsa2, "rsa1", "")), false,
	          "$.keys[1].kid: duplicate kid \"rsa1\": the RS256 key at $.keys[0] has it too",
	          NULL),
	      "load: duplicate kid");
	CHECK(load(jwks(set, 1, rsa_jwk(a, rsa, "", "")), false, &k, err) == 0 &&
	          pw_jwt_keys_get(k, 0)->has_kid,
	      "load: an empty kid is a kid (%s)", err);
	pw_jwt_keys_free(k);
	k = NULL;
	memset(b, 'k', 200);
	b[200] = '\0';
	CHECK(load_fails(jwks(set, 1, rsa_jwk(a, rsa, b, "")), false,
	                 "$.keys[0].kid: expected a string of at most 127 bytes, got 200 bytes",
	                 NULL),
	      "load: kid too long");
	CHECK(load_fails("{\"keys\":[{\"kty\":\"oct\",\"kid\":null,\"k\":\"AA\"}]}", true,
	                 "$.keys[0].kid: expected a string, got null", NULL),
	      "load: kid null refused");
	CHECK(load_fails(jwks(set, 1, "[1]"), false, "$.keys[0]: expected a JWK object, got array",
	                 NULL),
	      "load: key not an object");
	CHECK(load_fails(jwks(set, 2, j_ec, "{\"use\":\"enc\",\"x\":\"AA\"}"), false,
	                 "$.keys[1].kty: required key is missing", NULL),
	      "load: an encryption key without a kty is refused");

	/* Encryption keys are skipped, not refused, and not counted. */
	jwks(set, 2, j_ec, rsa_jwk(b, rsa_short, "enc1", ",\"use\":\"enc\""));
	CHECK(load(set, false, &k, err) == 0 && pw_jwt_keys_count(k) == 1,
	      "load: use=enc key skipped (%s)", err);
	pw_jwt_keys_free(k);
	k = NULL;
	jwks(set, 2, j_ec, "{\"kty\":\"OKP\",\"crv\":\"X25519\",\"use\":\"enc\",\"x\":\"AA\"}");
	CHECK(load(set, false, &k, err) == 0 && pw_jwt_keys_count(k) == 1,
	      "load: use=enc key of an unknown kty skipped (%s)", err);
	pw_jwt_keys_free(k);
	k = NULL;

	fd = mkstemp(path);
	jwks(set, 2, j_rsa, j_ec);
	CHECK(fd >= 0 && write(fd, set, strlen(set)) == (ssize_t)strlen(set), "wrote a JWKS file");
	close(fd);
	CHECK(pw_jwt_keys_load(path, false, &k, err, sizeof err) == 0 && pw_jwt_keys_count(k) == 2,
	      "load from a file (%s)", err);
	pw_jwt_keys_free(k);
	k = (struct pw_jwt_keys *)1;
	unlink(path);
	CHECK(pw_jwt_keys_load(path, false, &k, err, sizeof err) == -1 && k == NULL &&
	          strstr(err, "cannot open") && strstr(err, path),
	      "load from a missing file fails (%s)", err);
	CHECK(pw_jwt_keys_count(NULL) == 0, "count of no keys is 0");
}

static void test_valid(const struct pw_jwt_keys *k, const struct pw_jwt_keys *k_nohs)
{
	char t[TOK], c[TOK], privpem[4096];
	int short_rs = 0, tries;
	char *lt;
	jwt_t *j;
	BIO *bio;
	long n;
	char *data;

	mint(t, "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}",
	     claimsf(c, ",\"groups\":[\"dba\",\"readers\"],\"nbf\":%lld", NOW - 5), S_RS256, rsa);
	CHECK(verify(k, t) == 0, "RS256 valid (%s)", why);
	CHECK(strcmp(cl.sub, "alice") == 0 && strcmp(cl.iss, ISS) == 0 &&
	          strcmp(cl.kid, "rsa1") == 0 && strcmp(cl.alg, "RS256") == 0,
	      "RS256 claims: sub, iss, kid, alg");
	CHECK(cl.exp == NOW + 600 && cl.iat == NOW - 10 && cl.nbf == NOW - 5,
	      "RS256 claims: exp, iat, nbf");
	CHECK(cl.n_groups == 2 && strcmp(cl.groups[0], "dba") == 0 &&
	          strcmp(cl.groups[1], "readers") == 0,
	      "groups as an array");

	mint(t, "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"ec1\"}", claims(c, ""), S_ES256, ec);
	CHECK(verify(k, t) == 0 && strcmp(cl.alg, "ES256") == 0,
	      "ES256 valid, standard r||s signature (%s)", why);
	/* r or s with a leading zero byte must still be sent as 32 bytes; make one. */
	for (tries = 0; tries < 5000 && !short_rs; tries++)
		mint_k(t, "{\"alg\":\"ES256\",\"kid\":\"ec1\"}", claims(c, ""), S_ES256, ec, NULL,
		       0, &short_rs);
	CHECK(short_rs && verify(k, t) == 0, "ES256 with a zero-padded r or s (%d tries, %s)",
	      tries, why);
	mint(t, "{\"alg\":\"ES256\",\"kid\":\"ec1\"}", claims(c, ""), S_ES256_DER, ec);
	CHECK(refused(k, t, "signature is"), "ES256 with a DER signature refused (not JWS)");

	mint(t, "{\"alg\":\"HS256\",\"kid\":\"hs1\"}", claims(c, ""), S_HS256, NULL);
	CHECK(verify(k, t) == 0 && strcmp(cl.alg, "HS256") == 0, "HS256 valid when allowed (%s)",
	      why);
	CHECK(verify(k_nohs, t) == -1 && strstr(why, "HS256 not allowed"),
	      "HS256 refused when not allowed (%s)", why);
	mint_k(t, "{\"alg\":\"HS256\",\"kid\":\"hs1\"}", claims(c, ""), S_HS256, NULL,
	       (const uint8_t *)"another secret of 32 bytes......", 32, NULL);
	CHECK(refused(k, t, "signature does not verify (HMAC)"),
	      "HS256 with the wrong secret refused by our constant-time check");

	/* No kid: fine when exactly one key fits the algorithm. */
	mint(t, "{\"alg\":\"RS256\"}", claims(c, ""), S_RS256, rsa);
	CHECK(verify(k, t) == 0, "RS256 without kid, one RSA key (%s)", why);

	/* Interoperability with libjwt's own encoder. */
	bio = BIO_new(BIO_s_mem());
	PEM_write_bio_PrivateKey(bio, rsa, NULL, NULL, 0, NULL, NULL);
	n = BIO_get_mem_data(bio, &data);
	memcpy(privpem, data, (size_t)n);
	jwt_new(&j);
	jwt_add_header(j, "kid", "rsa1");
	jwt_add_grant(j, "sub", "bob");
	jwt_add_grant(j, "iss", ISS);
	jwt_add_grants_json(j, "{\"aud\":[\"other\",\"" AUD "\"],\"groups\":\"ops\"}");
	jwt_add_grant_int(j, "exp", (long)(NOW + 60));
	jwt_set_alg(j, JWT_ALG_RS256, (const unsigned char *)privpem, (int)n);
	lt = jwt_encode_str(j);
	CHECK(lt && verify(k, lt) == 0 && strcmp(cl.sub, "bob") == 0,
	      "RS256 token from libjwt's encoder, aud array (%s)", why);
	CHECK(cl.n_groups == 1 && strcmp(cl.groups[0], "ops") == 0, "groups as one string");
	free(lt);
	jwt_free(j);
	BIO_free(bio);
}

static void test_times(const struct pw_jwt_keys *k)
{
	struct pw_jwt_params p = params;
	char t[TOK], c[TOK];
	const char *h = "{\"alg\":\"ES256\",\"kid\":\"ec1\"}";

	mint(t, h, claimsf(c, ",\"exp\":%lld", NOW - 100), S_ES256, ec);
	/* The duplicate exp above must not sneak through: we reject duplicate names. */
	CHECK(refused(k, t, "payload is not a JSON object"), "duplicate claim names refused");

	snprintf(c, sizeof c,
	         "{\"sub\":\"a\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":%lld}", NOW - 100);
	mint(t, h, c, S_ES256, ec);
	CHECK(refused(k, t,
	              "token expired at 2027-01-15T07:58:20Z (now 2027-01-15T08:00:00Z, "
	              "leeway 30 s)"),
	      "expired (%s)", why);
	snprintf(c, sizeof c,
	         "{\"sub\":\"a\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":%lld}", NOW - 10);
	mint(t, h, c, S_ES256, ec);
	CHECK(verify(k, t) == 0, "expired 10 s ago, within the 30 s leeway (%s)", why);
	p.leeway_s = 0;
	snprintf(c, sizeof c,
	         "{\"sub\":\"a\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":%lld}", NOW);
	mint(t, h, c, S_ES256, ec);
	CHECK(verify_p(k, &p, t) == -1 && strstr(why, "expired"), "exp == now is expired");
	snprintf(c, sizeof c,
	         "{\"sub\":\"a\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":\"%lld\"}",
	         NOW + 100);
	mint(t, h, c, S_ES256, ec);
	CHECK(refused(k, t, "claim exp is not a number"), "exp as a string refused");
	snprintf(c, sizeof c,
	         "{\"sub\":\"a\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":%lld.5}",
	         NOW + 100);
	mint(t, h, c, S_ES256, ec);
	CHECK(verify(k, t) == 0 && cl.exp == NOW + 100, "exp as a fractional number (%s)", why);
	snprintf(c, sizeof c,
	         "{\"sub\":\"a\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":1e300}");
	mint(t, h, c, S_ES256, ec);
	CHECK(refused(k, t, "claim exp is out of range"), "exp out of range refused");

	mint(t, h, "{\"sub\":\"a\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\"}", S_ES256, ec);
	CHECK(refused(k, t, "token has no exp claim"), "missing exp refused");
	p = params;
	p.require_exp = false;
	CHECK(verify_p(k, &p, t) == 0 && cl.exp == 0, "missing exp accepted when not required");

	mint(t, h, claimsf(c, ",\"nbf\":%lld", NOW + 100), S_ES256, ec);
	CHECK(refused(k, t, "token not valid before 2027-01-15T08:01:40Z"), "nbf in the future");
	mint(t, h, claimsf(c, ",\"nbf\":%lld", NOW + 20), S_ES256, ec);
	CHECK(verify(k, t) == 0, "nbf 20 s ahead, within leeway (%s)", why);
	snprintf(c, sizeof c,
	         "{\"sub\":\"a\",\"iss\":\"" ISS "\",\"aud\":\"" AUD
	         "\",\"exp\":%lld,\"iat\":%lld}",
	         NOW + 600, NOW + 100);
	mint(t, h, c, S_ES256, ec);
	CHECK(refused(k, t, "token issued in the future"), "iat in the future");
}

static void test_claims(const struct pw_jwt_keys *k)
{
	struct pw_jwt_params p = params;
	char t[TOK], c[TOK], many[TOK] = "";
	const char *h = "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}";
	int i;

	snprintf(c, sizeof c,
	         "{\"sub\":\"a\",\"iss\":\"https://evil.example\",\"aud\":\"" AUD
	         "\",\"exp\":%lld}",
	         NOW + 60);
	mint(t, h, c, S_RS256, rsa);
	CHECK(refused(k, t, "issuer \"https://evil.example\" is not \"" ISS "\""), "wrong issuer");
	snprintf(c, sizeof c, "{\"sub\":\"a\",\"aud\":\"" AUD "\",\"exp\":%lld}", NOW + 60);
	mint(t, h, c, S_RS256, rsa);
	CHECK(refused(k, t, "token has no iss claim"), "missing issuer");

	snprintf(c, sizeof c, "{\"sub\":\"a\",\"iss\":\"" ISS "\",\"aud\":\"other\",\"exp\":%lld}",
	         NOW + 60);
	mint(t, h, c, S_RS256, rsa);
	CHECK(refused(k, t, "audience \"other\" is not \"" AUD "\""), "wrong audience");
	p.audience = NULL;
	CHECK(verify_p(k, &p, t) == 0, "audience not checked when not configured");
	snprintf(c, sizeof c,
	         "{\"sub\":\"a\",\"iss\":\"" ISS "\",\"aud\":[\"x\",\"y\"],\"exp\":%lld}",
	         NOW + 60);
	mint(t, h, c, S_RS256, rsa);
	CHECK(refused(k, t, "does not include \"" AUD "\""), "audience array without ours");
	snprintf(c, sizeof c,
	         "{\"sub\":\"a\",\"iss\":\"" ISS "\",\"aud\":[\"x\",\"" AUD "\"],\"exp\":%lld}",
	         NOW + 60);
	mint(t, h, c, S_RS256, rsa);
	CHECK(verify(k, t) == 0, "audience array containing ours (%s)", why);
	snprintf(c, sizeof c, "{\"sub\":\"a\",\"iss\":\"" ISS "\",\"exp\":%lld}", NOW + 60);
	mint(t, h, c, S_RS256, rsa);
	CHECK(refused(k, t, "token has no aud claim"), "missing audience");

	mint(t, h, claims(c, ",\"groups\":\"dba\""), S_RS256, rsa);
	CHECK(verify(k, t) == 0 && cl.n_groups == 1 && strcmp(cl.groups[0], "dba") == 0 &&
	          strcmp(cl.sub, "alice") == 0,
	      "one group as a string, sub extracted");
	p = params;
	p.groups_claim = "roles";
	mint(t, h, claims(c, ",\"roles\":[\"r1\"],\"groups\":[\"g1\",\"g2\"]"), S_RS256, rsa);
	CHECK(verify_p(k, &p, t) == 0 && cl.n_groups == 1 && strcmp(cl.groups[0], "r1") == 0,
	      "groups from a configured claim");
	for (i = 0; i < PW_JWT_MAX_GROUPS + 1; i++)
		sprintf(many + strlen(many), "%s\"g%d\"", i ? "," : "", i);
	mint(t, h, claimsf(c, ",\"groups\":[%s]", many), S_RS256, rsa);
	CHECK(refused(k, t, "has 33 groups, at most 32"), "too many groups refused");
	mint(t, h,
	     claims(c, ",\"groups\":[\"a\",\"0123456789012345678901234567890123456789012345678901"
	               "234567890123\"]"),
	     S_RS256, rsa);
	CHECK(refused(k, t, "groups[1] is not a non-empty string under 64"),
	      "64-byte group refused");
	mint(t, h, claims(c, ",\"groups\":[\"a\",7]"), S_RS256, rsa);
	CHECK(refused(k, t, "groups[1]"), "non-string group refused");
	mint(t, h, claims(c, ",\"groups\":7"), S_RS256, rsa);
	CHECK(refused(k, t, "claim groups is neither"), "groups as a number refused");
	snprintf(c, sizeof c, "{\"sub\":42,\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":%lld}",
	         NOW + 60);
	mint(t, h, c, S_RS256, rsa);
	CHECK(refused(k, t, "claim sub is not a string"), "numeric sub refused");
}

static void test_attacks(const struct pw_jwt_keys *k, const struct pw_jwt_keys *k_two_rsa)
{
	char t[TOK], t2[TOK], c[TOK], evil_jwk[JWK], hdr[2 * JWK];
	size_t pemlen, i;
	char *pem = pem_pub(rsa, &pemlen);
	char *dot;
	jwt_t *j = NULL;

	mint(t, "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", claims(c, ""), S_RS256, rsa);
	dot = strrchr(t, '.');
	dot[20] = dot[20] == 'A' ? 'B' : 'A';
	CHECK(refused(k, t, "signature does not verify"), "RS256 with a flipped signature byte");
	mint(t2, "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", claims(c, ""), S_RS256, rsa);
	/* Same signature, but a payload with another sub: the signature does not cover it. */
	mint(t, "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", claims(c, ",\"x\":1"), S_NONE, NULL);
	strcat(t, strrchr(t2, '.') + 1);
	CHECK(refused(k, t, "signature does not verify"), "payload swapped under a signature");
	/* Last character changed to one that only alters the unused low bits: a second spelling
	 * of the same signature, which a lenient decoder would take. */
	strcpy(t, t2);
	t[strlen(t) - 1] = B64URL[(strchr(B64URL, t[strlen(t) - 1]) - B64URL) | 1];
	CHECK(refused(k, t, "signature is not base64url"), "non-canonical base64url refused");

	mint(t, "{\"alg\":\"none\"}", claims(c, ""), S_NONE, NULL);
	CHECK(refused(k, t, "algorithm none refused"), "alg none, empty signature");
	mint(t, "{\"alg\":\"none\",\"kid\":\"rsa1\"}", claims(c, ""), S_RS256, rsa);
	CHECK(refused(k, t, "algorithm none refused"), "alg none with a signature");
	mint(t, "{\"alg\":\"nOnE\"}", claims(c, ""), S_NONE, NULL);
	CHECK(refused(k, t, "algorithm none refused"), "alg nOnE refused");
	mint(t, "{\"alg\":\"RS384\",\"kid\":\"rsa1\"}", claims(c, ""), S_RS256, rsa);
	CHECK(refused(k, t, "algorithm \"RS384\" not supported"), "RS384 refused");
	mint(t, "{\"alg\":\"RS256\",\"alg\":\"none\",\"kid\":\"rsa1\"}", claims(c, ""), S_RS256,
	     rsa);
	CHECK(refused(k, t, "header is not a JSON object"), "duplicate alg in header refused");

	mint(t, "{\"alg\":\"RS256\",\"kid\":\"k9\"}", claims(c, ""), S_RS256, rsa);
	CHECK(refused(k, t, "unknown key id \"k9\""), "unknown kid");
	mint(t, "{\"alg\":\"RS256\",\"kid\":\"k\\n9\"}", claims(c, ""), S_RS256, rsa);
	CHECK(refused(k, t, "unknown key id \"k?9\""), "control characters kept out of the log");

	/* Algorithm confusion: HS256 keyed with the RSA public key's PEM. libjwt on its own takes
	 * it, which is why this module exists; we must not. */
	mint_k(t, "{\"alg\":\"HS256\",\"kid\":\"rsa1\"}", claims(c, ""), S_HS256, NULL,
	       (const uint8_t *)pem, pemlen, NULL);
	CHECK(jwt_decode(&j, t, (const unsigned char *)pem, (int)pemlen) == 0,
	      "(libjwt alone accepts the RSA-PEM-as-HMAC-secret token)");
	jwt_free(j);
	CHECK(refused(k, t, "key id \"rsa1\" is an RSA key, it cannot verify HS256"),
	      "algorithm confusion by kid refused");
	mint_k(t, "{\"alg\":\"HS256\"}", claims(c, ""), S_HS256, NULL, (const uint8_t *)pem, pemlen,
	       NULL);
	CHECK(refused(k, t, "signature does not verify (HMAC)"),
	      "algorithm confusion without kid refused");
	mint(t, "{\"alg\":\"ES256\",\"kid\":\"rsa1\"}", claims(c, ""), S_ES256, ec);
	CHECK(refused(k, t, "is an RSA key, it cannot verify ES256"), "ES256 with an RSA kid");

	/* A key carried in the header itself is never used. */
	ec_jwk(evil_jwk, evil, "ec1", "P-256", 32, "");
	snprintf(hdr, sizeof hdr, "{\"alg\":\"ES256\",\"kid\":\"ec1\",\"jwk\":%s}", evil_jwk);
	mint(t, hdr, claims(c, ""), S_ES256, evil);
	CHECK(refused(k, t, "signature does not verify"), "embedded jwk header ignored");

	mint(t, "{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"crit\":[\"exp\"],\"exp\":1}", claims(c, ""),
	     S_RS256, rsa);
	CHECK(refused(k, t, "critical header"), "crit header refused");
	mint(t, "{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"typ\":\"at+jwt\"}", claims(c, ""), S_RS256,
	     rsa);
	CHECK(refused(k, t, "typ \"at+jwt\" not supported"), "typ other than JWT refused");

	mint(t, "{\"alg\":\"RS256\"}", claims(c, ""), S_RS256, rsa);
	CHECK(refused(k_two_rsa, t, "no kid and 2 RSA keys"), "no kid with two RSA keys refused");
	mint(t, "{\"alg\":\"RS256\",\"kid\":\"rsa2\"}", claims(c, ""), S_RS256, rsa2);
	CHECK(verify(k_two_rsa, t) == 0, "second RSA key by kid (%s)", why);
	mint(t, "{\"alg\":\"RS256\",\"kid\":\"rsa2\"}", claims(c, ""), S_RS256, rsa);
	CHECK(refused(k_two_rsa, t, "signature does not verify"), "signed by the other RSA key");

	/* Malformed tokens. */
	mint(t2, "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", claims(c, ""), S_RS256, rsa);
	strcpy(t, t2);
	*strrchr(t, '.') = '\0';
	CHECK(refused(k, t, "three dot-separated parts"), "two parts");
	strcpy(t, t2);
	strcat(t, ".AAAA");
	CHECK(refused(k, t, "three dot-separated parts"), "four parts");
	CHECK(refused(k, "", "token length 0"), "empty token");
	strcpy(t, t2);
	t[3] = '+';
	CHECK(refused(k, t, "not base64url at 3"), "'+' in the header");
	strcpy(t, "eyJhb");
	strcat(t, strchr(t2, '.'));
	CHECK(refused(k, t, "header is not base64url"), "header of impossible base64 length");
	b64url_str("not json", t);
	strcat(t, strchr(t2, '.'));
	CHECK(refused(k, t, "header is not a JSON object"), "header not JSON");
	b64url_str("[\"RS256\"]", t);
	strcat(t, strchr(t2, '.'));
	CHECK(refused(k, t, "header is not a JSON object"), "header a JSON array");
	strcpy(t, t2);
	dot = strchr(t, '.');
	memmove(dot + 1, strchr(dot + 1, '.'), strlen(strchr(dot + 1, '.')) + 1);
	CHECK(refused(k, t, "empty header or payload"), "empty payload");
	strcpy(t, t2);
	t[10] = '\0';
	CHECK(pw_jwt_verify(k, &params, t, strlen(t2), NOW, &cl, why, sizeof why) == -1 &&
	          strstr(why, "0x00"),
	      "NUL inside the token (%s)", why);
	for (i = 0; i < 13000; i++)
		c[i] = 'x';
	c[i] = '\0';
	mint(t, "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", claimsf(t2, ",\"pad\":\"%s\"", c), S_RS256,
	     rsa);
	CHECK(strlen(t) > PW_JWT_MAX_TOKEN && refused(k, t, "not in 1..16384"), "huge token");
	free(pem);
}

int main(void)
{
	char j_rsa[JWK], j_rsa2[JWK], j_ec[JWK], j_oct[JWK], set[JWKS], err[ERRLEN], t[3][TOK];
	char c[TOK];
	struct pw_jwt_keys *k = NULL, *k_nohs = NULL, *k_two = NULL;
	struct thread_arg ta[4];
	pthread_t th[4];
	int i, failures = 0;

	rsa = EVP_RSA_gen(2048);
	rsa2 = EVP_RSA_gen(2048);
	rsa_short = EVP_RSA_gen(1024);
	ec = EVP_EC_gen("P-256");
	ec384 = EVP_EC_gen("P-384");
	evil = EVP_EC_gen("P-256");
	RAND_bytes(secret, sizeof secret);
	CHECK(rsa && rsa2 && rsa_short && ec && ec384 && evil, "test keys generated");

	rsa_jwk(j_rsa, rsa, "rsa1", ",\"alg\":\"RS256\",\"use\":\"sig\"");
	rsa_jwk(j_rsa2, rsa2, "rsa2", "");
	ec_jwk(j_ec, ec, "ec1", "P-256", 32, ",\"alg\":\"ES256\"");
	oct_jwk(j_oct, secret, sizeof secret, "hs1");

	test_load(j_rsa, j_ec, j_oct);

	jwks(set, 3, j_rsa, j_ec, j_oct);
	CHECK(load(set, true, &k, err) == 0 && pw_jwt_keys_count(k) == 3,
	      "JWKS with RSA, EC and oct keys, HS256 allowed (%s)", err);
	CHECK(load(set, false, &k_nohs, err) == 0 && pw_jwt_keys_count(k_nohs) == 2,
	      "same JWKS without HS256: oct key ignored (%s)", err);
	CHECK(load(jwks(set, 2, j_rsa, j_rsa2), false, &k_two, err) == 0, "two RSA keys (%s)", err);
	if (!k || !k_nohs || !k_two)
		return check_done();

	test_valid(k, k_nohs);
	test_times(k);
	test_claims(k);
	test_attacks(k, k_two);

	/* Many threads verifying against the same keys at once. */
	mint(t[0], "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", claims(c, ""), S_RS256, rsa);
	mint(t[1], "{\"alg\":\"ES256\",\"kid\":\"ec1\"}", claims(c, ""), S_ES256, ec);
	mint(t[2], "{\"alg\":\"HS256\",\"kid\":\"hs1\"}", claims(c, ""), S_HS256, NULL);
	for (i = 0; i < 4; i++) {
		ta[i] = (struct thread_arg){.k = k, .toks = {t[0], t[1], t[2]}};
		pthread_create(&th[i], NULL, hammer, &ta[i]);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		failures += ta[i].failures;
	}
	CHECK(failures == 0, "4 threads x 300 verifications, %d failures", failures);

	pw_jwt_keys_free(k);
	pw_jwt_keys_free(k_nohs);
	pw_jwt_keys_free(k_two);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(rsa2);
	EVP_PKEY_free(rsa_short);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(ec384);
	EVP_PKEY_free(evil);
	return check_done();
}
