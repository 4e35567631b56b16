/* The client's side of the start-up, read as a PostgreSQL server reads it: the first packet
 * (an encryption request, a CancelRequest or the StartupMessage), the StartupMessage's
 * parameters, and the authentication exchanges (SCRAM-SHA-256, or a token in a password
 * message). Pure functions over the bytes at a buffer's scan, in the manner of auth.c: each
 * says what it found or fills a refusal; the session does the I/O, cuts what was read and
 * moves between its states. */
#ifndef PGWARD_CLIENT_LOGIN_H
#define PGWARD_CLIENT_LOGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgward/auth.h"
#include "pgward/buf.h"
#include "pgward/caller.h"
#include "pgward/config.h"
#include "pgward/inspect.h"
#include "pgward/jwt.h"
#include "pgward/proto.h"

enum pw_client_packet_kind {
	PW_CP_MORE,    /* not whole yet (room is made for it) */
	PW_CP_SSL,     /* SSLRequest */
	PW_CP_GSS,     /* GSSENCRequest */
	PW_CP_CANCEL,  /* CancelRequest: pid, key */
	PW_CP_STARTUP, /* StartupMessage of protocol 3 */
	PW_CP_FAIL,    /* refused: why */
};
struct pw_client_packet {
	enum pw_client_packet_kind kind;
	uint32_t len; /* its length, all of it at scan */
	uint32_t pid, key;
};
/* The client's first packet (or the one after an encryption answer) at b's scan; max: the
 * largest StartupMessage accepted. tls: TLS is up already (a second request is refused). */
void pw_client_packet(struct pw_buf *b, uint32_t max, bool tls, struct pw_client_packet *out,
                      struct pw_deny *why);

/* What a StartupMessage says. Its strings point into the copy it was read from. */
struct pw_client_hello {
	struct pw_startup st;
	const char *user, *database, *application_name;
};
/* Read a StartupMessage (the whole packet, length word included, kept alive by the caller).
 * 0, or -1 with why filled (08P01 unreadable, 28000 no user, 0A000 replication). */
int pw_client_hello(const uint8_t *pkt, size_t len, struct pw_client_hello *h, struct pw_deny *why);

/* The client's next authentication message ('p') at b's scan, once whole: its body (*blen
 * bytes); NULL while incomplete (why->sqlstate empty) or refused (why filled: a length
 * outside [min, max], then in *blen, is a protocol error, or for a token a failed token
 * authentication). */
const uint8_t *pw_client_auth_message(struct pw_buf *b, const char *what, uint32_t min,
                                      uint32_t max, bool token, const char *user, size_t *blen,
                                      struct pw_deny *why);

/* A SASLInitialResponse (initial) or SASLResponse body: the SCRAM-SHA-256 exchange's next
 * step against verifier v; the answer to send in out. 0, or -1 with why filled and, for the
 * log only, what went wrong in detail. */
int pw_client_sasl(struct pw_scram_server *ss, const struct pw_scram_verifier *v, bool initial,
                   const uint8_t *body, size_t blen, const char *user, char *out, size_t cap,
                   size_t *outlen, struct pw_deny *why, char *detail, size_t detail_len);

/* A password message carrying a token: verified against the configured keys at time now.
 * 0 with claims filled, or -1 with why filled and, for the log only, the reason. */
int pw_client_token(const struct pw_config *cfg, const uint8_t *body, size_t blen, const char *user,
                    long long now, struct pw_jwt_claims *claims, struct pw_deny *why, char *detail,
                    size_t detail_len);

/* ---- the phase: the functions above driven message by message ---- */

/* What the client login knows. Zeroed to start; pw_client_login_free at the session's end. */
struct pw_client_login {
	int stage;        /* see client_login.c */
	uint8_t *startup; /* the client's StartupMessage (st's strings point into it) */
	size_t startup_len;
	struct pw_startup st;
	const char *user, *database;
	const struct pw_identity *id; /* the identity chosen (from the StartupMessage on) */
	struct pw_scram_server scram; /* the SCRAM exchange with the client */
	struct pw_jwt_claims *claims; /* auth "jwt": the verified token's claims */
};

/* Where the login happens. */
struct pw_client_where {
	const struct pw_config *cfg;
	bool tls;   /* TLS is up with the client */
	bool local; /* unix socket or loopback: a token may travel in clear */
	bool steered;
	const struct pw_kernel_facts *kf; /* steered: what the kernel recorded (NULL: no record) */
	uint64_t serial;                  /* for the log: the session and its peer */
	const char *peer;
};

enum pw_client_outcome {
	PW_CL_MORE,   /* the next message is not whole yet */
	PW_CL_NEXT,   /* a message was handled (an answer may be in out): go on */
	PW_CL_SSL,    /* an SSLRequest was read: answer it */
	PW_CL_GSS,    /* a GSSENCRequest was read: answer it */
	PW_CL_CANCEL, /* a CancelRequest: pk->pid, pk->key */
	PW_CL_AUTHED, /* the client is who it claims, as identity id: admit it */
	PW_CL_FAIL,   /* refused: why (the client gets it as a FATAL) */
	PW_CL_CLOSE,  /* no memory: close without a word */
};

/* The client's next message at in's scan: read, cut and answered (into out). */
enum pw_client_outcome pw_client_login_step(struct pw_client_login *cl,
                                            const struct pw_client_where *at, struct pw_buf *in,
                                            struct pw_buf *out, struct pw_client_packet *pk,
                                            struct pw_deny *why);
void pw_client_login_free(struct pw_client_login *cl);
#endif
