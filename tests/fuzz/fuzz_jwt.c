/* libFuzzer harness: JWT verification (user/jwt.c pw_jwt_verify) and the JWKS reader
 * (user/jwks.c pw_jwt_keys_load_string).
 *
 * Keys: the fixed test keys of fuzzlib.c (RS256 "rsa", ES256 "ec", HS256 "hs"), loaded once
 * from their JWKS with HS256 allowed; the clock is fixed (NOW). Per input:
 *   - the input is verified as a compact token, as it is;
 *   - when it holds a NUL byte, the bytes before the first are a header and the bytes after it
 *     a payload: the harness encodes them and signs them with the HS256 key, so the claim
 *     checks that follow the signature see fuzzed claims (verified with the usual parameters,
 *     or, for a payload of odd length, with no issuer or audience, another groups claim, exp
 *     not required and a negative leeway);
 *   - when it starts with '{' and holds no NUL, it is a JWKS: loaded (HS256 allowed when its
 *     length is odd) and, when it loads, used to verify a fixed HS256 token, then freed.
 * Invariants (abort() when broken): a refusal gives a reason, printable ASCII, and zeroed
 * claims; accepted claims are NUL-terminated, with the algorithm one of the three and
 * at most PW_JWT_MAX_GROUPS groups.
 *
 * Seed tokens are minted by this harness with the private test keys:
 * PGWARD_FUZZ_MKSEEDS=DIR build/fuzz/fuzz_jwt writes them into DIR (ES256 signatures are
 * randomised, so the checked-in ones are one such run). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgward/jwks.h"
#include "pgward/jwt.h"
#include "fuzzlib.h"

#define NOW 1800000000LL /* 2027-01-15T08:00:00Z */
#define ISS "https://idp.example"
#define AUD "pgward"

static struct pw_jwt_keys *keys;
static char hs_token[2048]; /* a valid HS256 token, for JWKS inputs */

static const struct pw_jwt_params params = {
    .issuer = ISS, .audience = AUD, .leeway_s = 30, .groups_claim = NULL, .require_exp = true};
static const struct pw_jwt_params params_loose = {
    .issuer = NULL, .audience = "", .leeway_s = -5, .groups_claim = "roles", .require_exp = false};

static void fail(const char *what, const char *why)
{
	fprintf(stderr, "fuzz_jwt: %s (reason: ", what);
	for (const char *c = why ? why : ""; *c; c++)
		fprintf(stderr, *c >= 0x20 && *c < 0x7f ? "%c" : "\\x%02x", (unsigned char)*c);
	fprintf(stderr, ")\n");
	abort();
}

/* header.payload.signature, signed with kid (see pwfuzz_sign); NULL when it does not fit. */
static char *mint(char *out, size_t cap, const void *hdr, size_t hlen, const void *pay, size_t plen,
                  const char *kid)
{
	size_t need = (hlen + 2) / 3 * 4 + (plen + 2) / 3 * 4 + 2 + 1024;
	size_t n;

	if (cap < need)
		return NULL;
	n = pwfuzz_b64url(hdr, hlen, out);
	out[n++] = '.';
	n += pwfuzz_b64url(pay, plen, out + n);
	if (kid) {
		char sig[1024];
		if (!pwfuzz_sign(kid, out, sig, sizeof sig))
			return NULL;
		out[n++] = '.';
		strcpy(out + n, sig);
	} else {
		strcpy(out + n, ".");
	}
	return out;
}

static void make_seeds(void);

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"hs\"}";
	static const char pay[] =
	    "{\"sub\":\"alice\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":1800000600}";
	struct pw_jwt_claims cl;
	char err[256];

	(void)argc, (void)argv;
	if (pw_jwt_keys_load_string(pwfuzz_jwks(), "fuzz.jwks", true, &keys, err, sizeof err) !=
	        0 ||
	    pw_jwt_keys_count(keys) != 3) {
		fprintf(stderr, "fuzz_jwt: cannot load the test keys: %s\n", err);
		exit(2);
	}
	if (!mint(hs_token, sizeof hs_token, hdr, strlen(hdr), pay, strlen(pay), "hs") ||
	    pw_jwt_verify(keys, &params, hs_token, strlen(hs_token), NOW, &cl, err, sizeof err)) {
		fprintf(stderr, "fuzz_jwt: the fixed token does not verify: %s\n", err);
		exit(2);
	}
	if (pwfuzz_seed_dir()) {
		make_seeds();
		exit(0);
	}
	return 0;
}

static int is_zero(const void *p, size_t n)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < n; i++)
		if (c[i])
			return 0;
	return 1;
}

static int terminated(const char *s, size_t n)
{
	return memchr(s, 0, n) != NULL;
}

static void verify(const struct pw_jwt_keys *k, const struct pw_jwt_params *p, const char *tok,
                   size_t len)
{
	struct pw_jwt_claims cl;
	char why[256];
	int rc;

	memset(&cl, 0xa5, sizeof cl);
	memset(why, 0xa5, sizeof why);
	rc = pw_jwt_verify(k, p, tok, len, NOW, &cl, why, sizeof why);
	if (rc != 0) {
		if (!terminated(why, sizeof why))
			fail("the reason is not NUL-terminated", NULL);
		for (const char *c = why; *c; c++)
			if (*c < 0x20 || *c > 0x7e)
				fail("the reason holds a byte that is not printable ASCII", why);
		if (rc != -1)
			fail("pw_jwt_verify returned neither 0 nor -1", why);
		if (!why[0])
			fail("a refusal without a reason", why);
		if (!is_zero(&cl, sizeof cl))
			fail("a refusal left claims behind", why);
		return;
	}
	if (!terminated(cl.sub, sizeof cl.sub) || !terminated(cl.iss, sizeof cl.iss) ||
	    !terminated(cl.kid, sizeof cl.kid) || !terminated(cl.alg, sizeof cl.alg))
		fail("an accepted claim is not NUL-terminated", NULL);
	if (strcmp(cl.alg, "RS256") && strcmp(cl.alg, "ES256") && strcmp(cl.alg, "HS256"))
		fail("an accepted token has another algorithm", cl.alg);
	if (cl.n_groups < 0 || cl.n_groups > PW_JWT_MAX_GROUPS)
		fail("group count out of range", NULL);
	for (int i = 0; i < cl.n_groups; i++)
		if (!terminated(cl.groups[i], sizeof cl.groups[i]))
			fail("a group is not NUL-terminated", NULL);
	if (p->require_exp && cl.exp == 0)
		fail("a token without exp was accepted", NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *tok = malloc(size ? size : 1);
	const uint8_t *nul = memchr(data, 0, size);

	if (!tok)
		return 0;
	memcpy(tok, data, size);
	verify(keys, &params, tok, size);
	free(tok);

	if (nul) { /* header \0 payload: signed here with the HS256 key */
		size_t hlen = (size_t)(nul - data), plen = size - hlen - 1;
		size_t cap = (size + 2) / 3 * 4 + 1100;
		char *buf = malloc(cap), *t;

		if (buf && (t = mint(buf, cap, data, hlen, nul + 1, plen, "hs"))) {
			size_t n = strlen(t);
			char *exact = malloc(n);
			if (exact) {
				memcpy(exact, t, n);
				verify(keys, plen & 1 ? &params_loose : &params, exact, n);
				free(exact);
			}
		}
		free(buf);
	} else if (size && data[0] == '{') { /* a JWKS */
		char *text = malloc(size + 1), err[256];
		struct pw_jwt_keys *k = NULL;

		if (!text)
			return 0;
		memcpy(text, data, size);
		text[size] = '\0';
		memset(err, 0xa5, sizeof err);
		if (pw_jwt_keys_load_string(text, "fuzz.jwks", size & 1, &k, err, sizeof err) ==
		    0) {
			if (!k || pw_jwt_keys_count(k) < 1)
				fail("a JWKS loaded without a usable key", NULL);
			verify(k, &params, hs_token, strlen(hs_token));
			pw_jwt_keys_free(k);
		} else if (k || !terminated(err, sizeof err) || !err[0]) {
			fail("a JWKS refused without a reason or with keys", NULL);
		}
		free(text);
	}
	return 0;
}

/* ---- seeds ---------------------------------------------------------------------------------- */

static void seed_token(const char *name, const char *hdr, const char *pay, const char *kid)
{
	char tok[8192];

	if (!mint(tok, sizeof tok, hdr, strlen(hdr), pay, strlen(pay), kid)) {
		fprintf(stderr, "fuzz_jwt: cannot mint seed %s\n", name);
		exit(2);
	}
	pwfuzz_seed(name, tok, strlen(tok));
}

static void seed_pair(const char *name, const char *hdr, const char *pay)
{
	char buf[8192];
	size_t h = strlen(hdr), p = strlen(pay);

	memcpy(buf, hdr, h);
	buf[h] = '\0';
	memcpy(buf + h + 1, pay, p);
	pwfuzz_seed(name, buf, h + 1 + p);
}

#define H(alg, kid) "{\"alg\":\"" alg "\",\"typ\":\"JWT\",\"kid\":\"" kid "\"}"
#define CLAIMS(extra)                                                                              \
	"{\"sub\":\"alice\",\"iss\":\"" ISS "\",\"aud\":\"" AUD                                    \
	"\",\"exp\":1800000600,\"iat\":1799999990" extra "}"

static void make_seeds(void)
{
	struct pw_jwt_claims cl;
	char why[256], tok[8192];

	seed_token("rs256-valid", H("RS256", "rsa"), CLAIMS(",\"groups\":[\"dev\",\"ops\"]"),
	           "rsa");
	seed_token("es256-valid", H("ES256", "ec"), CLAIMS(",\"groups\":\"dev\""), "ec");
	seed_token("hs256-valid", H("HS256", "hs"), CLAIMS(""), "hs");
	seed_token("es256-der-signature", H("ES256", "ec"), CLAIMS(""), "ec-der");
	seed_token("alg-none", "{\"alg\":\"none\",\"typ\":\"JWT\"}", CLAIMS(""), NULL);
	seed_token("alg-confusion", H("HS256", "rsa"), CLAIMS(""), "hs");
	seed_token("no-kid", "{\"alg\":\"RS256\"}", CLAIMS(""), "rsa");
	seed_token("unknown-kid", H("RS256", "k9"), CLAIMS(""), "rsa");
	seed_token("typ-at-jwt", "{\"alg\":\"RS256\",\"typ\":\"at+jwt\",\"kid\":\"rsa\"}",
	           CLAIMS(""), "rsa");
	seed_token("crit", "{\"alg\":\"HS256\",\"kid\":\"hs\",\"crit\":[\"exp\"],\"exp\":1}",
	           CLAIMS(""), "hs");
	seed_token("expired", H("HS256", "hs"),
	           "{\"sub\":\"a\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":1799999000}",
	           "hs");
	seed_token("nbf-future", H("HS256", "hs"), CLAIMS(",\"nbf\":1800009999"), "hs");
	seed_token("aud-array", H("HS256", "hs"),
	           "{\"sub\":\"a\",\"iss\":\"" ISS "\",\"aud\":[\"x\",\"" AUD
	           "\"],\"exp\":1800000600.75,\"iat\":1.79999999e9}",
	           "hs");
	seed_token("wrong-iss", H("RS256", "rsa"),
	           "{\"sub\":\"a\",\"iss\":\"https://evil\\u0000\\n\",\"aud\":\"" AUD
	           "\",\"exp\":1800000600}",
	           "rsa");
	seed_token("no-exp", H("HS256", "hs"),
	           "{\"sub\":\"a\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\"}", "hs");
	seed_token("duplicate-claim", H("HS256", "hs"),
	           "{\"sub\":\"a\",\"sub\":\"b\",\"iss\":\"" ISS "\",\"aud\":\"" AUD
	           "\",\"exp\":1800000600}",
	           "hs");
	seed_token(
	    "groups-many", H("HS256", "hs"),
	    CLAIMS(",\"groups\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\","
	           "\"k\",\"l\",\"m\",\"n\",\"o\",\"p\",\"q\",\"r\",\"s\",\"t\",\"u\",\"v\","
	           "\"w\",\"x\",\"y\",\"z\",\"0\",\"1\",\"2\",\"3\",\"4\",\"5\",\"6\"]"),
	    "hs");
	pwfuzz_seed("not-three-parts", "eyJhbGciOiJub25lIn0.e30", 23);
	pwfuzz_seed("padding", "eyJhbGciOiJIUzI1NiJ9.e30=.AAAA==", 32);

	/* header \0 payload: signed by the harness */
	seed_pair("pair-valid", H("HS256", "hs"), CLAIMS(",\"groups\":[\"dev\"]"));
	seed_pair("pair-loose", H("HS256", "hs"), "{\"sub\":\"bob\",\"roles\":\"admin\"}");
	seed_pair("pair-types", H("HS256", "hs"),
	          "{\"sub\":1,\"iss\":null,\"aud\":[1,true],\"exp\":\"soon\",\"nbf\":1e400,"
	          "\"groups\":[[]]}");
	seed_pair("pair-big-numbers", H("HS256", "hs"),
	          CLAIMS(",\"nbf\":-9223372036854775808,\"groups\":[\"x\"],\"z\":1e308"));

	/* JWKS texts */
	pwfuzz_seed("jwks-test-keys", pwfuzz_jwks(), strlen(pwfuzz_jwks()));
	static const char small[] =
	    "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"s\",\"n\":\"AQAB\",\"e\":\"AQAB\"},"
	    "{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"AA\",\"y\":\"AA\"},"
	    "{\"kty\":\"oct\",\"use\":\"enc\",\"k\":\"AA\"}]}";
	pwfuzz_seed("jwks-unusable", small, strlen(small));

	/* the valid seeds must verify */
	static const char *const valid[] = {"rs256-valid", "es256-valid", "hs256-valid"};
	for (size_t i = 0; i < 3; i++) {
		char path[4096];
		FILE *f;
		size_t n;

		snprintf(path, sizeof path, "%s/%s", pwfuzz_seed_dir(), valid[i]);
		f = fopen(path, "rb");
		n = f ? fread(tok, 1, sizeof tok, f) : 0;
		if (f)
			fclose(f);
		if (pw_jwt_verify(keys, &params, tok, n, NOW, &cl, why, sizeof why) != 0) {
			fprintf(stderr, "fuzz_jwt: seed %s does not verify: %s\n", valid[i], why);
			exit(2);
		}
	}
}
