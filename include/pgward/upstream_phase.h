/* The session's upstream side from the connect to the ReadyForQuery that ends the start-up, as
 * two phases over the pure pieces below them (upstream_conn.h, upstream_login.h,
 * upstream_setup.h):
 *   - dialling: the connect, the SSLRequest and the TLS handshake, as sslmode says;
 *   - the login: the server's authentication requests answered, then, when the identity has
 *     one, the set-up (a Query of pgwardd's own that scopes the session and asks what its
 *     search_path is) run before the client may send anything.
 * Each step returns an outcome; the session does what it says (only it fails or closes). */
#ifndef PGWARD_UPSTREAM_PHASE_H
#define PGWARD_UPSTREAM_PHASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "pgward/buf.h"
#include "pgward/config.h"
#include "pgward/pool.h"
#include "pgward/sock.h"
#include "pgward/upstream_login.h"
#include "pgward/upstream_setup.h"

/* ---- dialling ---- */

struct pw_dial {
	int stage;    /* see upstream_phase.c */
	bool unix_sk; /* a unix socket: never TLS */
	bool tls;     /* TLS is up */
};

enum pw_dial_outcome {
	PW_DIAL_WAIT,       /* nothing until the socket is ready again */
	PW_DIAL_MOVED,      /* a stage further: step again */
	PW_DIAL_LOGIN,      /* connected (encrypted if asked for): the StartupMessage goes next */
	PW_DIAL_FAIL,       /* err: the connection could not be made or written */
	PW_DIAL_FAIL_LOGIN, /* err: the server's answer to the SSLRequest, or TLS, failed */
};

/* k's connect has begun (pw_upstream_open) to an address of this family. */
void pw_dial_start(struct pw_dial *d, int family);
enum pw_dial_outcome pw_dial_step(struct pw_dial *d, struct pw_sock *k, const struct pw_upstream *u,
                                  SSL_CTX *ctx, char *err, size_t errlen);

/* ---- the login and the set-up ---- */

struct pw_up_login {
	struct pw_login login;
	int stage;             /* see upstream_phase.c */
	bool capture;          /* keep the start-up messages for connection reuse (pool.h) */
	const char *setup_sql; /* the set-up Query, or NULL (owned by the caller) */
	bool setup_sent;
	char setup_error[256]; /* the set-up's first error, if any */
	bool truth_wanted;     /* the set-up's last row says what the session is (pw_truth) */
	bool truth_seen;
	struct pw_truth truth;
};

enum pw_up_outcome {
	PW_UP_MORE,         /* the next message is not whole yet */
	PW_UP_NEXT,         /* a message was handled: step again */
	PW_UP_PARAM,        /* a ParameterStatus at the scan: judge it, then pw_up_login_pass */
	PW_UP_KEY,          /* a BackendKeyData at the scan: take it, then pw_up_login_pass */
	PW_UP_RELAY,        /* logged in, no set-up: the relay takes over (ReadyForQuery to come) */
	PW_UP_READY,        /* the set-up's ReadyForQuery at the scan: pw_up_login_pass it when the
	                       session can judge statements, and the relay takes over */
	PW_UP_REFUSED,      /* the server's own FATAL is decided for the client: close once written
	                       (err: its message, when it refused the login itself) */
	PW_UP_SETUP_FAILED, /* the set-up failed upstream: setup_error says how */
	PW_UP_FAIL,         /* err: not what a server says during a login */
	PW_UP_OOM,
};

/* tls: the connection is encrypted; setup_sql NULL: none. */
void pw_up_login_start(struct pw_up_login *ul, const struct pw_upstream *u, bool tls, bool capture,
                       const char *setup_sql, bool truth_wanted);
/* The upstream's next message at in's scan (*len: its length word, for _PARAM, _KEY and
 * _READY); answers go into out, the start-up messages the client is to see into pre. */
enum pw_up_outcome pw_up_login_step(struct pw_up_login *ul, struct pw_buf *in, struct pw_buf *out,
                                    struct pw_preamble *pre, uint32_t *len, char *err,
                                    size_t errlen);
/* Past the authentication (the set-up, or the start-up messages, are next)? */
bool pw_up_login_authed(const struct pw_up_login *ul);
/* The message at in's scan (len as the step said) goes to the client. */
void pw_up_login_pass(struct pw_buf *in, struct pw_preamble *pre, uint32_t len);
#endif
