/* JWKS loading (RFC 7517): the keys that JWT-as-password tokens are verified against (jwt.h),
 * read from a JSON Web Key Set. Each JWK is judged once, here: keys whose "use" is not "sig"
 * are skipped, "oct" keys too unless HS256 is allowed; any other key must be one we verify
 * with (RSA >= 2048 bits, EC on P-256, an HS256 secret of 32 bytes or more) and a JWK "alg"
 * must fit its kty. A usable key is kept in the form the verifier needs: a PEM
 * SubjectPublicKeyInfo for libjwt, or the raw HS256 secret. Errors name the JSONPath of the bad
 * value (jsonpath.h): "jwks.json: $.keys[2].crv: expected \"P-256\" ..., got \"P-384\"".
 * Keys are immutable once loaded; any number of threads may read them at once. */
#ifndef PGWARD_JWKS_H
#define PGWARD_JWKS_H

#include <stdbool.h>
#include <stddef.h>

/* The algorithms we verify; each is bound to one key type. */
enum pw_jwk_alg { PW_JWK_RS256, PW_JWK_ES256, PW_JWK_HS256 };
#define PW_JWK_N_ALGS 3

const char *pw_jwk_alg_name(enum pw_jwk_alg a); /* "RS256", "ES256", "HS256" */
const char *pw_jwk_kty(enum pw_jwk_alg a);      /* its key type: "RSA", "EC", "oct" */

/* One usable key. */
struct pw_jwk {
	enum pw_jwk_alg alg;
	bool has_kid;
	char kid[128];
	unsigned char *material; /* PEM SubjectPublicKeyInfo text, or the raw HS256 secret */
	size_t len;
	size_t sig_len; /* exact signature size this key produces */
};

/* Opaque: the loaded set. */
struct pw_jwt_keys;

/* Load a JWKS file / a JWKS text (errors name the file as name_for_errors, "JWKS" when NULL).
 * A set with no usable key is an error. Returns 0 with *out set, or -1 with the reason in err
 * and *out NULL. */
int pw_jwt_keys_load(const char *jwks_path, bool allow_hs256, struct pw_jwt_keys **out, char *err,
                     size_t errlen);
int pw_jwt_keys_load_string(const char *json, const char *name_for_errors, bool allow_hs256,
                            struct pw_jwt_keys **out, char *err, size_t errlen);
void pw_jwt_keys_free(struct pw_jwt_keys *k);
/* Number of usable keys loaded (0 for NULL), and key i of them. */
int pw_jwt_keys_count(const struct pw_jwt_keys *k);
const struct pw_jwk *pw_jwt_keys_get(const struct pw_jwt_keys *k, int i);
/* Loaded with HS256 allowed (without it the set holds no oct key). */
bool pw_jwt_keys_allow_hs256(const struct pw_jwt_keys *k);

#endif
