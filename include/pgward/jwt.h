/* JWT as a PostgreSQL password: a client sends a compact JWS where a password would go and
 * pgwardd verifies it against the public keys of a JWKS file (RFC 7517; loaded by jwks.h).
 * Signature checking is libjwt's, but everything libjwt 1.10 gets wrong or leaves to the caller
 * is done here first: the header is parsed by us, "none" and unexpected algorithms are refused,
 * the key is picked by kid and must be of the type the algorithm needs (no RSA-PEM-as-HMAC-secret
 * confusion), and the registered claims (exp, nbf, iat, iss, aud) are checked after the
 * signature.
 * Supported: RS256 (RSA >= 2048 bits), ES256 (P-256), and HS256 only when the caller allows it.
 * Keys are immutable once loaded; any number of threads may verify against them at once. */
#ifndef PGWARD_JWT_H
#define PGWARD_JWT_H

#include <stdbool.h>
#include <stddef.h>

#define PW_JWT_MAX_GROUPS 32
#define PW_JWT_MAX_TOKEN  16384 /* longest compact token accepted, in bytes */

/* The keys tokens are verified against, loaded from a JWKS by jwks.h (immutable after load,
 * shared read-only by threads). */
struct pw_jwt_keys;

struct pw_jwt_params {
	const char *issuer;       /* required match of "iss" (NULL/"" = not checked) */
	const char *audience;     /* must equal "aud" or be one of the "aud" array (NULL/"" = not
	                             checked: then a token minted for any other service passes) */
	int leeway_s;             /* clock skew allowed for exp/nbf/iat (negative = 0) */
	const char *groups_claim; /* claim holding the groups: array of strings or one string;
	                             NULL/"" = "groups" */
	bool require_exp;         /* default should be used as true by callers: a token without
	                             exp is refused */
};

/* Strings are NUL-terminated and "" when the claim is absent: a caller mapping sub to a role
 * must refuse an empty sub. exp/nbf/iat are 0 when absent. */
struct pw_jwt_claims {
	char sub[256], iss[256], kid[128], alg[16];
	long long exp, nbf, iat;
	int n_groups;
	char groups[PW_JWT_MAX_GROUPS][64];
};

/* Verify a compact JWS (token need not be NUL-terminated; len bytes) at time now (Unix
 * seconds). 0 on success (claims filled); -1 with a reason for the server log in why (e.g.
 * "token expired at 2026-11-22T10:00:00Z (now ..., leeway 30 s)", "signature does not verify",
 * "algorithm none refused", "unknown key id \"k9\"", "issuer \"x\" is not \"y\"") and out
 * zeroed. Text taken from the token is reduced to printable ASCII in why. Tokens whose header
 * "typ" is not "JWT" (e.g. RFC 9068 "at+jwt") are refused: libjwt 1.10 rejects them. */
int pw_jwt_verify(const struct pw_jwt_keys *k, const struct pw_jwt_params *p, const char *token,
                  size_t len, long long now, struct pw_jwt_claims *out, char *why, size_t whylen);

#endif
