/* Authentication mechanisms for both sides of the proxy:
 *  - SCRAM-SHA-256 server side (RFC 5802/7677): pgwardd verifies its clients against a
 *    verifier stored in the config, in PostgreSQL's format
 *    "SCRAM-SHA-256$<iterations>:<salt b64>$<StoredKey b64>:<ServerKey b64>".
 *  - SCRAM-SHA-256 client side: pgwardd logs in to the upstream with the password it holds.
 *  - MD5 client side (PostgreSQL's "md5" || md5(md5(password || user) || salt)).
 * Channel binding (SCRAM-SHA-256-PLUS) is never offered nor used: it cannot cross an
 * inspecting hop. All functions are pure (no I/O) and allocation-free. */
#ifndef PGWARD_AUTH_H
#define PGWARD_AUTH_H

#include <stddef.h>
#include <stdint.h>

#define PW_SCRAM_KEY_LEN   32
#define PW_SCRAM_MAX_SALT  64
#define PW_SCRAM_NONCE_LEN 24 /* raw random bytes before base64 */
#define PW_SCRAM_MSG_MAX   512

struct pw_scram_verifier {
	int iterations;
	uint8_t salt[PW_SCRAM_MAX_SALT];
	size_t salt_len;
	uint8_t stored_key[PW_SCRAM_KEY_LEN];
	uint8_t server_key[PW_SCRAM_KEY_LEN];
};

/* Parse PostgreSQL's verifier text. Returns 0, or -1 with a reason in err. */
int pw_scram_parse_verifier(const char *text, struct pw_scram_verifier *v, char *err,
                            size_t errlen);
/* Build a verifier from a password (SASLprep'd as PostgreSQL does where it can); salt from
 * the CSPRNG unless salt != NULL. Writes NUL-terminated text. Returns 0 or -1. */
int pw_scram_make_verifier(const char *password, int iterations, const uint8_t *salt,
                           size_t salt_len, char *out, size_t outlen);

/* ---- server side: we verify a client ---- */
struct pw_scram_server {
	const struct pw_scram_verifier *v;
	int state; /* 0 init, 1 sent server-first, 2 done */
	char client_first_bare[PW_SCRAM_MSG_MAX];
	char server_first[PW_SCRAM_MSG_MAX];
	char nonce[PW_SCRAM_MSG_MAX]; /* combined client+server nonce */
	char user[128];               /* the n= attribute, informational (PostgreSQL sends "") */
};

/* Result codes shared by the step functions. */
enum pw_auth_result {
	PW_AUTH_OK = 0,       /* step succeeded (output, if any, written) */
	PW_AUTH_FAIL = -1,    /* bad credentials: proof did not verify */
	PW_AUTH_PROTOCOL = -2 /* malformed message or wrong order */
};

/* client_first: the SASLInitialResponse payload (gs2 header + client-first-message-bare).
 * server_nonce: NULL for random, else the exact server part of the nonce (tests).
 * Writes server-first-message to out (not NUL-counted in *outlen). A gs2 header that asks
 * for channel binding ("p=") is refused with PW_AUTH_PROTOCOL. */
int pw_scram_server_first(struct pw_scram_server *s, const struct pw_scram_verifier *v,
                          const uint8_t *client_first, size_t len, const char *server_nonce,
                          char *out, size_t outcap, size_t *outlen, char *err, size_t errlen);
/* client_final: the SASLResponse payload. On success writes server-final-message ("v=...").
 * Returns PW_AUTH_FAIL when the proof is wrong. */
int pw_scram_server_final(struct pw_scram_server *s, const uint8_t *client_final, size_t len,
                          char *out, size_t outcap, size_t *outlen, char *err, size_t errlen);

/* ---- client side: we log in upstream ---- */
struct pw_scram_client {
	int state;
	char client_nonce[64];
	char client_first_bare[PW_SCRAM_MSG_MAX];
	uint8_t salted_password[PW_SCRAM_KEY_LEN];
	char auth_message[3 * PW_SCRAM_MSG_MAX];
};

/* Writes the SASLInitialResponse payload ("n,,n=,r=<nonce>"). client_nonce: NULL for
 * random, else exact (tests). */
int pw_scram_client_first(struct pw_scram_client *c, const char *client_nonce, char *out,
                          size_t outcap, size_t *outlen);
/* server_first: the AuthenticationSASLContinue payload. Writes client-final-message. */
int pw_scram_client_final(struct pw_scram_client *c, const char *password,
                          const uint8_t *server_first, size_t len, char *out, size_t outcap,
                          size_t *outlen, char *err, size_t errlen);
/* server_final: the AuthenticationSASLFinal payload; PW_AUTH_OK iff the server signature
 * matches (the server proved it knows the password). */
int pw_scram_client_verify(struct pw_scram_client *c, const uint8_t *server_final, size_t len,
                           char *err, size_t errlen);

/* "md5" + hex(md5(hex(md5(password || user)) || salt)), NUL-terminated, 36 bytes. */
void pw_md5_password(const char *user, const char *password, const uint8_t salt[4], char out[36]);

/* Constant-time comparison. */
int pw_ct_equal(const void *a, const void *b, size_t n);

#endif
