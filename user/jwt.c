/* JWT verification for JWT-as-password logins: token checks around libjwt 1.10's jwt_decode,
 * against the keys jwks.c loaded. libjwt 1.10 trusts the token's header to choose the algorithm
 * and would, for instance, HMAC-verify with an RSA PEM used as the secret; so the header is
 * parsed and judged here, the key is chosen here, and libjwt is only asked to check one
 * signature with one key whose type fits. Claims are then read from our own strict parse of the
 * payload. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <jwt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "pgward/b64url.h"
#include "pgward/jwks.h"
#include "pgward/jwt.h"
#include "pgward/log.h"

#define CLAIM_LIMIT (1LL << 62) /* |NumericDate| bound: keeps "+ leeway" from overflowing */
#define SHOW        72          /* token text shown in a reason, at most */

/* libjwt's name of each algorithm we let through (enum pw_jwk_alg) */
static const jwt_alg_t alg_libjwt[] = {JWT_ALG_RS256, JWT_ALG_ES256, JWT_ALG_HS256};

/* ---- small helpers ---- */

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
		if (tok[i] != '.' && pw_b64url_val((unsigned char)tok[i]) < 0) {
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
	uint8_t *raw = pw_b64url_dup(b64, n, &len);
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

static int check_header(const struct pw_jwt_keys *k, json_t *hdr, enum pw_jwk_alg *alg,
                        bool *has_kid, struct pw_jwt_claims *out, char *why, size_t whylen)
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
	for (i = 0; i < PW_JWK_N_ALGS && strcmp(name, pw_jwk_alg_name(i)) != 0; i++)
		;
	if (i == PW_JWK_N_ALGS) {
		pw_errf(why, whylen, "algorithm \"%s\" not supported", show(name, s, sizeof s));
		return -1;
	}
	*alg = (enum pw_jwk_alg)i;
	if (*alg == PW_JWK_HS256 && !pw_jwt_keys_allow_hs256(k)) {
		pw_errf(why, whylen, "algorithm HS256 not allowed");
		return -1;
	}
	snprintf(out->alg, sizeof out->alg, "%s", pw_jwk_alg_name(*alg));
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

static const struct pw_jwk *pick_key(const struct pw_jwt_keys *k, enum pw_jwk_alg alg, bool has_kid,
                                     const char *kid, char *why, size_t whylen)
{
	const struct pw_jwk *found = NULL, *named = NULL;
	char s[SHOW + 4];
	int i, count = 0;

	for (i = 0; i < pw_jwt_keys_count(k); i++) {
		const struct pw_jwk *c = pw_jwt_keys_get(k, i);

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
		        show(kid, s, sizeof s), pw_jwk_kty(named->alg), pw_jwk_alg_name(alg));
	else if (has_kid)
		pw_errf(why, whylen, "unknown key id \"%s\"", show(kid, s, sizeof s));
	else
		pw_errf(why, whylen, "token has no kid and %d %s keys are configured (need one)",
		        count, pw_jwk_kty(alg));
	return NULL;
}

/* Checks done before libjwt sees the token: the signature has the exact size the key makes
 * (which also refuses DER-encoded ECDSA), and HS256 is compared in constant time here since
 * libjwt releases before the CVE-2024-25189 fix used strcmp. */
static int check_signature(const struct pw_jwk *key, const struct parts *pt, char *why,
                           size_t whylen)
{
	uint8_t mac[EVP_MAX_MD_SIZE], *sig;
	unsigned int maclen = 0;
	size_t siglen = 0;
	int rc = 0;

	sig = pw_b64url_dup(pt->s, pt->slen, &siglen);
	if (!sig) {
		pw_errf(why, whylen, "token signature is not base64url");
		return -1;
	}
	if (siglen != key->sig_len) {
		pw_errf(why, whylen, "signature is %zu bytes, %s with this key makes %zu", siglen,
		        pw_jwk_alg_name(key->alg), key->sig_len);
		rc = -1;
	} else if (key->alg == PW_JWK_HS256) {
		size_t signed_len = pt->hlen + 1 + pt->plen;

		if (!HMAC(EVP_sha256(), key->material, (int)key->len, (const uint8_t *)pt->h,
		          signed_len, mac, &maclen) ||
		    maclen != SHA256_DIGEST_LENGTH ||
		    CRYPTO_memcmp(mac, sig, SHA256_DIGEST_LENGTH) != 0) {
			pw_errf(why, whylen, "signature does not verify (HMAC)");
			rc = -1;
		}
		OPENSSL_cleanse(mac, sizeof mac);
	}
	free(sig);
	return rc;
}

static int libjwt_check(const struct pw_jwk *key, const char *token, size_t len, char *why,
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
		        pw_jwk_alg_name(key->alg));
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
	const struct pw_jwk *key;
	struct parts pt;
	bool has_kid = false;
	enum pw_jwk_alg alg;
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
